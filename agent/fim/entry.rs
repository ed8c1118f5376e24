//! One manifest entry: what is recorded about a path, and how it is read from the tree.
//!
//! Every read is relative to the fd of the directory the walk found the entry in
//! ([`crate::host::walk::Visit`]), never by path. Regular files are opened there with
//! `O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC|O_NOCTTY` (and `O_NOATIME` when allowed), then
//! `fstat`ed: if the name is no longer the regular file that the walk saw (a race swapped it for
//! a FIFO, a device, a symlink or another file), nothing is read. Symlinks are read with
//! `readlinkat`. Data is read with plain `read` into a 256 KiB buffer reused per worker thread.
//! A file whose size or identity changed while it was hashed is recorded with a note, not as
//! corruption.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use sha2::{Digest, Sha256};

use super::policy::Policy;
use super::walk::stat_note;
pub use crate::host::pathbytes::display_bytes;
use crate::host::walk::{self, Visit};

/// Size of the per-thread read buffer.
pub const READ_BUF: usize = 256 * 1024;

/// Name of the extended attribute holding file capabilities.
pub const CAPS_XATTR: &str = "security.capability";

/// Type of an entry. FIFOs, sockets and devices are `Other` and never opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed).
    Symlink,
    /// FIFO, socket, character or block device.
    Other,
}

impl Kind {
    /// The word used in manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "file" => Kind::File,
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            "other" => Kind::Other,
            _ => return None,
        })
    }

    /// The kind of an `lstat` result.
    pub fn of(stat: &FileStat) -> Kind {
        match walk::kind(stat) {
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// Everything recorded about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute in-root path, raw bytes (may not be UTF-8).
    pub path: Vec<u8>,
    /// Type.
    pub kind: Kind,
    /// Permission bits, `07777`.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Size in bytes (`lstat`; the bytes hashed for files).
    pub size: u64,
    /// Modification time, seconds since the epoch; reported, never compared.
    pub mtime: i64,
    /// SHA-256 of the content (regular files under a hashing policy, when readable).
    pub sha256: Option<[u8; 32]>,
    /// Raw `security.capability` value (regular files only).
    pub caps: Option<Vec<u8>>,
    /// Raw symlink target.
    pub target: Option<Vec<u8>>,
    /// Why part of the entry could not be read (vanished, changed while hashed, EACCES...).
    pub note: Option<String>,
}

impl Entry {
    /// True for a regular file with the setuid or setgid bit.
    pub fn is_setid(&self) -> bool {
        self.kind == Kind::File && self.mode & 0o6000 != 0
    }

    /// True for a regular file that carries file capabilities.
    pub fn has_caps(&self) -> bool {
        self.kind == Kind::File && self.caps.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// What the entry is, for reports: `file, mode 4755, 0:0, setuid/setgid`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}, mode {:04o}, {}:{}",
            self.kind.as_str(),
            self.mode,
            self.uid,
            self.gid
        );
        if self.is_setid() {
            s.push_str(", setuid/setgid");
        }
        if self.has_caps() {
            s.push_str(", file capabilities");
        }
        s
    }
}

/// A path found by the walk, with its `lstat`, before it is read.
#[derive(Debug)]
pub struct Pending {
    /// The entry: its in-root path, its `lstat` (or why there is none) and the directory fd it
    /// is read through.
    pub found: Visit,
    /// The policy that applies.
    pub policy: Policy,
    /// A walk error about this entry (a directory that could not be entered or listed).
    pub walk_note: Option<String>,
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Pending {
    /// Absolute in-root path, raw bytes.
    pub fn path(&self) -> &[u8] {
        &self.found.path
    }

    /// The size `lstat` gave, if it could be taken.
    pub fn size(&self) -> Option<u64> {
        self.found
            .stat
            .as_ref()
            .ok()
            .map(|st| u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Bytes a read would hash (for scheduling): the size of a regular file, else 0.
    pub fn weight(&self) -> u64 {
        match &self.found.stat {
            Ok(st) if Kind::of(st) == Kind::File && self.policy.hashes() => {
                u64::try_from(st.st_size).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Reads the entry: metadata always, content when `hash` and it is a regular file.
    pub fn read(&self, hash: bool) -> Entry {
        let mut entry = Entry {
            path: self.found.path.clone(),
            kind: Kind::Other,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            sha256: None,
            caps: None,
            target: None,
            note: self.walk_note.clone(),
        };
        let (st, dir) = match self.found.located() {
            Ok(located) => located,
            Err(fault) => {
                entry.note = Some(stat_note(fault));
                return entry;
            }
        };
        entry.kind = Kind::of(st);
        entry.mode = st.st_mode & 0o7777;
        entry.uid = st.st_uid;
        entry.gid = st.st_gid;
        entry.size = u64::try_from(st.st_size).unwrap_or(0);
        entry.mtime = st.st_mtime;
        let name = self.found.name();
        match entry.kind {
            Kind::Symlink => match readlinkat(dir, name) {
                Ok(t) => entry.target = Some(t.into_vec()),
                Err(e) => entry.note = Some(format!("readlink: {}", io_error(e))),
            },
            Kind::File => read_file(dir, name, st, hash, &mut entry),
            Kind::Dir | Kind::Other => {}
        }
        entry
    }
}

/// Reads the regular file `name` in `dir` that `lstat` saw as `st`: its capabilities, and its
/// content when `hash`.
fn read_file(dir: BorrowedFd<'_>, name: &[u8], st: &FileStat, hash: bool, entry: &mut Entry) {
    let mut file = match open_nofollow(dir, name) {
        Ok(f) => f,
        Err(e) => {
            // Caps can still be read from the entry itself (lgetxattr never follows).
            entry.caps = caps_at(dir, name);
            entry.note = Some(describe_open_error(&e));
            return;
        }
    };
    let opened = match fstat(&file) {
        Ok(m) => m,
        Err(e) => {
            entry.note = Some(format!("fstat: {}", io_error(e)));
            return;
        }
    };
    if Kind::of(&opened) != Kind::File || opened.st_ino != st.st_ino || opened.st_dev != st.st_dev {
        entry.note = Some(format!(
            "replaced while read (now {})",
            describe_type(&opened)
        ));
        return;
    }
    match xattr::FileExt::get_xattr(&file, CAPS_XATTR) {
        Ok(caps) => entry.caps = caps,
        Err(e) if e.raw_os_error() == Some(Errno::ENOTSUP as i32) => {}
        Err(e) => entry.note = Some(format!("reading {CAPS_XATTR}: {e}")),
    }
    if !hash {
        return;
    }
    let size = u64::try_from(opened.st_size).unwrap_or(0);
    if let Some(why) = too_costly_to_hash(size, u64::try_from(opened.st_blocks).unwrap_or(0)) {
        entry.note = Some(why);
        return;
    }
    match hash_file(&mut file, size) {
        Ok((digest, read)) => {
            let after = entry.size;
            // a write in place at the same size changes the inode's change time (which no
            // user can set), so it is caught too
            let rewritten = fstat(&file).is_ok_and(|now| {
                (
                    now.st_ctime,
                    now.st_ctime_nsec,
                    now.st_mtime,
                    now.st_mtime_nsec,
                ) != (
                    opened.st_ctime,
                    opened.st_ctime_nsec,
                    opened.st_mtime,
                    opened.st_mtime_nsec,
                )
            });
            if read != size || read != after {
                entry.note = Some(format!("changed while hashed (size {size} -> {read})"));
                entry.size = read;
            } else if rewritten {
                entry.note = Some("changed while hashed (written to during the read)".into());
            } else {
                entry.sha256 = Some(digest);
            }
        }
        Err(e) => entry.note = Some(format!("read: {e}")),
    }
}

/// The most bytes one file may make the agent hash (more than any file of an image's system
/// directories holds).
pub const MAX_HASH_BYTES: u64 = 16 << 30;
/// A file larger than this that is mostly holes (sparse) is not hashed: its zeros would cost seconds
/// per gigabyte to hash, a way for an image to stall a boot.
pub const SPARSE_HASH_BYTES: u64 = 1 << 30;

/// Why a file of `size` bytes with `blocks` 512-byte blocks allocated is not hashed, if it is not:
/// it is recorded with the reason instead (so `fim verify` reports it as not verifiable).
fn too_costly_to_hash(size: u64, blocks: u64) -> Option<String> {
    let allocated = blocks.saturating_mul(512);
    if size > MAX_HASH_BYTES {
        Some(format!(
            "not hashed: {size} bytes, more than the {} GiB a file may take",
            MAX_HASH_BYTES >> 30
        ))
    } else if size > SPARSE_HASH_BYTES && allocated < size / 8 {
        Some(format!(
            "not hashed: a sparse file of {size} bytes with {allocated} allocated (more than {} GiB, mostly holes)",
            SPARSE_HASH_BYTES >> 30
        ))
    } else {
        None
    }
}

/// An errno as the `io::Error` it prints as (`No such file or directory (os error 2)`).
fn io_error(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Hashes an open file; returns the digest and the number of bytes read.
fn hash_file(file: &mut File, expected: u64) -> io::Result<([u8; 32], u64)> {
    BUF.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() != READ_BUF {
            buf.resize(READ_BUF, 0);
        }
        let mut hasher = Sha256::new();
        let mut total: u64 = 0;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
            // A file growing without end (a log being written) cannot hold us forever.
            if total > expected.saturating_add(READ_BUF as u64 * 4) {
                break;
            }
        }
        Ok((hasher.finalize().into(), total))
    })
}

/// Opens the file `name` in `dir` for reading without following a symlink and without blocking.
fn open_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> Result<File, Errno> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    // O_NOATIME keeps access times as they were (allowed for the owner and for root).
    match openat(dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => openat(dir, name, flags, Mode::empty()),
        other => other,
    }
    .map(File::from)
}

/// The `security.capability` of the entry `name` in `dir`, without opening it. `lgetxattr` has
/// no `*at` form (before Linux 6.13), so the entry is named through the directory's fd in
/// `/proc/self/fd`; the final name is not followed.
fn caps_at(dir: BorrowedFd<'_>, name: &[u8]) -> Option<Vec<u8>> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    xattr::get(OsStr::from_bytes(&path), CAPS_XATTR)
        .ok()
        .flatten()
}

fn describe_open_error(e: &Errno) -> String {
    match e {
        Errno::ELOOP => "replaced by a symlink while read".to_string(),
        Errno::ENOENT => "vanished while read".to_string(),
        other => format!("open: {}", other.desc()),
    }
}

fn describe_type(stat: &FileStat) -> &'static str {
    match walk::kind(stat) {
        SFlag::S_IFREG => "another file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        _ => "something else",
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses lower- or upper-case hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Escapes raw bytes for a manifest field: printable ASCII except `\` is kept, everything
/// else (controls, tab, newline, space, DEL, bytes >= 0x80) becomes `\xHH`, `\` becomes `\\`.
pub fn escape_field(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x21..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// Reverses [`escape_field`]; `None` on a malformed escape.
pub fn unescape_field(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => match bytes.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let h = text.get(i + 2..i + 4)?;
                    out.push(u8::from_str_radix(h, 16).ok()?);
                    i += 4;
                }
                _ => return None,
            },
            b @ 0x21..=0x7e => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut s = String::new();
        escape_field(&all, &mut s);
        assert!(!s.contains(['\t', '\n', ' ']));
        assert_eq!(unescape_field(&s).unwrap(), all);
        assert_eq!(unescape_field("a\\q"), None);
        assert_eq!(unescape_field("a\\x4"), None);
        assert_eq!(unescape_field("a b"), None);
    }

    #[test]
    fn display_escapes_only_what_is_not_text() {
        assert_eq!(display_bytes(b"/usr/bin/ls"), "/usr/bin/ls");
        assert_eq!(display_bytes(b"/tmp/bad\xff"), "/tmp/bad\\xff");
        assert_eq!(display_bytes("/tmp/caf\u{e9}".as_bytes()), "/tmp/caf\u{e9}");
        assert_eq!(display_bytes(b"a\nb"), "a\\x0ab");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff").unwrap(), [0, 0xab, 0xff]);
        assert!(unhex("0").is_none());
        assert!(unhex("zz").is_none());
    }

    /// The entry `/name` of `s` as the walk finds it.
    fn found(s: &crate::sysroot::Sysroot, name: &str) -> Pending {
        let path = format!("/{name}");
        Pending {
            found: walk::SortedWalk::new(s, path.as_bytes(), true)
                .next()
                .unwrap(),
            policy: Policy::Full,
            walk_note: None,
        }
    }

    #[test]
    fn reads_file_symlink_and_fifo_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        nix::unistd::mkfifo(&t.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        let s = crate::sysroot::Sysroot::open(t.path()).unwrap();
        let pending = |name: &str| found(&s, name);
        let e = pending("f").read(true);
        assert_eq!(e.kind, Kind::File);
        assert_eq!(e.size, 5);
        assert_eq!(
            hex(&e.sha256.unwrap()),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(pending("f").read(false).sha256, None);
        let l = pending("l").read(true);
        assert_eq!(
            (l.kind, l.target.as_deref()),
            (Kind::Symlink, Some(&b"f"[..]))
        );
        let p = pending("p").read(true);
        assert_eq!((p.kind, p.sha256, p.note), (Kind::Other, None, None));
    }

    #[test]
    fn a_file_rewritten_in_place_at_the_same_size_while_hashed_is_noted() {
        use std::os::unix::fs::FileExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("big");
        std::fs::write(&f, vec![b'a'; 96 << 20]).unwrap();
        let s = crate::sysroot::Sysroot::open(t.path()).unwrap();
        let p = found(&s, "big");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let e = std::thread::scope(|scope| {
            scope.spawn(|| {
                let w = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    w.write_at(b"b", (i * 4096) % (96 << 20)).unwrap();
                    i += 1;
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            });
            // let the writer start before the read
            std::thread::sleep(std::time::Duration::from_millis(20));
            let e = p.read(true);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            e
        });
        assert_eq!(e.sha256, None, "a torn read is never sealed");
        assert!(e.note.unwrap().contains("changed while hashed"));
    }

    #[test]
    fn a_huge_sparse_file_is_noted_not_hashed() {
        let t = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(t.path().join("sparse")).unwrap();
        f.set_len(10 << 30).unwrap();
        let s = crate::sysroot::Sysroot::open(t.path()).unwrap();
        let start = std::time::Instant::now();
        let e = found(&s, "sparse").read(true);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(e.sha256, None);
        assert!(e.note.unwrap().contains("sparse file of 10737418240 bytes"));
        assert_eq!(
            too_costly_to_hash(2 << 30, (2 << 30) / 512),
            None,
            "dense: hashed"
        );
        assert!(too_costly_to_hash(17 << 30, (17 << 30) / 512).is_some());
    }

    #[test]
    fn swapped_file_is_noted_not_read() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let s = crate::sysroot::Sysroot::open(t.path()).unwrap();
        let p = found(&s, "f");
        std::fs::remove_file(&f).unwrap();
        nix::unistd::mkfifo(&f, Mode::from_bits_truncate(0o600)).unwrap();
        let e = p.read(true);
        assert_eq!(e.sha256, None);
        assert!(e.note.unwrap().contains("replaced"));
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &f).unwrap();
        let e = p.read(true);
        assert!(e.note.unwrap().contains("symlink"));
    }
}
