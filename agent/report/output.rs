//! Writing a rendered report to `--output FILE` atomically: readers (a pipeline step, an S3 sync,
//! a concurrent run) see either the old file or the complete new one, never a partial write. The
//! contents go to a fresh temporary file in the target's directory (created exclusively, mode 0666
//! less the umask), are synced, renamed over the target, and the directory is synced so the rename
//! survives a crash. On any error before the rename the temporary file is removed and an existing
//! target is left untouched. A symlink at the target is replaced, not followed. A target that is
//! not a regular file (a device such as `/dev/null`, a FIFO, `/dev/stdout` and other links to
//! one, a directory) is refused and left as it is: replacing it would destroy a node of the host.
//! Errors name the path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Write `contents` to `path` atomically (see the module documentation).
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, contents, 0o666)
}

/// [`write_atomic`] with the new file created with `mode` (less the umask) from the start, so
/// its contents are never readable by others even for an instant (the SSM spool uses 0600).
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::localfs::ensure_replaceable(path)?;

    let (tmp_path, mut file) = create_temp(dir, &name.to_string_lossy(), mode)
        .map_err(|e| annotate(path, "creating a temporary file", e))?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| annotate(path, "writing", e))
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp_path, path).map_err(|e| annotate(path, "replacing", e))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }

    // The new contents are in place; make the rename itself durable. Some filesystems cannot
    // sync a directory (EINVAL); that is not worth failing the run for.
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() != io::ErrorKind::InvalidInput => {
            Err(annotate(path, "syncing the directory of", e))
        }
        _ => Ok(()),
    }
}

/// Create `.NAME.tmp-PID-N-NANOS` in `dir` with O_EXCL, retrying on the (unlikely) name clash.
fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}-{nanos}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

fn annotate(path: &Path, doing: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    use super::*;

    /// Names of the entries in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomic(&path, b"{}\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(entries(dir.path()), ["report.json"], "no temp file left");
    }

    #[test]
    fn replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        fs::write(&path, "old contents that are longer than the new").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert_eq!(entries(dir.path()), ["report.xml"]);
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        for path in ["/", "..", "/tmp/.."] {
            let err = write_atomic(Path::new(path), b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(path), "{err}");
        }
    }

    #[test]
    fn missing_directory_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("report.json");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failed_rename_leaves_the_target_and_no_temp_file() {
        // A directory at the target: the rename fails after the temp file was written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "old").unwrap();
        let err = write_atomic(&path, b"new").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read_to_string(path.join("keep")).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["report.json"], "temp file removed");
    }

    #[test]
    fn unwritable_directory_leaves_old_contents() {
        if nix::unistd::geteuid().is_root() {
            // root ignores directory permissions; the other tests cover the cleanup path.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.txt");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        let result = write_atomic(&path, b"new");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["report.txt"]);
    }

    #[test]
    fn replaces_a_symlink_rather_than_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "untouched").unwrap();
        let link = dir.path().join("report.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
    }

    #[test]
    fn devices_fifos_and_links_to_them_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let to_null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
        // the host's own /dev/null is reached only through a link in the temporary tree: were the
        // guard ever broken, a test run as root must not replace the host's device node
        for target in [fifo.as_path(), to_null.as_path(), dir.path()] {
            let err = write_atomic(target, b"x").unwrap_err().to_string();
            assert!(err.starts_with("refusing to replace"), "{err}");
        }
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(fs::symlink_metadata(&to_null).unwrap().is_symlink());
        assert_eq!(entries(dir.path()), ["fifo", "null"], "no temp file left");
    }
}
