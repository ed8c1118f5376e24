//! Confined, read-only access to the audited system's file tree.
//!
//! Every read of the host goes through a [`Sysroot`] (`--root DIR`, default `/`), so the
//! same checks can audit a live host, a chroot, a mounted AMI volume (say `/mnt/ami`) or
//! a test fixture. Paths handed to it are paths *as the audited system sees them*
//! (`/etc/shadow`; relative paths are read from the root as well). A plain
//! `root.join(path)` would be wrong. An AMI's `/etc/localtime -> /usr/share/zoneinfo/UTC`
//! would read the scanner's own file, and a hostile tree could point links or `..` at
//! anything on the scanning host. So lookups never leave the root: absolute symlinks
//! start again at the root, `..` at the root stays there (as in a chroot), and link
//! loops fail with `ELOOP` after 40 links, as in the kernel.
//!
//! There are two resolvers, and both give the same results:
//!
//! * [`Resolver::Openat2`]: `openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`
//!   (Linux 5.6 and later). The kernel confines the lookup, with no races. Availability
//!   is checked once, in [`Sysroot::open_with`]. `EAGAIN`, which the kernel returns when
//!   a rename races with `..`, is retried a few times.
//! * [`Resolver::Fallback`]: a component-by-component walk on file descriptors, for
//!   older kernels (4.14 and 5.10 still run on EC2). It keeps a stack of directory fds
//!   (`O_PATH|O_DIRECTORY|O_NOFOLLOW`) that starts at the root fd. It reads symlinks
//!   with `readlinkat` and splices their targets into the remaining path, and it opens
//!   the final component with `O_NOFOLLOW`. If a race swaps the final component for a
//!   symlink, the open fails; it never escapes the root.
//!
//! Every file is opened read-only. [`Sysroot::open_file`] refuses anything that is not
//! a regular file (FIFO, socket, device, directory) before reading it. The agent runs
//! as root on trees it cannot trust, so it must never block on a FIFO or read a device.
//! The one exception is [`Sysroot::read_device_head`]: the first bytes of a *block* device
//! (the LUKS header below a dm-crypt mapping), read-only and non-blocking, and nothing else.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

/// Maximum number of symlinks followed in one lookup (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// How many times an `openat2` lookup is retried when the kernel reports `EAGAIN`.
const OPENAT2_RETRIES: usize = 8;

/// Flags for the directory fds of the fallback walk and for the root fd.
const DIR_PATH_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Flags for opening a file to read its contents.
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY);

/// Flags for opening a directory to list it.
const LIST_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

/// Flags for an fd that names a file without opening it for I/O.
const PATH_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_CLOEXEC);

/// Options for matching one glob component against a directory entry name.
const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// Errors from [`Sysroot`] operations.
#[derive(Debug, thiserror::Error)]
pub enum SysrootError {
    /// The root directory itself could not be opened.
    #[error("root {}: {source}", path.display())]
    OpenRoot {
        /// The root as given by the caller.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The root exists but is not a directory.
    #[error("root {} is not a directory", path.display())]
    NotADirectory {
        /// The root as given by the caller.
        path: PathBuf,
    },
    /// An operation on a path inside the root failed.
    #[error("{path}: {source}")]
    Io {
        /// The in-root path as given by the caller (for example `/etc/shadow`).
        path: String,
        /// The underlying error; nix errnos are kept as raw OS errors.
        source: io::Error,
    },
}

impl SysrootError {
    /// True when the error means "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }

    /// The [`io::ErrorKind`] of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            SysrootError::OpenRoot { source, .. } | SysrootError::Io { source, .. } => {
                source.kind()
            }
            SysrootError::NotADirectory { .. } => io::ErrorKind::NotADirectory,
        }
    }
}

/// The type of a directory entry, as reported by [`Sysroot::read_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else: FIFO, socket, character or block device.
    Other,
}

/// One entry of a directory listing (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name, byte for byte (it may not be UTF-8).
    pub name: OsString,
    /// The entry's type; symlinks are not followed.
    pub file_type: EntryType,
}

/// Which path resolver a [`Sysroot`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// Use `openat2` when the kernel has it, else the fallback walk.
    Auto,
    /// Kernel-confined `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
    Openat2,
    /// The component-by-component walk on file descriptors.
    Fallback,
}

/// A directory treated as `/` of the audited system; all host reads go through it.
#[derive(Debug)]
pub struct Sysroot {
    /// Canonical host path of the root, for display only.
    root: PathBuf,
    /// `O_PATH|O_DIRECTORY` fd of the root; every lookup starts here.
    fd: OwnedFd,
    /// The concrete resolver in use (never [`Resolver::Auto`]).
    resolver: Resolver,
}

impl Sysroot {
    /// Opens `root` (for example `/` or `/mnt/ami`) and picks the resolver automatically.
    pub fn open(root: impl AsRef<Path>) -> Result<Sysroot, SysrootError> {
        Self::open_with(root, Resolver::Auto)
    }

    /// Opens `root` with a chosen resolver.
    ///
    /// [`Resolver::Openat2`] fails with [`SysrootError::OpenRoot`] when the kernel lacks
    /// `openat2` (`ENOSYS`) or a seccomp filter refuses it (`EPERM`).
    pub fn open_with(root: impl AsRef<Path>, resolver: Resolver) -> Result<Sysroot, SysrootError> {
        let path = root.as_ref();
        let open_root_err = |source| SysrootError::OpenRoot {
            path: path.to_path_buf(),
            source,
        };
        let fd = match nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR) => {
                return Err(SysrootError::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_root_err(errno_to_io(e))),
        };
        let canonical = std::fs::canonicalize(path).map_err(open_root_err)?;
        let resolver = match resolver {
            Resolver::Fallback => Resolver::Fallback,
            Resolver::Auto if probe_openat2(fd.as_fd()).is_err() => Resolver::Fallback,
            Resolver::Auto => Resolver::Openat2,
            Resolver::Openat2 => {
                probe_openat2(fd.as_fd()).map_err(|e| open_root_err(errno_to_io(e)))?;
                Resolver::Openat2
            }
        };
        Ok(Sysroot {
            root: canonical,
            fd,
            resolver,
        })
    }

    /// The canonical host path of the root. Use it for display only, never to open files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The resolver in use: [`Resolver::Openat2`] or [`Resolver::Fallback`], never `Auto`.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// True when the root is the scanning host's own `/`, that is, a live-host audit.
    pub fn is_host_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The host path where `path` would lexically appear, for messages only.
    ///
    /// This joins the root with the normal components of `path` and ignores `..` and
    /// symlinks. Never open the result; use the other methods, which resolve inside the root.
    pub fn host_path(&self, path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.root.clone();
        for component in path.as_ref().components() {
            if let Component::Normal(name) = component {
                out.push(name);
            }
        }
        out
    }

    /// Opens a regular file for reading. Symlinks are followed inside the root.
    ///
    /// Anything that is not a regular file is refused with an [`io::ErrorKind::InvalidInput`]
    /// error. The type is checked on an `O_PATH` fd first, so a device is never opened. A
    /// second check after the real open (`O_NONBLOCK`, so a FIFO cannot block) covers races.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<File, SysrootError> {
        let path = path.as_ref();
        let probe = File::from(
            self.resolve(path, PATH_FLAGS, true)
                .map_err(|e| err(path, e))?,
        );
        ensure_regular(&probe).map_err(|e| err(path, e))?;
        let file = File::from(
            self.resolve(path, READ_FLAGS, true)
                .map_err(|e| err(path, e))?,
        );
        ensure_regular(&file).map_err(|e| err(path, e))?;
        Ok(file)
    }

    /// Reads the first `len` bytes (fewer if it is shorter) of a block device or of a regular
    /// file standing in for one (a header image in a fixture tree), e.g. `/dev/vda2` for the LUKS
    /// header below a dm-crypt mapping. This is the one read of a device the sysroot allows:
    /// read-only, `O_NONBLOCK`, never a FIFO, socket, character device or directory (checked on an
    /// `O_PATH` fd before the open and again after it). Returns the bytes and, for a block
    /// device, its device number `(major, minor)` so the caller can check it opened the device it
    /// meant to.
    pub fn read_device_head(
        &self,
        path: impl AsRef<Path>,
        len: usize,
    ) -> Result<DeviceHead, SysrootError> {
        let path = path.as_ref();
        let probe = File::from(
            self.resolve(path, PATH_FLAGS, true)
                .map_err(|e| err(path, e))?,
        );
        ensure_block_or_regular(&probe).map_err(|e| err(path, e))?;
        let file = File::from(
            self.resolve(path, READ_FLAGS, true)
                .map_err(|e| err(path, e))?,
        );
        let rdev = ensure_block_or_regular(&file).map_err(|e| err(path, e))?;
        let mut buf = Vec::with_capacity(len.min(1 << 20));
        (&file)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| err(path, e))?;
        Ok((buf, rdev))
    }

    /// Reads a whole regular file (see [`Sysroot::open_file`]), at most [`MAX_READ_BYTES`]: a
    /// larger (or sparse, hostile) file is an [`io::ErrorKind::InvalidData`] error, never an
    /// out-of-memory. Callers that need more stream from [`Sysroot::open_file`].
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, SysrootError> {
        self.read_limited(path, MAX_READ_BYTES)
    }

    /// [`Sysroot::read`] with a tighter limit, for files that are never large (configuration
    /// files): a larger one is an error naming it, read no further than the limit.
    pub fn read_limited(
        &self,
        path: impl AsRef<Path>,
        limit: u64,
    ) -> Result<Vec<u8>, SysrootError> {
        let path = path.as_ref();
        let limit = limit.min(MAX_READ_BYTES);
        let mut buf = Vec::new();
        self.open_file(path)?
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(path, e))?;
        if buf.len() as u64 > limit {
            return Err(err(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    if limit % (1 << 20) == 0 {
                        format!("larger than {} MiB; refusing to read it whole", limit >> 20)
                    } else {
                        format!("larger than {limit} bytes; refusing to read it whole")
                    },
                ),
            ));
        }
        Ok(buf)
    }

    /// Reads a whole regular file as UTF-8. Invalid UTF-8 is an [`io::ErrorKind::InvalidData`] error.
    pub fn read_to_string(&self, path: impl AsRef<Path>) -> Result<String, SysrootError> {
        let path = path.as_ref();
        String::from_utf8(self.read(path)?)
            .map_err(|e| err(path, io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Metadata of the file at `path`, following symlinks inside the root.
    ///
    /// The file is only opened with `O_PATH`, so FIFOs and devices are safe here.
    pub fn metadata(&self, path: impl AsRef<Path>) -> Result<Metadata, SysrootError> {
        let path = path.as_ref();
        self.stat(path, true).map_err(|e| err(path, e))
    }

    /// Metadata of `path` itself; a final symlink is not followed.
    pub fn symlink_metadata(&self, path: impl AsRef<Path>) -> Result<Metadata, SysrootError> {
        let path = path.as_ref();
        self.stat(path, false).map_err(|e| err(path, e))
    }

    /// The raw target of the symlink at `path`, unresolved. A non-link is `EINVAL`.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf, SysrootError> {
        let path = path.as_ref();
        self.link_target(path)
            .map(PathBuf::from)
            .map_err(|e| err(path, e))
    }

    /// True when [`Sysroot::metadata`] succeeds (a dangling symlink does not exist).
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.metadata(path).is_ok()
    }

    /// Lists a directory (symlinks followed inside the root), sorted by name, without `.` and `..`.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<DirEntry>, SysrootError> {
        let path = path.as_ref();
        self.list_dir(path).map_err(|e| err(path, e))
    }

    /// Opens a directory for listing (`O_RDONLY|O_DIRECTORY|O_NOCTTY|O_CLOEXEC`), resolved like
    /// every other lookup: symlinks on the way, the final one included, are followed inside the
    /// root. Anything but a directory is `ENOTDIR`. This is where the tree walks
    /// ([`crate::host::walk`]) start; below it they open each directory relative to its parent's fd.
    pub fn open_dir(&self, path: impl AsRef<Path>) -> Result<OwnedFd, SysrootError> {
        let path = path.as_ref();
        self.resolve(path, LIST_FLAGS, true)
            .map_err(|e| err(path, e))
    }

    /// Expands an in-root glob pattern such as `/home/*/.ssh/authorized_keys`.
    ///
    /// The pattern is matched one component at a time with [`glob::Pattern`] (`*`, `?`,
    /// `[...]`; a leading `.` must be literal; case-sensitive). Components without
    /// wildcards are looked up directly. Symlinked directories on the way are followed
    /// inside the root. A trailing `/` keeps only directories. The results are absolute
    /// in-root paths, sorted and without duplicates.
    ///
    /// A missing directory (or a non-directory) on the way gives no match. A directory
    /// that exists but cannot be read is an error, and so is an invalid pattern
    /// ([`io::ErrorKind::InvalidInput`]).
    ///
    /// Non-UTF-8 names: `glob::Pattern` only matches `&str`, so a wildcard component is
    /// matched against the name's lossy UTF-8 form (each invalid sequence becomes U+FFFD).
    /// That way `/home/*/...` still finds a home directory with a non-UTF-8 name and cannot
    /// be used to hide files. Literal components are compared byte for byte. Returned
    /// paths always keep the original bytes.
    pub fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, SysrootError> {
        let parts = parse_glob(pattern).map_err(|e| err(Path::new(pattern), e))?;
        let mut candidates = vec![PathBuf::from("/")];
        for (index, part) in parts.iter().enumerate() {
            let is_last = index + 1 == parts.len();
            candidates = match part {
                GlobPart::Literal(name) => self.glob_literal(candidates, name, is_last)?,
                GlobPart::Pattern(pat) => self.glob_pattern(candidates, pat)?,
            };
        }
        if pattern.ends_with('/') {
            candidates.retain(|p| self.metadata(p).is_ok_and(|m| m.is_dir()));
        }
        candidates.sort();
        candidates.dedup();
        Ok(candidates)
    }

    /// Appends a literal glob component. The final one must exist (even as a dangling
    /// link); intermediate ones are checked when their directory is listed or at the end. A path
    /// that cannot be looked at (permission denied, an I/O error) is an error, never "absent".
    fn glob_literal(
        &self,
        candidates: Vec<PathBuf>,
        name: &str,
        is_last: bool,
    ) -> Result<Vec<PathBuf>, SysrootError> {
        let mut out = Vec::new();
        for p in candidates.into_iter().map(|dir| dir.join(name)) {
            if is_last {
                match self.symlink_metadata(&p) {
                    Ok(_) => {}
                    Err(e) if is_no_match(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Expands one wildcard component against each candidate directory's listing.
    fn glob_pattern(
        &self,
        candidates: Vec<PathBuf>,
        pattern: &glob::Pattern,
    ) -> Result<Vec<PathBuf>, SysrootError> {
        let mut out = Vec::new();
        for dir in candidates {
            let entries = match self.read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if is_no_match(&e) => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                entries
                    .into_iter()
                    .filter(|e| pattern.matches_with(&e.name.to_string_lossy(), GLOB_OPTIONS))
                    .map(|e| dir.join(e.name)),
            );
        }
        Ok(out)
    }

    /// `fstat` of the resolved path through an `O_PATH` fd.
    fn stat(&self, path: &Path, follow: bool) -> io::Result<Metadata> {
        File::from(self.resolve(path, PATH_FLAGS, follow)?).metadata()
    }

    /// Reads a link through an `O_PATH|O_NOFOLLOW` fd to the link itself.
    fn link_target(&self, path: &Path) -> io::Result<OsString> {
        let fd = self.resolve(path, PATH_FLAGS, false)?;
        if !File::from(fd.try_clone()?).metadata()?.is_symlink() {
            return Err(errno_to_io(Errno::EINVAL));
        }
        readlinkat(&fd, "").map_err(errno_to_io)
    }

    /// Lists the directory at `path` (see [`Sysroot::read_dir`]).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let fd = self.resolve(path, LIST_FLAGS, true)?;
        let mut dir = Dir::from_fd(fd).map_err(errno_to_io)?;
        let mut raw = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(errno_to_io)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                raw.push((name.to_os_string(), entry.file_type()));
            }
        }
        let mut out = raw
            .into_iter()
            .map(|(name, d_type)| {
                let file_type = match d_type {
                    Some(t) => entry_type(t),
                    None => entry_type_at(dir.as_fd(), &name)?,
                };
                Ok(DirEntry { name, file_type })
            })
            .collect::<io::Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Opens `path` inside the root with `flags`; `follow` says whether a final symlink
    /// is followed (otherwise `O_NOFOLLOW` applies to it).
    fn resolve(&self, path: &Path, flags: OFlag, follow: bool) -> io::Result<OwnedFd> {
        if path.as_os_str().is_empty() {
            return Err(errno_to_io(Errno::ENOENT));
        }
        let flags = if follow {
            flags
        } else {
            flags | OFlag::O_NOFOLLOW
        };
        let result = match self.resolver {
            Resolver::Fallback => resolve_fallback(self.fd.as_fd(), path, flags, follow),
            Resolver::Openat2 | Resolver::Auto => resolve_openat2(self.fd.as_fd(), path, flags),
        };
        result.map_err(errno_to_io)
    }
}

/// Checks that `openat2` with in-root resolution works on `root`.
fn probe_openat2(root: BorrowedFd<'_>) -> Result<(), Errno> {
    resolve_openat2(root, Path::new("."), PATH_FLAGS).map(drop)
}

/// What [`Sysroot::read_device_head`] read: the bytes, and the device number `(major, minor)`
/// when the path was a block device (`None` for a regular file).
pub type DeviceHead = (Vec<u8>, Option<(u64, u64)>);

/// The most [`Sysroot::read`] reads into memory: far above any configuration file or package
/// database a check reads whole, far below what would hurt a small instance.
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// Kernel-confined lookup: `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, retrying on `EAGAIN`.
fn resolve_openat2(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempt = 0;
    loop {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) if attempt < OPENAT2_RETRIES => attempt += 1,
            result => return result,
        }
    }
}

/// Splits a path into byte components. A trailing `/` becomes a final `.`, so the last
/// real component must be a directory, and a symlink there is followed (as the kernel does).
fn split_components(path: &[u8]) -> VecDeque<Vec<u8>> {
    let mut parts: VecDeque<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if path.ends_with(b"/") {
        parts.push_back(b".".to_vec());
    }
    parts
}

/// Component-by-component lookup on fds that never leaves `root` (see the module docs).
fn resolve_fallback(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    follow: bool,
) -> Result<OwnedFd, Errno> {
    let mut rest = split_components(path.as_os_str().as_bytes());
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(name) = rest.pop_front() {
        if name == b"." {
            continue;
        }
        if name == b".." {
            stack.pop();
            continue;
        }
        let dir = stack.last().map_or(root, AsFd::as_fd);
        let is_last = rest.is_empty();
        if is_last && !follow {
            return openat(
                dir,
                name.as_slice(),
                flags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            );
        }
        let stat = fstatat(dir, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        match file_kind(&stat) {
            SFlag::S_IFLNK => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = readlinkat(dir, name.as_slice())?.into_vec();
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                if target.starts_with(b"/") {
                    stack.clear();
                }
                let mut spliced = split_components(&target);
                spliced.append(&mut rest);
                rest = spliced;
            }
            _ if is_last => {
                return openat(
                    dir,
                    name.as_slice(),
                    flags | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
            }
            SFlag::S_IFDIR => {
                stack.push(openat(dir, name.as_slice(), DIR_PATH_FLAGS, Mode::empty())?)
            }
            _ => return Err(Errno::ENOTDIR),
        }
    }
    let dir = stack.last().map_or(root, AsFd::as_fd);
    openat(dir, ".", flags, Mode::empty())
}

/// The `S_IFMT` part of a stat's mode.
fn file_kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

/// Refuses anything that is not a regular file, with a message saying what it is.
fn ensure_regular(file: &File) -> io::Result<()> {
    let ft = file.metadata()?.file_type();
    if ft.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is a {}, not a regular file", crate::localfs::kind_of(ft)),
    ))
}

/// Accepts a block device (returning its device number) or a regular file (`None`); refuses
/// everything else the way [`ensure_regular`] does.
fn ensure_block_or_regular(file: &File) -> io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let md = file.metadata()?;
    if md.file_type().is_block_device() {
        let rdev = md.rdev();
        return Ok(Some((
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev),
        )));
    }
    ensure_regular(file).map(|()| None)
}

/// Maps a `d_type` to an [`EntryType`].
fn entry_type(t: Type) -> EntryType {
    match t {
        Type::File => EntryType::File,
        Type::Directory => EntryType::Dir,
        Type::Symlink => EntryType::Symlink,
        _ => EntryType::Other,
    }
}

/// The entry type from `fstatat(AT_SYMLINK_NOFOLLOW)`, for file systems without `d_type`.
fn entry_type_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<EntryType> {
    let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno_to_io)?;
    Ok(match file_kind(&stat) {
        SFlag::S_IFREG => EntryType::File,
        SFlag::S_IFDIR => EntryType::Dir,
        SFlag::S_IFLNK => EntryType::Symlink,
        _ => EntryType::Other,
    })
}

/// One component of a parsed glob pattern.
#[derive(Debug)]
enum GlobPart {
    /// Looked up by name.
    Literal(String),
    /// Matched against a directory listing.
    Pattern(glob::Pattern),
}

/// Splits a glob pattern into components and compiles the ones that contain wildcards.
fn parse_glob(pattern: &str) -> io::Result<Vec<GlobPart>> {
    if pattern.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty glob pattern",
        ));
    }
    pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| {
            if c.contains(['*', '?', '[']) {
                glob::Pattern::new(c).map(GlobPart::Pattern).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("invalid glob pattern: {e}"),
                    )
                })
            } else {
                Ok(GlobPart::Literal(c.to_owned()))
            }
        })
        .collect()
}

/// Errors that make a glob directory step yield nothing instead of failing:
/// missing, not a directory, or a symlink loop.
fn is_no_match(e: &SysrootError) -> bool {
    let SysrootError::Io { source, .. } = e else {
        return false;
    };
    source
        .raw_os_error()
        .map(Errno::from_raw)
        .is_some_and(|n| matches!(n, Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP))
}

/// Converts a nix errno to an [`io::Error`] that keeps the raw OS error code.
fn errno_to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Wraps an error with the in-root path it concerns.
fn err(path: &Path, source: io::Error) -> SysrootError {
    SysrootError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::print_stderr)] // skip notes when the kernel lacks openat2
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::time::Duration;
    use tempfile::TempDir;

    #[test]
    fn huge_sparse_file_is_refused_not_read_into_memory() {
        let dir = TempDir::new().unwrap();
        let f = File::create(dir.path().join("huge")).unwrap();
        f.set_len(4 << 30).unwrap(); // 4 GiB, sparse
        let root = Sysroot::open(dir.path()).unwrap();
        let e = root.read("/huge").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string().starts_with("/huge: larger than 256 MiB"),
            "{e}"
        );
        std::fs::write(dir.path().join("small"), b"ok").unwrap();
        assert_eq!(root.read("/small").unwrap(), b"ok");
    }

    /// True when `openat2` works here (no `ENOSYS`, no seccomp `EPERM`).
    fn openat2_available() -> bool {
        let dir = TempDir::new().unwrap();
        Sysroot::open_with(dir.path(), Resolver::Openat2).is_ok()
    }

    /// Defines each test once and runs it under both resolvers: `name::fallback` and
    /// `name::openat2` (the latter is skipped, with a note, when `openat2` is unavailable).
    macro_rules! both_resolvers {
        ($($(#[$attr:meta])* $name:ident($r:ident) $body:block)*) => {$(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn run($r: Resolver) $body

                #[test]
                $(#[$attr])*
                fn fallback() {
                    run(Resolver::Fallback);
                }

                #[test]
                $(#[$attr])*
                fn openat2() {
                    if openat2_available() {
                        run(Resolver::Openat2);
                    } else {
                        eprintln!("note: openat2 unavailable here; skipped");
                    }
                }
            }
        )*};
    }

    /// Writes `contents` to `rel` under `root`, creating parent directories.
    fn file(root: &TempDir, rel: &str, contents: &str) {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    /// Creates the symlink `rel -> target` under `root`, creating parent directories.
    fn link(root: &TempDir, rel: &str, target: &str) {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// Opens `root` with resolver `r`, checking the resolver is the one asked for.
    fn sysroot(root: &TempDir, r: Resolver) -> Sysroot {
        let s = Sysroot::open_with(root.path(), r).unwrap();
        assert_eq!(s.resolver(), r);
        s
    }

    /// A fixture that stands in for an audited system.
    fn tree() -> TempDir {
        let t = TempDir::new().unwrap();
        file(&t, "usr/share/zoneinfo/UTC", "tree-utc");
        file(&t, "etc/passwd", "tree-passwd-marker");
        file(&t, "etc/hostname", "tree-hostname");
        t
    }

    fn raw(e: &SysrootError) -> Option<i32> {
        match e {
            SysrootError::Io { source, .. } | SysrootError::OpenRoot { source, .. } => {
                source.raw_os_error()
            }
            SysrootError::NotADirectory { .. } => None,
        }
    }

    /// Builds `l0 -> l1 -> ... -> l{n-1} -> target`; opening `l0` follows `n` links.
    fn chain(t: &TempDir, n: usize) {
        file(t, "chain/target", "end");
        for i in 0..n {
            let next = if i + 1 == n {
                "target".to_string()
            } else {
                format!("l{}", i + 1)
            };
            link(t, &format!("chain/l{i}"), &next);
        }
    }

    both_resolvers! {
        absolute_symlink_resolves_inside_root(r) {
            let t = tree();
            link(&t, "etc/localtime", "/usr/share/zoneinfo/UTC");
            let s = sysroot(&t, r);
            assert_eq!(s.read_to_string("/etc/localtime").unwrap(), "tree-utc");
            assert_eq!(s.read_to_string("etc/localtime").unwrap(), "tree-utc");
        }

        absolute_link_to_host_file_reads_tree_copy(r) {
            let t = tree();
            link(&t, "etc/escape", "/etc/passwd");
            link(&t, "etc/escape2", "/../../../etc/passwd");
            let s = sysroot(&t, r);
            assert_eq!(s.read_to_string("/etc/escape").unwrap(), "tree-passwd-marker");
            assert_eq!(s.read_to_string("/etc/escape2").unwrap(), "tree-passwd-marker");
        }

        relative_symlink(r) {
            let t = tree();
            link(&t, "etc/rel", "../usr/share/zoneinfo/UTC");
            link(&t, "usr/zi", "share/zoneinfo");
            let s = sysroot(&t, r);
            assert_eq!(s.read_to_string("/etc/rel").unwrap(), "tree-utc");
            assert_eq!(s.read_to_string("/usr/zi/UTC").unwrap(), "tree-utc");
            assert_eq!(s.read_to_string("/usr/zi/../zoneinfo/UTC").unwrap(), "tree-utc");
        }

        dotdot_stays_in_root(r) {
            let t = tree();
            std::fs::create_dir_all(t.path().join("a")).unwrap();
            link(&t, "a/b", "../../../../..");
            link(&t, "a/c", "../../../../../etc");
            let s = sysroot(&t, r);
            for p in [
                "../../../../etc/hostname",
                "/../../../../etc/hostname",
                "/etc/../../../etc/hostname",
                "/a/b/etc/hostname",
                "/a/b/a/b/../etc/hostname",
                "/a/c/hostname",
            ] {
                assert_eq!(s.read_to_string(p).unwrap(), "tree-hostname", "{p}");
            }
            let names: Vec<_> = s.read_dir("/a/b/..").unwrap().into_iter().map(|e| e.name).collect();
            assert_eq!(names, ["a", "etc", "usr"]);
        }

        link_loop_is_eloop(r) {
            let t = tree();
            link(&t, "a", "b");
            link(&t, "b", "a");
            link(&t, "self", "self");
            link(&t, "dir/x", "../dir/x/y");
            let s = sysroot(&t, r);
            for p in ["/a", "/b", "/self", "/dir/x", "/a/more"] {
                let e = s.read(p).unwrap_err();
                assert_eq!(raw(&e), Some(libc_eloop()), "{p}: {e}");
                assert!(!s.exists(p));
            }
            let e = s.metadata("/self").unwrap_err();
            assert_eq!(raw(&e), Some(libc_eloop()), "{e}");
            assert!(s.symlink_metadata("/self").unwrap().is_symlink());
        }

        symlink_limit_is_forty(r) {
            let s_for = |n: usize| {
                let t = tree();
                chain(&t, n);
                let s = sysroot(&t, r);
                (s.read_to_string("/chain/l0"), t)
            };
            assert_eq!(s_for(39).0.unwrap(), "end");
            assert_eq!(s_for(40).0.unwrap(), "end");
            let e = s_for(41).0.unwrap_err();
            assert_eq!(raw(&e), Some(libc_eloop()), "{e}");
        }

        dangling_link_is_not_found(r) {
            let t = tree();
            link(&t, "etc/dangling", "/nonexistent/file");
            let s = sysroot(&t, r);
            let e = s.read("/etc/dangling").unwrap_err();
            assert!(e.is_not_found(), "{e}");
            assert!(s.metadata("/etc/dangling").unwrap_err().is_not_found());
            assert!(!s.exists("/etc/dangling"));
            assert!(s.symlink_metadata("/etc/dangling").unwrap().is_symlink());
            assert!(s.read("/no/such/file").unwrap_err().is_not_found());
            assert!(s.read("").unwrap_err().is_not_found());
        }

        metadata_follows_and_symlink_metadata_does_not(r) {
            let t = tree();
            link(&t, "etc/localtime", "/usr/share/zoneinfo/UTC");
            link(&t, "etc/dirlink", "/usr/share");
            let s = sysroot(&t, r);
            let m = s.metadata("/etc/localtime").unwrap();
            assert!(m.is_file());
            assert_eq!(m.len(), "tree-utc".len() as u64);
            assert!(s.symlink_metadata("/etc/localtime").unwrap().is_symlink());
            assert!(s.symlink_metadata("/etc/passwd").unwrap().is_file());
            // A trailing slash follows the link, as in the kernel.
            assert!(s.symlink_metadata("/etc/dirlink/").unwrap().is_dir());
            assert!(s.metadata("/").unwrap().is_dir());
            assert!(s.symlink_metadata("/").unwrap().is_dir());
            let e = s.metadata("/etc/passwd/").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotADirectory, "{e}");
        }

        read_link_returns_raw_target(r) {
            let t = tree();
            link(&t, "etc/localtime", "/usr/share/zoneinfo/UTC");
            link(&t, "etc/rel", "../x/../y");
            link(&t, "etc/dangling", "/nope");
            link(&t, "lnk", "etc");
            let s = sysroot(&t, r);
            assert_eq!(s.read_link("/etc/localtime").unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
            assert_eq!(s.read_link("etc/rel").unwrap(), Path::new("../x/../y"));
            assert_eq!(s.read_link("/etc/dangling").unwrap(), Path::new("/nope"));
            // Intermediate links are followed, the final one is read.
            assert_eq!(s.read_link("/lnk/localtime").unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
            let e = s.read_link("/etc/passwd").unwrap_err();
            assert_eq!(raw(&e), Some(Errno::EINVAL as i32), "{e}");
            assert!(s.read_link("/etc/missing").unwrap_err().is_not_found());
        }

        fifo_is_refused_without_blocking(r) {
            let t = tree();
            nix::unistd::mkfifo(&t.path().join("etc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
            link(&t, "etc/fifolink", "/etc/fifo");
            let s = sysroot(&t, r);
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let a = s.read("/etc/fifo").map(drop);
                let b = s.open_file("/etc/fifolink").map(drop);
                let m = s.metadata("/etc/fifo").map(|m| m.file_type().is_fifo());
                tx.send((a, b, m)).unwrap();
            });
            let (a, b, m) = rx.recv_timeout(Duration::from_secs(10)).expect("open_file blocked on a FIFO");
            for e in [a.unwrap_err(), b.unwrap_err()] {
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
                assert!(e.to_string().contains("is a FIFO, not a regular file"), "{e}");
            }
            assert!(m.unwrap());
            drop(t);
        }

        device_head_reads_files_and_refuses_other_types(r) {
            let t = tree();
            file(&t, "dev/vda2", "LUKS-header-stand-in");
            link(&t, "dev/disk/by-id/x", "../../vda2");
            nix::unistd::mkfifo(&t.path().join("dev/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
            let s = sysroot(&t, r);
            assert_eq!(s.read_device_head("/dev/vda2", 4).unwrap(), (b"LUKS".to_vec(), None));
            assert_eq!(s.read_device_head("/dev/disk/by-id/x", 100).unwrap().0.len(), 20);
            for p in ["/dev/fifo", "/dev", "/dev/missing"] {
                assert!(s.read_device_head(p, 4).is_err(), "{p}");
            }
            let e = Sysroot::open_with("/", r).unwrap().read_device_head("/dev/null", 4).unwrap_err();
            assert_eq!(e.to_string(), "/dev/null: is a character device, not a regular file");
        }

        #[ignore = "needs root: block device nodes (mknod)"]
        device_head_reads_block_devices(r) {
            let t = tree();
            std::fs::create_dir_all(t.path().join("dev")).unwrap();
            let s = sysroot(&t, r);
            // a block device node (made in the tree for each of the host's block devices until one
            // may be opened here: sandboxes refuse some): read, and its number given
            let mut devs: Vec<String> = std::fs::read_dir("/sys/dev/block")
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            devs.sort();
            for (i, dev) in devs.iter().enumerate() {
                let (major, minor) = dev.split_once(':').unwrap();
                let (major, minor): (u64, u64) = (major.parse().unwrap(), minor.parse().unwrap());
                let node = format!("dev/blk{i}");
                nix::sys::stat::mknod(
                    &t.path().join(&node),
                    SFlag::S_IFBLK,
                    Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(major, minor),
                )
                .expect("mknod (the tests run as root)");
                match s.read_device_head(format!("/{node}"), 512) {
                    Ok((head, rdev)) => {
                        assert_eq!(rdev, Some((major, minor)), "{dev}");
                        assert!(head.len() <= 512);
                        return;
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{dev}: {e}"),
                }
            }
            eprintln!("note: no block device may be opened here; block read skipped");
        }

        directory_is_refused(r) {
            let t = tree();
            let s = sysroot(&t, r);
            for p in ["/etc", "/", "/etc/..", "/etc/"] {
                let e = s.open_file(p).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p}: {e}");
                assert!(e.to_string().ends_with("is a directory, not a regular file"), "{e}");
            }
        }

        device_is_refused(r) {
            let t = tree();
            link(&t, "etc/null", "/dev/null");
            let s = Sysroot::open_with("/", r).unwrap();
            let e = s.open_file("/dev/null").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert_eq!(e.to_string(), "/dev/null: is a character device, not a regular file");
            // In the tree, the link points at the tree's own (missing) /dev/null.
            assert!(sysroot(&t, r).open_file("/etc/null").unwrap_err().is_not_found());
        }

        read_dir_sorted_with_types(r) {
            let t = tree();
            file(&t, "d/b.txt", "");
            file(&t, "d/.hidden", "");
            std::fs::create_dir(t.path().join("d/a")).unwrap();
            link(&t, "d/c", "/etc");
            nix::unistd::mkfifo(&t.path().join("d/f"), Mode::from_bits_truncate(0o600)).unwrap();
            link(&t, "dl", "/d");
            let s = sysroot(&t, r);
            let want = vec![
                DirEntry { name: ".hidden".into(), file_type: EntryType::File },
                DirEntry { name: "a".into(), file_type: EntryType::Dir },
                DirEntry { name: "b.txt".into(), file_type: EntryType::File },
                DirEntry { name: "c".into(), file_type: EntryType::Symlink },
                DirEntry { name: "f".into(), file_type: EntryType::Other },
            ];
            assert_eq!(s.read_dir("/d").unwrap(), want);
            assert_eq!(s.read_dir("/dl").unwrap(), want);
            assert_eq!(s.read_dir("/d/c").unwrap().len(), 2);
            assert!(s.read_dir("/missing").unwrap_err().is_not_found());
            let e = s.read_dir("/etc/passwd").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
        }

        open_dir_resolves_in_root_and_refuses_non_directories(r) {
            use std::os::unix::fs::MetadataExt;
            let t = tree();
            link(&t, "etc/up", "../../../..");
            link(&t, "zone", "/usr/share/zoneinfo");
            let s = sysroot(&t, r);
            let root = File::from(s.open_dir("/").unwrap()).metadata().unwrap();
            assert_eq!(root.ino(), t.path().metadata().unwrap().ino());
            // `..` and links stay inside the root, a final link is followed.
            let up = File::from(s.open_dir("/etc/up").unwrap()).metadata().unwrap();
            assert_eq!(up.ino(), root.ino());
            let zone = File::from(s.open_dir("/zone").unwrap()).metadata().unwrap();
            assert_eq!(zone.ino(), t.path().join("usr/share/zoneinfo").metadata().unwrap().ino());
            let e = s.open_dir("/etc/passwd").unwrap_err();
            assert_eq!(raw(&e), Some(Errno::ENOTDIR as i32), "{e}");
            assert!(s.open_dir("/missing").unwrap_err().is_not_found());
        }

        glob_expands_in_root(r) {
            let t = tree();
            file(&t, "etc/ssh/sshd_config.d/50-cloud.conf", "");
            file(&t, "etc/ssh/sshd_config.d/10-a.conf", "");
            file(&t, "etc/ssh/sshd_config.d/.hidden.conf", "");
            file(&t, "etc/ssh/sshd_config.d/notes.txt", "");
            file(&t, "home/alice/.ssh/authorized_keys", "");
            file(&t, "home/bob/.ssh/authorized_keys", "");
            std::fs::create_dir_all(t.path().join("home/carol")).unwrap();
            file(&t, "srv/users/dave/.ssh/authorized_keys", "");
            link(&t, "home/dave", "/srv/users/dave");
            link(&t, "home/dangling", "/nowhere");
            let s = sysroot(&t, r);
            let g = |p: &str| s.glob(p).unwrap();
            let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
            assert_eq!(
                g("/etc/ssh/sshd_config.d/*.conf"),
                paths(&["/etc/ssh/sshd_config.d/10-a.conf", "/etc/ssh/sshd_config.d/50-cloud.conf"])
            );
            assert_eq!(g("/etc/ssh/sshd_config.d/?0-a.conf"), paths(&["/etc/ssh/sshd_config.d/10-a.conf"]));
            assert_eq!(g("/etc/ssh/sshd_config.d/.*.conf"), paths(&["/etc/ssh/sshd_config.d/.hidden.conf"]));
            assert_eq!(
                g("/home/*/.ssh/authorized_keys"),
                paths(&[
                    "/home/alice/.ssh/authorized_keys",
                    "/home/bob/.ssh/authorized_keys",
                    "/home/dave/.ssh/authorized_keys",
                ])
            );
            assert_eq!(g("/home/[ab]*/"), paths(&["/home/alice", "/home/bob"]));
            assert_eq!(g("/etc/passwd"), paths(&["/etc/passwd"]));
            assert_eq!(g("/home/dangling"), paths(&["/home/dangling"]));
            assert!(g("/etc/missing.d/*.conf").is_empty());
            assert!(g("/nope/*/x").is_empty());
            assert!(g("/etc/passwd/*").is_empty());
            assert!(g("/etc/nothing").is_empty());
            let e = s.glob("/etc/[").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert_eq!(s.glob("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }

        non_utf8_names_survive(r) {
            let t = tree();
            let bad = OsStr::from_bytes(b"bad\xff");
            std::fs::create_dir_all(t.path().join("d").join(bad)).unwrap();
            std::fs::write(t.path().join("d").join(bad).join("f"), "x").unwrap();
            let s = sysroot(&t, r);
            let entries = s.read_dir("/d").unwrap();
            assert_eq!(entries, vec![DirEntry { name: bad.to_os_string(), file_type: EntryType::Dir }]);
            let inside = Path::new("/d").join(bad).join("f");
            assert_eq!(s.read_to_string(&inside).unwrap(), "x");
            assert_eq!(s.glob("/d/*/f").unwrap(), vec![inside.clone()]);
            assert_eq!(s.glob("/d/bad?/f").unwrap(), vec![inside]);
            assert!(s.glob("/d/bad").unwrap().is_empty());
        }

        invalid_utf8_content_is_invalid_data(r) {
            let t = tree();
            std::fs::write(t.path().join("etc/bin"), b"ok\xff").unwrap();
            let s = sysroot(&t, r);
            let e = s.read_to_string("/etc/bin").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().starts_with("/etc/bin: "), "{e}");
            assert_eq!(s.read("/etc/bin").unwrap(), b"ok\xff");
        }

        errors_name_the_in_root_path(r) {
            let t = tree();
            let s = sysroot(&t, r);
            let e = s.read("/etc/shadow").unwrap_err();
            assert_eq!(e.to_string(), "/etc/shadow: No such file or directory (os error 2)");
            let e = s.read("/etc/passwd/x").unwrap_err();
            assert_eq!(raw(&e), Some(Errno::ENOTDIR as i32), "{e}");
        }
    }

    fn libc_eloop() -> i32 {
        Errno::ELOOP as i32
    }

    #[test]
    fn eloop_is_errno_40() {
        assert_eq!(libc_eloop(), 40);
    }

    #[test]
    fn open_missing_root_is_open_root_not_found() {
        let t = TempDir::new().unwrap();
        let e = Sysroot::open(t.path().join("missing")).unwrap_err();
        assert!(matches!(e, SysrootError::OpenRoot { .. }), "{e:?}");
        assert!(e.is_not_found());
    }

    #[test]
    fn open_regular_file_is_not_a_directory() {
        let t = tree();
        let e = Sysroot::open(t.path().join("etc/passwd")).unwrap_err();
        assert!(matches!(e, SysrootError::NotADirectory { .. }), "{e:?}");
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn root_is_canonical_and_host_root_detected() {
        let s = Sysroot::open("/").unwrap();
        assert!(s.is_host_root());
        let t = tree();
        link(&t, "rootlink", ".");
        let s = Sysroot::open(t.path().join("rootlink/etc/..")).unwrap();
        assert!(!s.is_host_root());
        assert_eq!(s.root(), t.path().canonicalize().unwrap());
        assert_eq!(s.host_path("/etc/../shadow"), s.root().join("etc/shadow"));
        assert_ne!(s.resolver(), Resolver::Auto);
    }

    #[test]
    fn reads_host_os_release() {
        let want = match std::fs::read_to_string("/etc/os-release") {
            Ok(text) => text,
            Err(e) => {
                eprintln!("note: host has no readable /etc/os-release ({e}); skipped");
                return;
            }
        };
        for r in [Resolver::Auto, Resolver::Fallback] {
            let s = Sysroot::open_with("/", r).unwrap();
            assert_eq!(s.read_to_string("/etc/os-release").unwrap(), want);
        }
    }

    #[test]
    fn auto_picks_openat2_on_modern_kernel() {
        let how = OpenHow::new().flags(PATH_FLAGS);
        match openat2(nix::fcntl::AT_FDCWD, ".", how) {
            Err(e @ (Errno::ENOSYS | Errno::EPERM)) => {
                eprintln!("note: openat2 unavailable ({e}); skipped");
                return;
            }
            other => drop(other.unwrap()),
        }
        let t = TempDir::new().unwrap();
        assert_eq!(
            Sysroot::open(t.path()).unwrap().resolver(),
            Resolver::Openat2
        );
    }

    #[test]
    fn entry_type_at_reports_types() {
        let t = tree();
        link(&t, "l", "/etc");
        let root = File::open(t.path()).unwrap();
        let ty = |n: &str| entry_type_at(root.as_fd(), OsStr::new(n)).unwrap();
        assert_eq!(ty("etc"), EntryType::Dir);
        assert_eq!(ty("etc/passwd"), EntryType::File);
        assert_eq!(ty("l"), EntryType::Symlink);
    }

    #[test]
    fn split_components_marks_trailing_slash() {
        let parts = |p: &str| {
            split_components(p.as_bytes())
                .into_iter()
                .map(|c| String::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(parts("/etc//ssh/"), ["etc", "ssh", "."]);
        assert_eq!(parts("a/./b"), ["a", ".", "b"]);
        assert_eq!(parts("/"), ["."]);
    }
}
