//! Atomic writes: on failure nothing partial is left and the target is untouched.
//! The failure is real: a file-size limit (`RLIMIT_FSIZE`) in a child process.

use std::path::Path;
use std::process::Command;

use safeweights::{write_file, Dtype, StreamingWriter, TensorSpec};

use crate::testutil::{refs, Owned};

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "model.safetensors")
        .collect()
}

/// Runs in the child: limit the file size to 64 KiB, then try to write 1 MiB.
#[test]
fn child_write_past_file_size_limit() {
    let Ok(dir) = std::env::var("SAFEWEIGHTS_RLIMIT_CHILD_DIR") else {
        return; // Only meaningful when spawned by the parent test below.
    };
    // SAFETY: plain libc calls with valid arguments; this process is a
    // dedicated child running this one test.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 64 * 1024,
            rlim_max: 64 * 1024,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let target = Path::new(&dir).join("model.safetensors");
    let big = Owned::counting("big", Dtype::F32, &[512, 512]);
    let err = write_file(&target, &refs(std::slice::from_ref(&big)), None).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    let mut w = StreamingWriter::create(
        &target,
        vec![TensorSpec::new("big", Dtype::F32, [512, 512])],
        None,
    )
    .unwrap();
    let mut failed = false;
    for chunk in big.data.chunks(8192) {
        if w.write("big", chunk).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        assert!(w.finish().is_err(), "finish must fail past the size limit");
    }
    println!("CHILD-OK");
}

#[test]
fn failed_writes_leave_nothing_and_keep_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.safetensors");
    let old = Owned::counting("old", Dtype::U8, &[16]);
    write_file(&target, &refs(std::slice::from_ref(&old)), None).unwrap();
    let before = std::fs::read(&target).unwrap();

    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "atomic::child_write_past_file_size_limit",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAFEWEIGHTS_RLIMIT_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "target was modified"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "partial files left: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn incomplete_streaming_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.safetensors");
    let mut w = StreamingWriter::create(
        &target,
        vec![
            TensorSpec::new("a", Dtype::F32, [4]),
            TensorSpec::new("b", Dtype::U8, [3]),
        ],
        None,
    )
    .unwrap();
    w.write("a", &[0; 16]).unwrap();
    w.write("b", &[1]).unwrap();
    assert!(w.write("b", &[0; 3]).is_err(), "more bytes than declared");
    assert!(w.write("nope", &[0]).is_err(), "undeclared tensor");
    let err = w.finish().unwrap_err();
    assert!(
        err.to_string().contains("\"b\": 1 of 3 bytes written"),
        "{err}"
    );
    assert!(!target.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn streaming_writer_accepts_any_order_and_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = vec![
        Owned::counting("z", Dtype::BF16, &[300, 7]),
        Owned::counting("a", Dtype::F64, &[5]),
        Owned::counting("m", Dtype::U8, &[0]),
    ];
    let specs = tensors
        .iter()
        .map(|t| TensorSpec::new(t.name.clone(), t.dtype, t.shape.clone()))
        .collect();
    let streamed = dir.path().join("s.safetensors");
    let mut w = StreamingWriter::create(&streamed, specs, None).unwrap();
    for t in tensors.iter().rev() {
        for chunk in t.data.chunks(13) {
            w.write(&t.name, chunk).unwrap();
        }
    }
    w.finish().unwrap();
    let direct = dir.path().join("d.safetensors");
    write_file(&direct, &refs(&tensors), None).unwrap();
    assert_eq!(
        std::fs::read(&streamed).unwrap(),
        std::fs::read(&direct).unwrap()
    );
    // SAFETY: nothing changes the file while it is mapped.
    let f = unsafe { safeweights::OpenOptions::new().mmap() }
        .open(&streamed)
        .unwrap();
    assert_eq!(f.tensor("z").unwrap().data(), &tensors[0].data[..]);
    assert!(f.tensor("z").unwrap().is_borrowed());
}

#[test]
fn writer_refuses_reserved_and_control_names() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["__metadata__", "a\u{0}b", "x\ny"] {
        let t = Owned::counting(name, Dtype::U8, &[1]);
        let err = write_file(dir.path().join("x.safetensors"), &refs(&[t]), None).unwrap_err();
        assert!(
            matches!(err, safeweights::Error::InvalidWrite { .. }),
            "{err}"
        );
    }
    let t = Owned::counting("a", Dtype::U8, &[2]);
    let dup = [t.as_ref(), t.as_ref()];
    assert!(write_file(dir.path().join("x.safetensors"), &dup, None).is_err());
    let short = safeweights::TensorRef {
        data: &t.data[..1],
        ..t.as_ref()
    };
    assert!(write_file(dir.path().join("x.safetensors"), &[short], None).is_err());
    assert!(leftovers(dir.path()).is_empty());
}
