//! `load_path_verified` onto CUDA, through `Cuda::load` and
//! `$SAFEWEIGHTS_CUDART` as a user would run it, against the emulated CUDA
//! runtime (tests/cudart_emu): a clean load verifies, and a copy that
//! silently flips a byte is caught and named. One test in this binary, as
//! it sets the environment.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod cudart_emu;

use safeweights::{Dtype, TensorRef};
use safeweights_load::{load_path, load_path_verified, Device, LoadError, LoadOptions};

#[test]
fn verification_catches_a_corrupted_device_copy() {
    let lib = cudart_emu::build();
    // Held for the whole test, so the emulator's state outlives each load's
    // own handle.
    // SAFETY: the emulator has no initialisers beyond reading its settings.
    let emu = unsafe { libloading::Library::new(&lib) }.unwrap();
    // SAFETY (for editions where this is unsafe): the only test of this
    // binary, before any thread reads the environment.
    std::env::set_var("SAFEWEIGHTS_CUDART", &lib);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let data: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100_000 + i as usize]).collect();
    let names: Vec<String> = (0..6).map(|i| format!("w{i}")).collect();
    let shapes: Vec<Vec<usize>> = data.iter().map(|d| vec![d.len()]).collect();
    let refs: Vec<TensorRef<'_>> = (0..6)
        .map(|i| TensorRef {
            name: &names[i],
            dtype: Dtype::U8,
            shape: &shapes[i],
            data: &data[i],
        })
        .collect();
    safeweights::write_file(&path, &refs, None).unwrap();
    // One thread and a chunk larger than the file: one copy per load.
    let options = LoadOptions::new().threads(1).chunk_size(1 << 20);

    let report = load_path_verified(&path, Device::Cuda(0), &options).unwrap();
    assert_eq!((report.tensors, report.device.as_str()), (6, "cuda:0"));
    assert_eq!(
        load_path_verified(&path, Device::Cpu, &options)
            .unwrap()
            .tensors,
        6
    );

    // The emulator flips the first byte of the next load's copy: unseen
    // without verification, caught with it.
    emu_corrupt_copy(&emu, 1);
    assert!(load_path(&path, Device::Cuda(0), &options).is_ok());
    emu_corrupt_copy(&emu, 1);
    match load_path_verified(&path, Device::Cuda(0), &options) {
        Err(LoadError::Mismatch {
            file,
            tensor,
            offset,
        }) => {
            assert!(file.ends_with("m.safetensors"));
            assert_eq!((tensor.as_str(), offset), ("w0", 0));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// Makes the emulator corrupt its `nth` copy counted from now.
fn emu_corrupt_copy(emu: &libloading::Library, nth: i64) {
    // SAFETY: the emulator's control functions, with their C signatures.
    unsafe {
        let reset: libloading::Symbol<'_, unsafe extern "C" fn(i32, u32, i64, i64, usize)> =
            emu.get(b"emu_reset\0").unwrap();
        reset(1, 0, 0, 0, 0);
        let corrupt: libloading::Symbol<'_, unsafe extern "C" fn(i64)> =
            emu.get(b"emu_corrupt_copy\0").unwrap();
        corrupt(nth);
    }
}
