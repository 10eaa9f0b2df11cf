//! Writes that are killed, race each other, or replace files with modes of
//! their own, done for real: a child process killed with SIGKILL mid-write,
//! two writers on one name, umask and chmod.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safeweights::{write_file, AtomicFile, Dtype, StreamingWriter, TensorSpec};

use crate::testutil::{refs, Owned};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs in the child: start a large streaming write, say so, and wait to be
/// killed.
#[test]
fn child_write_then_wait_for_sigkill() {
    let Ok(dir) = std::env::var("SAFEWEIGHTS_SIGKILL_CHILD_DIR") else {
        return; // Only meaningful when spawned by the parent test below.
    };
    let target = Path::new(&dir).join("model.safetensors");
    let mut w = StreamingWriter::create(
        &target,
        vec![TensorSpec::new("big", Dtype::U8, [64 << 20])],
        None,
    )
    .unwrap();
    w.write("big", &vec![7u8; 32 << 20]).unwrap();
    fs::write(Path::new(&dir).join("ready"), b"").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigkill_mid_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durable::child_write_then_wait_for_sigkill",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAFEWEIGHTS_SIGKILL_CHILD_DIR", dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.path().join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "child never got going"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no handler runs.
    child.wait().unwrap();
    assert_eq!(names(dir.path()), ["ready"], "a killed write left files");
}

#[test]
fn abandoned_atomic_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let atomic = AtomicFile::create(dir.path().join("x.bin")).unwrap();
    std::io::Write::write_all(&mut atomic.file(), b"partial").unwrap();
    // As after SIGKILL: no destructor runs.
    std::mem::forget(atomic);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn create_new_refuses_a_target_created_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.safetensors");
    let first = AtomicFile::create_new(&target).unwrap();
    let second = AtomicFile::create_new(&target).unwrap();
    std::io::Write::write_all(&mut first.file(), b"first").unwrap();
    std::io::Write::write_all(&mut second.file(), b"second").unwrap();
    first.commit().unwrap();
    let err = second.commit().unwrap_err();
    assert!(err.to_string().contains("out.safetensors"), "{err}");
    assert!(
        matches!(&err, safeweights::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(fs::read(&target).unwrap(), b"first");
    assert_eq!(names(dir.path()), ["out.safetensors"]);
}

#[cfg(unix)]
#[test]
fn modes_follow_the_umask_and_replaced_files_keep_theirs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let t = Owned::counting("t", Dtype::U8, &[8]);
    // A restrictive umask for the one write (other tests running meanwhile
    // only get stricter modes on their temporary files).
    // SAFETY: umask has no preconditions; the old mask is put back.
    let old = unsafe { libc::umask(0o027) };
    let fresh = dir.path().join("fresh.safetensors");
    let written = write_file(&fresh, &refs(std::slice::from_ref(&t)), None);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    written.unwrap();
    let mode = fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "new file under umask 027: {mode:o}");

    let kept = dir.path().join("kept.safetensors");
    fs::write(&kept, b"old").unwrap();
    fs::set_permissions(&kept, fs::Permissions::from_mode(0o640)).unwrap();
    write_file(&kept, &refs(std::slice::from_ref(&t)), None).unwrap();
    let mode = fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "replaced file: {mode:o}");
}

#[test]
fn stale_temporary_files_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.safetensors");
    // A process id above any pid_max: its writer is certainly gone.
    let stale = dir
        .path()
        .join(".model.safetensors.4999999999-00deadbeef.sw-tmp");
    let fresh = dir
        .path()
        .join(".model.safetensors.4999999998-00deadbeef.sw-tmp");
    let ours = dir.path().join(format!(
        ".model.safetensors.{}-0000000001.sw-tmp",
        std::process::id()
    ));
    let other = dir
        .path()
        .join(".other.safetensors.4999999999-00deadbeef.sw-tmp");
    for p in [&stale, &fresh, &ours, &other] {
        fs::write(p, b"partial").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for p in [&stale, &ours, &other] {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(long_ago).unwrap();
    }
    let t = Owned::counting("t", Dtype::U8, &[8]);
    write_file(&target, &refs(std::slice::from_ref(&t)), None).unwrap();
    assert!(
        !stale.exists(),
        "a stale temporary file of this target was kept"
    );
    assert!(
        fresh.exists(),
        "a recent one may belong to a live writer elsewhere"
    );
    assert!(ours.exists(), "this process's own is never touched");
    assert!(other.exists(), "another target's is not ours to remove");
}

/// Two writers on one name without replacing: the second to finish finds
/// the name taken and fails; the first one's file is kept, never replaced.
#[test]
fn concurrent_writers_without_replace_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.safetensors");
    let spec = || vec![TensorSpec::new("t", Dtype::U8, [4])];
    let no_replace = safeweights::WriteOptions::new().replace(false);
    let mut first = StreamingWriter::create_with(&target, spec(), None, &no_replace).unwrap();
    let mut second = StreamingWriter::create_with(&target, spec(), None, &no_replace).unwrap();
    first.write("t", &[1, 1, 1, 1]).unwrap();
    second.write("t", &[2, 2, 2, 2]).unwrap();
    second.finish().unwrap();
    let kept = fs::read(&target).unwrap();
    let err = first.finish().unwrap_err();
    assert!(
        matches!(&err, safeweights::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(
        fs::read(&target).unwrap(),
        kept,
        "the other writer's file was replaced"
    );
    assert_eq!(names(dir.path()), ["out.safetensors"]);
    // Replacing (the default, as the reference's save_file) still replaces.
    let mut third = StreamingWriter::create(&target, spec(), None).unwrap();
    third.write("t", &[3, 3, 3, 3]).unwrap();
    third.finish().unwrap();
    assert_ne!(fs::read(&target).unwrap(), kept);
}

/// A staging folder an interrupted run left beside its target (named by
/// `temp_sibling_prefix`) is removed by the next run once its process is
/// gone; a live or recent one, and other names, are kept.
#[test]
fn stale_staging_folders_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let stale = dir.path().join(".out.4999999999-a1b2c3.sw-stage");
    let recent = dir.path().join(".out.4999999999-d4e5f6.sw-stage");
    let ours = dir.path().join(format!(
        "{}x9y8z7.sw-stage",
        safeweights::temp_sibling_prefix(&target)
    ));
    let backup = dir.path().join(".out.4999999999-a1b2c3.sw-old");
    for d in [&stale, &recent, &ours, &backup] {
        fs::create_dir(d).unwrap();
        fs::write(d.join("model.safetensors"), b"partial").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for d in [&stale, &ours, &backup] {
        fs::File::open(d).unwrap().set_modified(long_ago).unwrap();
    }
    safeweights::remove_stale_siblings(&target, ".sw-stage");
    assert!(!stale.exists(), "a dead run's staging folder was kept");
    assert!(recent.exists() && ours.exists() && backup.exists());
}
