//! Files of the scanning host that the agent is asked to read (a `--baseline FILE`, the SSM spool's
//! entries and markers), as opposed to the audited tree, which only [`crate::sysroot`] opens.
//! Such a path may name anything: a FIFO (whose open or read would block forever), a device
//! (`/dev/zero` never ends), a directory or a huge file. [`read_regular`] opens without blocking,
//! checks with `fstat` on the opened descriptor that it is a regular file, and reads at most a
//! limit, so a wrong path is a clear error naming it and never a hang or an exhausted memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// Why a local file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: is a {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: larger than {limit} bytes, the most this file may hold", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
}

impl LocalFileError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, LocalFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (a path the user gave on the command line).
    Follow,
    /// Refuse it (`ELOOP`): files inside the agent's own directories are never links.
    Refuse,
}

/// What kind of non-regular file a file type is, for messages.
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Refuse to replace `path` unless it is a regular file (links followed) or does not exist: a
/// device (`/dev/null`), a FIFO, a link to one or a directory at a path the agent writes to
/// atomically (by renaming a new file over it) is left as it is.
pub fn ensure_replaceable(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(md) if !md.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to replace {}: it is a {}, not a regular file",
                path.display(),
                kind_of(md.file_type())
            ),
        )),
        _ => Ok(()),
    }
}

/// Open `path` for reading without blocking and make sure it is a regular file.
pub fn open_regular(path: &Path, links: Links) -> Result<File, LocalFileError> {
    let io = |source| LocalFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut flags = OFlag::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= OFlag::O_NOFOLLOW;
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(file) => file,
        // O_NOFOLLOW on a link: say so, not "too many levels of symbolic links"
        Err(_)
            if links == Links::Refuse
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) =>
        {
            return Err(LocalFileError::NotRegular {
                path: path.to_path_buf(),
                kind: "symbolic link",
            });
        }
        Err(e) => return Err(io(e)),
    };
    let ft = file.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        return Err(LocalFileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(ft),
        });
    }
    Ok(file)
}

/// Read a regular file of at most `limit` bytes (see the module documentation).
pub fn read_regular(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, LocalFileError> {
    let file = open_regular(path, links)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| LocalFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(LocalFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64, links: Links) -> Result<String, LocalFileError> {
    let bytes = read_regular(path, limit, links)?;
    String::from_utf8(bytes).map_err(|e| LocalFileError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baseline.toml");
        std::fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(read_regular(&file, 100, Links::Refuse).unwrap(), b"x = 1\n");

        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // a FIFO with no writer: a plain open would block forever
        let err = read_regular(&fifo, 100, Links::Follow).unwrap_err();
        assert!(
            err.to_string().ends_with("is a FIFO, not a regular file"),
            "{err}"
        );

        let err = read_regular(Path::new("/dev/zero"), 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let err = read_regular(dir.path(), 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_regular(&link, 100, Links::Follow).is_ok());
        assert!(read_regular(&link, 100, Links::Refuse).is_err());
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_regular(&zero, 100, Links::Follow),
            Err(LocalFileError::NotRegular { .. })
        ));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 101]).unwrap();
        assert!(matches!(
            read_regular(&big, 100, Links::Follow),
            Err(LocalFileError::TooLarge { limit: 100, .. })
        ));
        assert!(read_regular(&dir.path().join("absent"), 1, Links::Follow)
            .unwrap_err()
            .is_not_found());
    }
}
