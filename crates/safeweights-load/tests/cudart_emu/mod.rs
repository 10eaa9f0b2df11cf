//! Builds the emulated CUDA runtime (`cudart_emu.c`, beside this file) for
//! the tests of this crate and of the command line.

use std::path::PathBuf;
use std::process::Command;

/// Compiles the emulator with the system C compiler (`$CC`, else `cc`) into
/// this test target's scratch folder; returns the library's path.
pub fn build() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // One copy per process: test binaries may run side by side.
    let pid = std::process::id();
    let src = dir.join(format!("cudart_emu-{pid}.c"));
    let out = dir.join(format!("libcudart_emu-{pid}.so"));
    std::fs::write(&src, include_str!("cudart_emu.c")).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-pthread", "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("these tests build a C library: cannot run {cc:?}: {e}"));
    assert!(
        status.success(),
        "building the emulated CUDA runtime failed"
    );
    out
}
