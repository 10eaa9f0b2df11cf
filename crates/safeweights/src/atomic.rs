//! Atomic file creation: the bytes are written to a file with no name (or a
//! recognisable temporary name) in the target's folder, synced, and given the
//! target's name only once complete.
//!
//! On Linux the file is created with `O_TMPFILE`: until it is committed it has
//! no name at all, so a process killed mid-write (even by `SIGKILL`) leaves
//! nothing behind. Where the file system cannot do that, the file is named
//! `.TARGET.PID-RANDOM.sw-tmp`; such a file whose writer is gone is removed by
//! the next write to the same target.
//!
//! Modes follow the usual rule for new files (`0o666` less the umask); a file
//! that replaces another keeps the mode of the one it replaces.

use std::fs::File;

use fs_err as fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The suffix of named temporary files, so stale ones can be recognised.
const TEMP_SUFFIX: &str = ".sw-tmp";

/// How long a named temporary file must have been left untouched before a
/// later write removes it (its writer's process must also be gone).
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A file written under no name (or a temporary one) in the target's folder,
/// and given the target's name only once complete and synced. Dropped without
/// [`commit`](AtomicFile::commit), it leaves the target untouched and nothing
/// behind.
pub struct AtomicFile {
    file: File,
    target: PathBuf,
    dir: PathBuf,
    /// The temporary name, when the file has one.
    temp: Option<PathBuf>,
    replace: bool,
}

impl AtomicFile {
    /// Prepares to write `target`, replacing it if it exists when the file is
    /// committed.
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        Self::open(target.as_ref(), true)
    }

    /// Prepares to write `target`, which must not exist when the file is
    /// committed: if another writer created it in the meantime, the commit
    /// fails with [`io::ErrorKind::AlreadyExists`] and leaves theirs alone.
    pub fn create_new(target: impl AsRef<Path>) -> Result<Self> {
        Self::open(target.as_ref(), false)
    }

    fn open(target: &Path, replace: bool) -> Result<Self> {
        let target = target.to_owned();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        remove_stale_temps(&dir, &target);
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed_in(&dir) {
            return Ok(AtomicFile {
                file,
                target,
                dir,
                temp: None,
                replace,
            });
        }
        let (file, temp) = named_in(&dir, &target).map_err(|e| Error::io(&dir, e))?;
        Ok(AtomicFile {
            file,
            target,
            dir,
            temp: Some(temp),
            replace,
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the data, gives the file the target's name, and syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let io_err = |e| Error::io(&target, e);
        if self.replace {
            keep_mode_of(&self.file, &target).map_err(io_err)?;
        }
        self.file.sync_all().map_err(io_err)?;
        match self.temp.take() {
            Some(temp) => {
                let placed = if self.replace {
                    fs::rename(&temp, &target)
                } else {
                    // A hard link fails if the name was taken meanwhile.
                    fs::hard_link(&temp, &target)
                };
                let _ = fs::remove_file(&temp);
                placed.map_err(io_err)?;
            }
            None => self.link_unnamed().map_err(io_err)?,
        }
        sync_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))
    }

    /// Gives the unnamed file its name: directly when the target must be new
    /// (`linkat` refuses an existing name), else under a temporary name that
    /// is then renamed over the target.
    #[cfg(target_os = "linux")]
    fn link_unnamed(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        if !self.replace {
            return link_at(&proc_path, &self.target);
        }
        let temp = temp_name(&self.dir, &self.target);
        link_at(&proc_path, &temp)?;
        let renamed = fs::rename(&temp, &self.target);
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed
    }

    #[cfg(not(target_os = "linux"))]
    fn link_unnamed(&self) -> io::Result<()> {
        unreachable!("unnamed files are only made on Linux")
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// An `O_TMPFILE` file in `dir`, if the file system supports it and
/// `/proc/self/fd` is there to name it later.
#[cfg(target_os = "linux")]
fn unnamed_in(dir: &Path) -> Option<File> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
        .map(|f| f.into_parts().0)
}

#[cfg(target_os = "linux")]
fn link_at(from: &str, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(from).map_err(io::Error::other)?;
    let to = CString::new(to.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: both are valid NUL-terminated paths; AT_SYMLINK_FOLLOW makes
    // the /proc/self/fd link resolve to the open (unnamed) file.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `.TARGET.PID-RANDOM.sw-tmp` in `dir`.
fn temp_name(dir: &Path, target: &Path) -> PathBuf {
    temp_path(dir, target, TEMP_SUFFIX)
}

/// `.TARGET.PID-RANDOM{suffix}` in `dir`: a temporary name that
/// [`remove_stale`] recognises once its process is gone.
pub(crate) fn temp_path(dir: &Path, target: &Path, suffix: &str) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let random = h.finish() & 0xff_ffff_ffff;
    dir.join(format!(
        "{}{random:010x}{suffix}",
        temp_sibling_prefix(target)
    ))
}

/// A new named temporary file beside `target`, created with mode `0o666` less
/// the umask.
fn named_in(dir: &Path, target: &Path) -> io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..16 {
        let temp = temp_name(dir, target);
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        fs_err::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o666);
        match options.open(&temp) {
            Ok(file) => return Ok((file.into_parts().0, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Gives `file` the permission bits of the file it is about to replace.
fn keep_mode_of(file: &File, target: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Ok(old) = fs::metadata(target) {
        if old.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = old.permissions().mode() & 0o7777;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, target);
    Ok(())
}

/// Syncs a folder, so that names created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes temporary files an earlier, interrupted write to `target` left in
/// `dir`: named as ours, untouched for a while, and whose process is gone.
fn remove_stale_temps(dir: &Path, target: &Path) {
    remove_stale(dir, target, TEMP_SUFFIX);
}

/// Removes what [`temp_path`] named with `suffix` for `target` in `dir`, when
/// it has been untouched for a while and its process is gone: a file, or a
/// folder with everything in it.
pub(crate) fn remove_stale(dir: &Path, target: &Path, suffix: &str) {
    let Some(stem) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{stem}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(suffix))
        else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if !old || process_alive(pid) {
            continue;
        }
        if meta.is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        } else if meta.is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (on this machine).
fn process_alive(pid: u64) -> bool {
    if pid == u64::from(std::process::id()) {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    true
}

/// The prefix of a temporary name beside `target` that
/// [`remove_stale_siblings`] recognises: `.NAME.PID-` (a random part and a
/// suffix of the caller's follow).
pub fn temp_sibling_prefix(target: &Path) -> String {
    let stem = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{stem}.{}-", std::process::id())
}

/// Removes what interrupted writes to `target` left beside it: files or
/// folders named [`temp_sibling_prefix`]`RANDOM{suffix}`, untouched for a
/// while, whose process is gone. Only for staging areas that hold nothing
/// but a copy being built (never for set-aside originals).
pub fn remove_stale_siblings(target: &Path, suffix: &str) {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    remove_stale(&dir, target, suffix);
}
