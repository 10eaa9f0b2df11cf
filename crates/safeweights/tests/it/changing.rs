//! Files that change under a reader: truncation of a mapped file is an error,
//! not a SIGBUS; non-regular files are refused instead of blocking.

use std::fs;

use safeweights::{FileSource, MmapSource, OpenOptions, Source};

#[cfg(target_os = "linux")]
#[test]
fn truncated_mapping_reads_zeros_and_reports_instead_of_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks.bin");
    fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
    // SAFETY: this test truncates the file on purpose; the guard under test
    // is what keeps the process alive.
    let src = unsafe { MmapSource::open(&path) }.unwrap();
    assert!(src.check().is_ok());
    let bytes = src.as_bytes().unwrap();
    assert_eq!(bytes[0], 7);

    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // Past the new end: without the guard this read ends the process.
    let past_end = std::hint::black_box(bytes[40 * 1024]);
    assert_eq!(past_end, 0);
    let err = src.check().unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut buf = [0u8; 4];
    assert!(src.read_exact_at(50 * 1024, &mut buf).is_err());
}

#[cfg(target_os = "linux")]
#[test]
fn many_guarded_maps_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    fs::write(&path, vec![1u8; 8192]).unwrap();
    // More maps than guard slots over time: slots are given back on drop.
    for _ in 0..1000 {
        // SAFETY: nothing changes the file during the test.
        let src = unsafe { MmapSource::open(&path) }.unwrap();
        assert_eq!(src.as_bytes().unwrap()[8191], 1);
        assert!(src.check().is_ok());
    }
}

#[test]
fn default_open_reads_with_pread() {
    assert_eq!(OpenOptions::new().backend(), safeweights::Backend::Pread);
}

#[cfg(unix)]
#[test]
fn fifo_and_directory_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.safetensors");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = FileSource::open(&fifo).err().expect("a FIFO is refused");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    // SAFETY: nothing writes the FIFO; the open must not wait for a writer.
    let err = unsafe { MmapSource::open(&fifo) }.err().expect("refused");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = safeweights::SafeTensorsFile::open(&fifo).unwrap_err();
    assert!(err.to_string().contains("pipe.safetensors"), "{err}");
    let err = FileSource::open(dir.path())
        .err()
        .expect("a folder is refused");
    assert!(err.to_string().contains("directory"), "{err}");
}
