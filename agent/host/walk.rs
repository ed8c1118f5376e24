//! The walk of the audited tree that file integrity ([`crate::fim`]) and the tree scans
//! (world-writable files, unowned files, setuid inventory, ...) share.
//!
//! How a directory is read: the walk starts from a directory fd the [`Sysroot`] opens
//! ([`Sysroot::open_dir`], resolved inside the root). Every directory below is opened *relative
//! to its parent's fd* with `O_DIRECTORY|O_NOFOLLOW` and `fstat`ed to check it is still the
//! directory its parent's listing saw (same device and inode); it is read with `getdents64` into a
//! reused buffer (rustix `RawDir`), and each entry is `fstatat(AT_SYMLINK_NOFOLLOW)`ed relative to
//! it: about four system calls per directory and one per entry. Nothing is looked up by host path,
//! so a directory swapped for a symlink while the walk runs cannot lead it out of the root, and
//! paths longer than `PATH_MAX` are reached like any other (up to [`MAX_PATH`]). Symlinks are
//! never followed and names are kept as raw bytes.
//!
//! Two orders over these steps:
//!
//! * [`walk`]: every entry once, in no particular order, on several threads, within [`Bounds`];
//!   for the tree scans, which need every entry's `lstat` as fast as possible. Worker threads take
//!   directories from one shared LIFO stack (depth first, so few directory fds are open at once).
//! * [`SortedWalk`]: one thread, depth first, each directory's entries sorted by name: the
//!   component-wise order of [`crate::host::pathbytes::cmp_paths`], which is the order of the
//!   integrity manifest. The caller decides which directories to enter ([`SortedWalk::enter`]) and
//!   reads each entry through the directory fd its [`Visit`] carries. Memory is the current path
//!   and, per level of depth, one directory's names. Of the directories between the top and the
//!   current one, at most [`MAX_OPEN_LEVELS`] stay open: a shallower one is closed and, when the
//!   walk comes back to it, reopened as `..` of its child or else from the top down, each step
//!   with the same device/inode check.
//!
//! Nothing is skipped silently ([`Fault`]):
//!
//! * an entry that cannot be `lstat`ed, a directory that cannot be opened or listed, one replaced
//!   between its `lstat` and its open, and a directory not entered because its entries' paths
//!   could exceed [`MAX_PATH`] are reported with their path: [`WalkSummary::errors`] in
//!   [`walk`]; in [`SortedWalk`], a [`Visit`] whose `stat` is the fault or an error from
//!   [`SortedWalk::enter`];
//! * an entry gone between its directory's listing and its `lstat` or open (a live host's `/tmp`)
//!   is [`Fault::Vanished`]: counted, with its path, in [`WalkSummary::vanished`] by [`walk`], and
//!   yielded with that fault by [`SortedWalk`];
//! * what [`Bounds`] leave out (pruned directories, other devices) is stated in the bounds'
//!   description and counted ([`WalkSummary::other_devices`]).
//!
//! Where [`walk`] stops ([`Bounds`]): `/proc`, `/sys`, `/dev` and `/run` are never entered (kernel
//! interfaces and runtime state, not files on disk). On an offline tree (any `--root` but `/`)
//! no directory on another device than the root's is entered, like `find -xdev`. On the live
//! root, other *local* filesystems are part of the host (a separate `/var`, `/home`, `/boot`, a
//! tmpfs `/tmp`), so the walk crosses into them, except the mounts [`skipped_fstype`] names from
//! `/proc/self/mountinfo`: network filesystems (NFS and EFS, CIFS/SMB, Ceph, ...; slow, not this
//! host's files, and a hung server would hang the audit), FUSE (anything can be behind it),
//! kernel pseudo filesystems, read-only images (squashfs snaps, iso9660) and overlay mounts
//! (container root filesystems, whose layers live on the host's disk and are walked there), and
//! bind mounts of a directory that is already walked elsewhere. [`SortedWalk`] optionally stays
//! on the device of its top, like `find -xdev`.
//!
//! Threads: [`walk`] runs on its own scoped OS threads, not on rayon. Checks run as rayon tasks,
//! and a rayon worker waiting for nested rayon work may pick up another check that waits on the
//! same cached walk, which would deadlock on the cache's `OnceLock`.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::NixPath;
use rustix::fs::RawDir;

use crate::host::pathbytes::display_bytes;
use crate::sysroot::{Sysroot, SysrootError};

/// In-root directories never entered by [`walk`], whatever the root: kernel and runtime state.
pub const ALWAYS_PRUNED: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// The longest in-root path walked, in bytes: eight times `PATH_MAX`. A directory whose entries
/// could be longer (its path plus `/` plus a 255-byte name) is not entered, and that is reported.
pub const MAX_PATH: usize = 32 * 1024;

/// The longest name a Linux filesystem allows.
const NAME_MAX: usize = 255;

/// Directory fds [`SortedWalk`] keeps open between its top and the current directory.
pub const MAX_OPEN_LEVELS: usize = 32;

/// Most walk errors kept with their paths (the count is always exact).
const MAX_ERRORS_KEPT: usize = 1000;

/// Most vanished paths kept (the count is always exact).
const MAX_VANISHED_KEPT: usize = 100;

/// Bytes of directory entries read per getdents64 call (per worker): a few hundred names.
const DIRENT_BUFFER: usize = 32 * 1024;

/// Flags for opening a directory to list it.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY);

/// Why an entry could not be read or a directory was not entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Gone between its directory's listing and its `lstat` or open (removed or renamed).
    Vanished,
    /// A directory replaced (by a symlink, a file or another directory) between its `lstat` and
    /// its open.
    Replaced,
    /// The directory could not be opened.
    Open(Errno),
    /// The opened directory could not be `fstat`ed.
    Fstat(Errno),
    /// Listing the directory failed part way (the entries read before are walked).
    List(Errno),
    /// The entry could not be `lstat`ed.
    Lstat(Errno),
    /// Not entered: its entries' paths could be longer than [`MAX_PATH`].
    TooLong,
    /// The entry's directory was closed to bound the open fds and could not be reopened as the
    /// same directory (it was moved or replaced while its subdirectories were walked).
    Lost,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Vanished => f.write_str("vanished while walked"),
            Fault::Replaced => f.write_str("replaced while walked"),
            Fault::Open(e) => write!(f, "cannot open: {}", e.desc()),
            Fault::Fstat(e) => write!(f, "fstat: {}", e.desc()),
            Fault::List(e) => write!(f, "listing: {}", e.desc()),
            Fault::Lstat(e) => write!(f, "lstat: {}", e.desc()),
            Fault::TooLong => write!(
                f,
                "not entered: the paths of its entries could be longer than {MAX_PATH} bytes"
            ),
            Fault::Lost => {
                f.write_str("its directory was moved or replaced while walked; not read")
            }
        }
    }
}

/// The `S_IFMT` bits of a stat's mode.
pub fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

/// `lstat` of `name` in `dir`.
fn lstat_at<P: ?Sized + NixPath>(dir: BorrowedFd<'_>, name: &P) -> Result<FileStat, Fault> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| match e {
        Errno::ENOENT => Fault::Vanished,
        e => Fault::Lstat(e),
    })
}

/// Opens the directory `name` in `parent` for listing and checks it is the one `lstat` saw.
fn open_dir_at<P: ?Sized + NixPath>(
    parent: BorrowedFd<'_>,
    name: &P,
    dev: u64,
    ino: u64,
) -> Result<OwnedFd, Fault> {
    let fd = openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::ENOENT => Fault::Vanished,
        Errno::ELOOP | Errno::ENOTDIR => Fault::Replaced,
        e => Fault::Open(e),
    })?;
    match fstat(&fd) {
        Ok(st) if st.st_dev == dev && st.st_ino == ino => Ok(fd),
        Ok(_) => Err(Fault::Replaced),
        Err(e) => Err(Fault::Fstat(e)),
    }
}

/// Calls `each` with every name of the directory open at `fd` but `.` and `..`, read with
/// `getdents64` into `buf`. Stops at the first error, of the listing or of `each`.
fn list_names(
    fd: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    mut each: impl FnMut(&CStr) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let mut dir = RawDir::new(fd, buf);
    while let Some(entry) = dir.next() {
        let entry = entry.map_err(|e| Fault::List(Errno::from_raw(e.raw_os_error())))?;
        let name = entry.file_name();
        if !matches!(name.to_bytes(), b"." | b"..") {
            each(name)?;
        }
    }
    Ok(())
}

/// True when the entries of the directory at `path` cannot be longer than [`MAX_PATH`].
fn may_enter(path: &[u8]) -> bool {
    path.len() + 1 + NAME_MAX <= MAX_PATH
}

/// The fault for a directory the [`Sysroot`] could not open.
fn sysroot_fault(e: &SysrootError) -> Fault {
    if e.is_not_found() {
        return Fault::Vanished;
    }
    let errno = match e {
        SysrootError::Io { source, .. } | SysrootError::OpenRoot { source, .. } => {
            source.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
        }
        SysrootError::NotADirectory { .. } => Errno::ENOTDIR,
    };
    Fault::Open(errno)
}

/// Errors that stop a walk before it starts (per-entry errors are recorded in [`WalkSummary`]).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The root directory could not be opened for listing.
    #[error("opening root {path} for a tree walk: {source}")]
    OpenRoot {
        /// The host path of the root.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Where the walk stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// In-root directories that are not entered (the entry itself is still visited).
    pub prune: HashSet<Vec<u8>>,
    /// Enter directories on other devices than the root's (the live root, with network and pseudo
    /// mounts in `prune`); `false` stays on the root's filesystem.
    pub cross_devices: bool,
    /// What the bounds are, for evidence: e.g. `local filesystems of / (not entered: /proc, ...)`.
    pub description: String,
}

impl Bounds {
    /// Only the root's own filesystem, minus [`ALWAYS_PRUNED`] (an offline image or fixture tree).
    pub fn same_device() -> Bounds {
        Bounds {
            prune: ALWAYS_PRUNED
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            cross_devices: false,
            description: format!(
                "the root's filesystem (other devices and {} not entered)",
                ALWAYS_PRUNED.join(", ")
            ),
        }
    }

    /// The local filesystems of the live root, from `/proc/self/mountinfo` text (see the module
    /// docs for what is skipped).
    pub fn live(mountinfo: &str) -> Bounds {
        let skipped = skipped_mounts(mountinfo);
        let mut prune: HashSet<Vec<u8>> = ALWAYS_PRUNED
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let mut shown = Vec::new();
        for (point, why) in &skipped {
            if ALWAYS_PRUNED.iter().any(|p| is_within(point, p.as_bytes())) {
                continue;
            }
            shown.push(format!("{} ({why})", display_bytes(point)));
            prune.insert(point.clone());
        }
        let mut description = format!(
            "local filesystems of the live root ({} not entered",
            ALWAYS_PRUNED.join(", ")
        );
        if !shown.is_empty() {
            description.push_str("; skipped mounts: ");
            description.push_str(&shown.join(", "));
        }
        description.push(')');
        Bounds {
            prune,
            cross_devices: true,
            description,
        }
    }

    /// The bounds for `sysroot`: [`Bounds::live`] on the scanning host's own `/` (falling back to
    /// [`Bounds::same_device`] when its mount table cannot be read), else [`Bounds::same_device`].
    pub fn for_sysroot(sysroot: &Sysroot) -> Bounds {
        if !sysroot.is_host_root() {
            return Bounds::same_device();
        }
        match sysroot.read("/proc/self/mountinfo") {
            Ok(bytes) => Bounds::live(&String::from_utf8_lossy(&bytes)),
            Err(e) => {
                tracing::warn!("tree walk: {e}; staying on the root filesystem");
                Bounds::same_device()
            }
        }
    }
}

/// Why a mount of this filesystem type is not walked on the live root, or `None` to walk it.
pub fn skipped_fstype(fstype: &str) -> Option<&'static str> {
    const NETWORK: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "ceph",
        "glusterfs",
        "lustre",
        "afs",
        "9p",
        "gfs2",
        "ocfs2",
        "davfs",
        "sshfs",
    ];
    const PSEUDO: &[&str] = &[
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "hugetlbfs",
        "binfmt_misc",
        "autofs",
        "efivarfs",
        "selinuxfs",
        "rpc_pipefs",
        "nfsd",
        "nsfs",
    ];
    const IMAGES: &[&str] = &["squashfs", "iso9660", "udf", "erofs"];
    if NETWORK.contains(&fstype) {
        Some("network filesystem")
    } else if fstype == "fuse" || fstype == "fuseblk" || fstype.starts_with("fuse.") {
        Some("FUSE")
    } else if PSEUDO.contains(&fstype) {
        Some("pseudo filesystem")
    } else if IMAGES.contains(&fstype) {
        Some("read-only image")
    } else if fstype == "overlay" {
        Some("overlay; its layers are walked where they are stored")
    } else {
        None
    }
}

/// One visible mount from mountinfo: mount point, device, root within the device, fstype.
#[derive(Debug)]
struct MountLine {
    point: Vec<u8>,
    dev: String,
    root: Vec<u8>,
    fstype: String,
}

/// Mount points (in-root paths) the live walk must not enter, each with the reason. Mounts are
/// taken in mountinfo order; when several are on one path, the last is the visible one.
pub fn skipped_mounts(mountinfo: &str) -> Vec<(Vec<u8>, String)> {
    let mut mounts: Vec<MountLine> = Vec::new();
    for line in crate::host::mounts::mountinfo(mountinfo) {
        let m = MountLine {
            point: line.point,
            dev: line.dev.to_string(),
            root: line.root,
            fstype: line.fstype.to_string(),
        };
        mounts.retain(|old| old.point != m.point);
        mounts.push(m);
    }
    let mut accepted: Vec<&MountLine> = Vec::new();
    let mut skipped = Vec::new();
    for m in &mounts {
        if m.point == b"/" {
            accepted.push(m);
            continue;
        }
        if let Some(why) = skipped_fstype(&m.fstype) {
            skipped.push((m.point.clone(), format!("{}: {why}", m.fstype)));
        } else if accepted
            .iter()
            .any(|a| a.dev == m.dev && is_within(&m.root, &a.root))
        {
            skipped.push((
                m.point.clone(),
                format!("{}: bind mount of a directory walked elsewhere", m.fstype),
            ));
        } else {
            accepted.push(m);
        }
    }
    skipped
}

/// True when `path` is `ancestor` or below it (component-wise).
pub fn is_within(path: &[u8], ancestor: &[u8]) -> bool {
    std::path::Path::new(std::ffi::OsStr::from_bytes(path))
        .starts_with(std::path::Path::new(std::ffi::OsStr::from_bytes(ancestor)))
}

/// One entry seen by [`walk`]: its directory's in-root path, its name, and its `lstat`.
#[derive(Debug)]
pub struct Seen<'a> {
    /// In-root path of the directory holding the entry (`b""` for the root itself).
    pub dir: &'a [u8],
    /// The entry's name, raw bytes (`b""` for the root itself).
    pub name: &'a [u8],
    /// `lstat` of the entry (symlinks are not followed).
    pub stat: &'a FileStat,
}

impl Seen<'_> {
    /// The entry's absolute in-root path, raw bytes.
    pub fn path(&self) -> Vec<u8> {
        join(self.dir, self.name)
    }

    /// The `S_IFMT` bits of the mode.
    pub fn kind(&self) -> SFlag {
        kind(self.stat)
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return b"/".to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// An entry the walk could not read, or a directory it could not list or did not enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// In-root path, raw bytes.
    pub path: Vec<u8>,
    /// What failed ([`Fault`]'s text).
    pub reason: String,
}

/// Totals of a walk.
#[derive(Debug, Clone, Default)]
pub struct WalkSummary {
    /// Entries visited (the root included).
    pub entries: u64,
    /// Directories listed.
    pub dirs: u64,
    /// Directories on another device not entered (offline bounds only).
    pub other_devices: u64,
    /// Errors, all counted.
    pub error_count: u64,
    /// The first [`MAX_ERRORS_KEPT`] errors.
    pub errors: Vec<EntryError>,
    /// Entries listed in their directory but gone before their `lstat` or open.
    pub vanished: u64,
    /// The first 100 of them.
    pub vanished_paths: Vec<Vec<u8>>,
}

/// A directory waiting to be listed: opened later, relative to its parent's fd.
struct Job {
    parent: Arc<OwnedFd>,
    name: CString,
    path: Vec<u8>,
    dev: u64,
    ino: u64,
}

struct Queue {
    jobs: Vec<Job>,
    active: usize,
    /// A worker panicked (in the visitor): the others stop instead of waiting for it forever.
    abandoned: bool,
}

/// Marks the walk abandoned if a worker unwinds while it holds a job.
struct PanicGuard<'a>(&'a Mutex<Queue>, &'a Condvar);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).abandoned = true;
            self.1.notify_all();
        }
    }
}

/// What went wrong, kept for [`WalkSummary`].
#[derive(Default)]
struct Problems {
    error_count: u64,
    errors: Vec<EntryError>,
    vanished: u64,
    vanished_paths: Vec<Vec<u8>>,
}

struct Shared<'a, V> {
    queue: Mutex<Queue>,
    wake: Condvar,
    visit: &'a V,
    bounds: &'a Bounds,
    root_dev: u64,
    entries: AtomicU64,
    dirs: AtomicU64,
    other_devices: AtomicU64,
    problems: Mutex<Problems>,
}

/// Walks `sysroot` within `bounds` on `threads` OS threads, calling `visit` once for every entry
/// (the root included, in no particular order, from several threads at once).
pub fn walk<V>(
    sysroot: &Sysroot,
    bounds: &Bounds,
    threads: usize,
    visit: &V,
) -> Result<WalkSummary, WalkError>
where
    V: Fn(&Seen<'_>) + Sync,
{
    let open_root_error = |source: io::Error| WalkError::OpenRoot {
        path: sysroot.root().display().to_string(),
        source,
    };
    let root = sysroot
        .open_dir("/")
        .map_err(|e| open_root_error(io::Error::new(e.kind(), e.to_string())))?;
    let st = fstat(&root).map_err(|e| open_root_error(io::Error::from_raw_os_error(e as i32)))?;
    visit(&Seen {
        dir: b"",
        name: b"",
        stat: &st,
    });
    let shared = Shared {
        queue: Mutex::new(Queue {
            jobs: vec![Job {
                parent: Arc::new(root),
                name: c".".to_owned(),
                path: b"/".to_vec(),
                dev: st.st_dev,
                ino: st.st_ino,
            }],
            active: 0,
            abandoned: false,
        }),
        wake: Condvar::new(),
        visit,
        bounds,
        root_dev: st.st_dev,
        entries: AtomicU64::new(1),
        dirs: AtomicU64::new(0),
        other_devices: AtomicU64::new(0),
        problems: Mutex::new(Problems::default()),
    };
    let threads = threads.clamp(1, 64);
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| worker(&shared));
        }
        worker(&shared);
    });
    let problems = shared
        .problems
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(WalkSummary {
        entries: shared.entries.into_inner(),
        dirs: shared.dirs.into_inner(),
        other_devices: shared.other_devices.into_inner(),
        error_count: problems.error_count,
        errors: problems.errors,
        vanished: problems.vanished,
        vanished_paths: problems.vanished_paths,
    })
}

/// The number of walker threads for this machine: one per core, at least 2 (directory reads
/// block on I/O when the cache is cold), at most 16.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16)
}

fn worker<V: Fn(&Seen<'_>) + Sync>(shared: &Shared<'_, V>) {
    let mut children: Vec<Job> = Vec::new();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUFFER];
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        // The lock is held here and this worker has no job.
        if q.abandoned {
            return;
        }
        if let Some(job) = q.jobs.pop() {
            q.active += 1;
            drop(q);
            let guard = PanicGuard(&shared.queue, &shared.wake);
            list(shared, job, &mut children, &mut buf);
            drop(guard);
            q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.active -= 1;
            if !children.is_empty() {
                q.jobs.append(&mut children);
                shared.wake.notify_all();
            }
        } else if q.active == 0 {
            shared.wake.notify_all();
            return;
        } else {
            q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Records a fault about `path`: a vanished entry or an error.
fn record<V>(shared: &Shared<'_, V>, path: Vec<u8>, fault: Fault) {
    let mut p = shared.problems.lock().unwrap_or_else(|e| e.into_inner());
    if fault == Fault::Vanished {
        p.vanished += 1;
        if p.vanished_paths.len() < MAX_VANISHED_KEPT {
            p.vanished_paths.push(path);
        }
        return;
    }
    p.error_count += 1;
    if p.errors.len() < MAX_ERRORS_KEPT {
        p.errors.push(EntryError {
            path,
            reason: fault.to_string(),
        });
    }
}

/// Lists one directory: visits each entry and queues the subdirectories to enter.
fn list<V: Fn(&Seen<'_>) + Sync>(
    shared: &Shared<'_, V>,
    job: Job,
    children: &mut Vec<Job>,
    buf: &mut [MaybeUninit<u8>],
) {
    let fd = match open_dir_at(job.parent.as_fd(), job.name.as_c_str(), job.dev, job.ino) {
        Ok(fd) => fd,
        Err(fault) => return record(shared, job.path, fault),
    };
    drop(job.parent);
    shared.dirs.fetch_add(1, Ordering::Relaxed);
    let fd = Arc::new(fd);
    let mut seen = 0u64;
    // getdents64 straight into this worker's buffer, on the fd already open (no dup, no
    // fdopendir, no rewind): on a host of many small directories these per-directory calls cost
    // as much as the per-entry lstat.
    let listed = list_names(fd.as_fd(), buf, |name| {
        let bytes = name.to_bytes();
        let st = match lstat_at(fd.as_fd(), name) {
            Ok(st) => st,
            Err(fault) => {
                record(shared, join(&job.path, bytes), fault);
                return Ok(());
            }
        };
        seen += 1;
        let item = Seen {
            dir: &job.path,
            name: bytes,
            stat: &st,
        };
        (shared.visit)(&item);
        if item.kind() != SFlag::S_IFDIR {
            return Ok(());
        }
        let path = item.path();
        if shared.bounds.prune.contains(&path) {
            return Ok(());
        }
        if st.st_dev != shared.root_dev && !shared.bounds.cross_devices {
            shared.other_devices.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if !may_enter(&path) {
            record(shared, path, Fault::TooLong);
            return Ok(());
        }
        children.push(Job {
            parent: Arc::clone(&fd),
            name: name.to_owned(),
            path,
            dev: st.st_dev,
            ino: st.st_ino,
        });
        Ok(())
    });
    if let Err(fault) = listed {
        record(shared, job.path.clone(), fault);
    }
    shared.entries.fetch_add(seen, Ordering::Relaxed);
}

/// An entry found by [`SortedWalk`]: its in-root path, its `lstat` (or why there is none), and
/// the directory fd it is read through.
#[derive(Debug)]
pub struct Visit {
    /// Absolute in-root path, raw bytes.
    pub path: Vec<u8>,
    /// Levels below the walk's top (the top itself is 0).
    pub depth: usize,
    /// `lstat` of the entry, or why it could not be taken.
    pub stat: Result<FileStat, Fault>,
    /// The directory holding the entry (the top `/` is held by itself, as `.`); `None` only
    /// when `stat` is an error.
    dir: Option<Arc<OwnedFd>>,
    /// Where the name starts in `path`.
    name_at: usize,
    /// Which visit of its walk this is, so [`SortedWalk::enter`] knows it.
    seq: u64,
}

impl Visit {
    /// The entry's name in its directory, raw bytes (`.` for the top `/`).
    pub fn name(&self) -> &[u8] {
        match &self.path[self.name_at..] {
            b"" => b".",
            name => name,
        }
    }

    /// The fd of the directory holding the entry, to read it relative to (`openat`,
    /// `readlinkat`, always with `O_NOFOLLOW` or its equivalent).
    pub fn dir(&self) -> Option<BorrowedFd<'_>> {
        self.dir.as_deref().map(AsFd::as_fd)
    }

    /// The entry's `lstat` and the directory fd to read it relative to, or why there are none.
    pub fn located(&self) -> Result<(&FileStat, BorrowedFd<'_>), Fault> {
        match (&self.stat, &self.dir) {
            (Ok(st), Some(dir)) => Ok((st, dir.as_fd())),
            (Err(fault), _) => Err(*fault),
            (Ok(_), None) => Err(Fault::Lost),
        }
    }

    /// True when both entries are read through the same open directory.
    pub fn shares_dir(&self, other: &Visit) -> bool {
        match (&self.dir, &other.dir) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// True for a directory (by its `lstat`).
    pub fn is_dir(&self) -> bool {
        self.stat
            .as_ref()
            .is_ok_and(|st| kind(st) == SFlag::S_IFDIR)
    }
}

/// One directory of the current path of a [`SortedWalk`], with the names still to visit.
struct Level {
    /// The length of its in-root path, a prefix of the walk's `path`.
    path_len: usize,
    /// Where its name starts in the walk's `path`.
    name_at: usize,
    /// Its depth below the top.
    depth: usize,
    dev: u64,
    ino: u64,
    /// Open while it is within [`MAX_OPEN_LEVELS`] of the current directory (the top always).
    fd: Option<Arc<OwnedFd>>,
    /// It could not be reopened: its remaining entries are [`Fault::Lost`].
    lost: bool,
    /// The names, each preceded by its length (one byte: a name has at most 255).
    names: Vec<u8>,
    /// Offsets of the names in `names`, sorted by name.
    order: Vec<u32>,
    /// The next name of `order` to visit.
    next: usize,
}

impl Level {
    fn name_at(&self, i: usize) -> &[u8] {
        let start = self.order[i] as usize;
        let len = usize::from(self.names[start]);
        &self.names[start + 1..start + 1 + len]
    }

    fn add(&mut self, name: &[u8]) -> Result<(), Fault> {
        let (Ok(len), Ok(start)) = (u8::try_from(name.len()), u32::try_from(self.names.len()))
        else {
            return Err(Fault::List(Errno::EOVERFLOW));
        };
        self.order.push(start);
        self.names.push(len);
        self.names.extend_from_slice(name);
        Ok(())
    }

    fn sort(&mut self) {
        let names = &self.names;
        let name = |start: u32| {
            let start = start as usize;
            &names[start + 1..start + 1 + usize::from(names[start])]
        };
        self.order.sort_unstable_by(|&a, &b| name(a).cmp(name(b)));
    }
}

/// A depth-first walk of one tree in manifest order, on one thread (see the module docs).
///
/// [`SortedWalk::next`] yields the top first, then the entries of each entered directory sorted
/// by name, each directory's subtree right after it. A directory just yielded is entered only
/// when the caller asks, with [`SortedWalk::enter`], before the next call to `next`.
pub struct SortedWalk {
    /// The top, until it is yielded.
    top: Option<Visit>,
    /// The top's device, for `same_device`.
    top_dev: Option<u64>,
    /// Do not enter directories on another device than the top's.
    same_device: bool,
    /// The directories from the top to the current one.
    levels: Vec<Level>,
    /// The in-root path of the current directory; each level's is a prefix of it.
    path: Vec<u8>,
    /// `levels[open_from..]` have their fd open, `levels[1..open_from]` do not.
    open_from: usize,
    /// The visit [`SortedWalk::enter`] may enter: the last one, when it is a directory.
    enterable: Option<u64>,
    seq: u64,
    buf: Vec<MaybeUninit<u8>>,
}

impl SortedWalk {
    /// A walk of the tree at `path` (an in-root path; `.` and `..` are resolved lexically) in
    /// `sysroot`. The directory holding the top is opened with [`Sysroot::open_dir`]; the top
    /// itself is `lstat`ed there, never followed. If that fails, the walk yields the top with
    /// the fault and ends.
    pub fn new(sysroot: &Sysroot, path: &[u8], same_device: bool) -> SortedWalk {
        let path = normalize(path);
        let name_at = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let parent = match name_at {
            0 | 1 => &b"/"[..],
            n => &path[..n - 1],
        };
        let mut top = Visit {
            path: Vec::new(),
            depth: 0,
            stat: Err(Fault::Vanished),
            dir: None,
            name_at,
            seq: 1,
        };
        match sysroot.open_dir(OsStr::from_bytes(parent)) {
            Ok(fd) => {
                let fd = Arc::new(fd);
                let name = match &path[name_at..] {
                    b"" => b".",
                    name => name,
                };
                top.stat = lstat_at(fd.as_fd(), name);
                top.dir = Some(fd);
            }
            Err(e) => top.stat = Err(sysroot_fault(&e)),
        }
        top.path = path;
        SortedWalk {
            top_dev: top.stat.as_ref().ok().map(|st| st.st_dev),
            top: Some(top),
            same_device,
            levels: Vec::new(),
            path: Vec::new(),
            open_from: 1,
            enterable: None,
            seq: 1,
            buf: vec![MaybeUninit::uninit(); DIRENT_BUFFER],
        }
    }

    /// The next entry in manifest order, or `None` when the walk is done.
    #[allow(clippy::should_implement_trait)] // not an Iterator: `enter` sits between two calls
    pub fn next(&mut self) -> Option<Visit> {
        if let Some(top) = self.top.take() {
            self.enterable = top.is_dir().then_some(top.seq);
            return Some(top);
        }
        self.enterable = None;
        loop {
            let level = self.levels.last_mut()?;
            if level.next == level.order.len() {
                self.leave();
                continue;
            }
            let i = level.next;
            level.next += 1;
            let level = &*level;
            let name = level.name_at(i);
            let dir = &self.path[..level.path_len];
            let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
            path.extend_from_slice(dir);
            if !dir.ends_with(b"/") {
                path.push(b'/');
            }
            let name_at = path.len();
            path.extend_from_slice(name);
            let stat = match &level.fd {
                Some(fd) => lstat_at(fd.as_fd(), name),
                None => Err(Fault::Lost),
            };
            self.seq += 1;
            let visit = Visit {
                path,
                depth: level.depth + 1,
                stat,
                dir: level.fd.clone(),
                name_at,
                seq: self.seq,
            };
            if visit.is_dir() {
                self.enterable = Some(visit.seq);
            }
            return Some(visit);
        }
    }

    /// Enters the directory `visit`, the entry [`SortedWalk::next`] just returned: its entries
    /// come next. `Ok(false)` when there is nothing to enter (not a directory, not the last
    /// visit, or on another device with `same_device`). An error says why the directory cannot
    /// be read; when listing failed part way, the entries read before are still walked.
    pub fn enter(&mut self, visit: &Visit) -> Result<bool, Fault> {
        if self.enterable != Some(visit.seq) {
            return Ok(false);
        }
        self.enterable = None;
        let (Ok(st), Some(parent)) = (&visit.stat, &visit.dir) else {
            return Ok(false);
        };
        if self.same_device && Some(st.st_dev) != self.top_dev {
            return Ok(false);
        }
        if !may_enter(&visit.path) {
            return Err(Fault::TooLong);
        }
        let fd = open_dir_at(parent.as_fd(), visit.name(), st.st_dev, st.st_ino)?;
        let mut level = Level {
            path_len: visit.path.len(),
            name_at: visit.name_at,
            depth: visit.depth,
            dev: st.st_dev,
            ino: st.st_ino,
            fd: None,
            lost: false,
            names: Vec::new(),
            order: Vec::new(),
            next: 0,
        };
        let listed = list_names(fd.as_fd(), &mut self.buf, |name| level.add(name.to_bytes()));
        level.sort();
        level.fd = Some(Arc::new(fd));
        self.levels.push(level);
        self.path.clear();
        self.path.extend_from_slice(&visit.path);
        if self.levels.len() - self.open_from > MAX_OPEN_LEVELS {
            self.levels[self.open_from].fd = None;
            self.open_from += 1;
        }
        listed.map(|()| true)
    }

    /// Leaves the current directory, reopening its parent if it was closed.
    fn leave(&mut self) {
        let Some(done) = self.levels.pop() else {
            return;
        };
        let len = self.levels.len();
        self.open_from = self.open_from.min(len).max(1);
        let Some(parent) = self.levels.last() else {
            return;
        };
        self.path.truncate(parent.path_len);
        if parent.fd.is_some() || parent.lost {
            return;
        }
        let i = len - 1;
        match self.reopen(i, done.fd.as_deref()) {
            Some(fd) => {
                self.levels[i].fd = Some(Arc::new(fd));
                self.open_from = i;
            }
            None => self.levels[i].lost = true,
        }
    }

    /// Reopens the closed level `i`: as `..` of its child, else from the top down; each open
    /// checked against the device and inode the level had.
    fn reopen(&self, i: usize, child: Option<&OwnedFd>) -> Option<OwnedFd> {
        let want = &self.levels[i];
        if let Some(fd) = child.and_then(|c| open_dir_at(c.as_fd(), "..", want.dev, want.ino).ok())
        {
            return Some(fd);
        }
        let top = self.levels.first()?.fd.as_ref()?;
        let mut cur: Option<OwnedFd> = None;
        for level in &self.levels[1..=i] {
            let parent = cur.as_ref().map_or(top.as_fd(), AsFd::as_fd);
            let name = &self.path[level.name_at..level.path_len];
            let next = open_dir_at(parent, name, level.dev, level.ino);
            cur = Some(next.ok()?);
        }
        cur
    }

    /// How many directory fds the walk holds itself (not counting those its visits share).
    #[cfg(test)]
    fn open_levels(&self) -> usize {
        self.levels.iter().filter(|l| l.fd.is_some()).count()
    }
}

/// `path` as an absolute in-root path without empty components, `.` or `..` (`..` at the top
/// stays there).
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => drop(parts.pop()),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn collect(sysroot: &Sysroot, bounds: &Bounds, threads: usize) -> (Vec<Vec<u8>>, WalkSummary) {
        let seen = Mutex::new(Vec::new());
        let summary = walk(sysroot, bounds, threads, &|s: &Seen<'_>| {
            seen.lock().unwrap().push(s.path());
        })
        .unwrap();
        let mut paths = seen.into_inner().unwrap();
        paths.sort_by(|a, b| crate::host::pathbytes::cmp_paths(a, b));
        (paths, summary)
    }

    fn strings(paths: &[Vec<u8>]) -> Vec<String> {
        paths.iter().map(|p| display_bytes(p)).collect()
    }

    #[test]
    fn visits_everything_once_without_following_links_or_entering_pruned_dirs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["usr/bin", "etc/a/b/c", "proc/sys/kernel", "run/x", "srv"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("usr/bin/ls"), "x").unwrap();
        std::fs::write(r.join("etc/a/b/c/deep"), "x").unwrap();
        std::fs::write(r.join("proc/sys/kernel/hidden"), "x").unwrap();
        symlink("/etc", r.join("srv/etc-link")).unwrap();
        symlink("../../../../..", r.join("srv/up")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
        std::fs::write(r.join("srv").join(bad), "x").unwrap();
        let s = Sysroot::open(r).unwrap();
        for threads in [1, 4] {
            let (paths, summary) = collect(&s, &Bounds::same_device(), threads);
            assert_eq!(
                strings(&paths),
                [
                    "/",
                    "/bin",
                    "/etc",
                    "/etc/a",
                    "/etc/a/b",
                    "/etc/a/b/c",
                    "/etc/a/b/c/deep",
                    "/proc",
                    "/run",
                    "/srv",
                    "/srv/caf\\xe9",
                    "/srv/etc-link",
                    "/srv/up",
                    "/usr",
                    "/usr/bin",
                    "/usr/bin/ls",
                ]
            );
            assert_eq!(summary.entries, paths.len() as u64);
            assert_eq!(summary.error_count, 0);
        }
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_mid_walk_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("a/swap")).unwrap();
        std::fs::write(r.join("a/y"), "y").unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        let s = Sysroot::open(&r).unwrap();
        let seen = Mutex::new(Vec::new());
        // The walk sees /a/swap as a directory; before it is opened, it becomes a link out of the
        // root (what a hostile process racing the scan would do).
        let summary = walk(&s, &Bounds::same_device(), 2, &|e: &Seen<'_>| {
            let path = e.path();
            if path == b"/a/swap" {
                std::fs::remove_dir(r.join("a/swap")).unwrap();
                symlink(&outside, r.join("a/swap")).unwrap();
            }
            seen.lock().unwrap().push(display_bytes(&path));
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, ["/", "/a", "/a/swap", "/a/y"]);
        assert_eq!(summary.error_count, 1);
        assert_eq!(
            summary.errors,
            [EntryError {
                path: b"/a/swap".to_vec(),
                reason: "replaced while walked".into()
            }]
        );
    }

    #[test]
    fn a_panicking_visitor_does_not_hang_the_other_threads() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::create_dir_all(t.path().join(format!("d{i}/e"))).unwrap();
        }
        let s = Sysroot::open(t.path()).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            walk(&s, &Bounds::same_device(), 4, &|e: &Seen<'_>| {
                assert_ne!(e.path(), b"/d7/e", "visitor bug");
            })
        });
        assert!(outcome.is_err());
    }

    #[test]
    fn many_directories_on_many_threads() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for i in 0..60 {
            for j in 0..5 {
                std::fs::create_dir_all(r.join(format!("d{i}/e{j}"))).unwrap();
                std::fs::write(r.join(format!("d{i}/e{j}/f")), "x").unwrap();
            }
        }
        let s = Sysroot::open(r).unwrap();
        let (paths, summary) = collect(&s, &Bounds::same_device(), 8);
        assert_eq!(paths.len(), 1 + 60 + 300 + 300);
        assert_eq!(summary.dirs, 1 + 60 + 300);
        let unique: HashSet<_> = paths.iter().collect();
        assert_eq!(unique.len(), paths.len());
    }

    #[test]
    fn live_bounds_skip_network_pseudo_and_bind_mounts() {
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
28 27 259:1 / /boot/efi rw - vfat /dev/nvme0n1p15 rw\n\
29 27 0:40 / /mnt/efs rw - nfs4 fs-1.efs.us-east-1.amazonaws.com:/ rw\n\
30 27 0:41 / /mnt/my\\040share rw - cifs //srv/share rw\n\
31 27 0:42 / /home/u/.cache/doc rw - fuse.portal portal rw\n\
32 27 0:43 / /tmp rw,nosuid - tmpfs tmpfs rw\n\
33 27 254:0 /srv/data /var/lib/data rw - ext4 /dev/vda rw\n\
34 27 7:0 / /snap/core22/1 ro - squashfs /dev/loop0 ro\n\
35 27 0:44 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw\n\
36 27 0:45 / /mnt/later rw - nfs nfs:/x rw\n\
37 27 259:2 / /mnt/later rw - xfs /dev/nvme1n1 rw\n";
        let b = Bounds::live(mountinfo);
        let mut pruned: Vec<String> = b.prune.iter().map(|p| display_bytes(p)).collect();
        pruned.sort();
        assert_eq!(
            pruned,
            [
                "/dev",
                "/home/u/.cache/doc",
                "/mnt/efs",
                "/mnt/my share",
                "/proc",
                "/run",
                "/snap/core22/1",
                "/sys",
                "/var/lib/data",
                "/var/lib/docker/overlay2/x/merged",
            ]
        );
        assert!(b.cross_devices);
        assert!(
            b.description
                .contains("/mnt/efs (nfs4: network filesystem)"),
            "{}",
            b.description
        );
        assert!(!b.description.contains("/proc ("), "{}", b.description);
        for (fs, skip) in [
            ("ext4", false),
            ("xfs", false),
            ("tmpfs", false),
            ("btrfs", false),
            ("nfs4", true),
            ("fuse.sshfs", true),
            ("smb3", true),
            ("autofs", true),
        ] {
            assert_eq!(skipped_fstype(fs).is_some(), skip, "{fs}");
        }
    }

    #[test]
    #[allow(clippy::print_stderr)] // a note when tmpfs cannot be mounted (not root)
    fn offline_bounds_do_not_enter_other_devices() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("mnt/other")).unwrap();
        std::fs::write(r.join("mnt/here"), "x").unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "ec2h-test"])
            .arg(r.join("mnt/other"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            eprintln!("note: cannot mount a tmpfs here (not root?); skipped");
            return;
        }
        std::fs::write(r.join("mnt/other/inside"), "x").unwrap();
        let s = Sysroot::open(r).unwrap();
        let result = collect(&s, &Bounds::same_device(), 2);
        let crossing = collect(
            &s,
            &Bounds {
                cross_devices: true,
                ..Bounds::same_device()
            },
            2,
        );
        let _ = std::process::Command::new("umount")
            .arg(r.join("mnt/other"))
            .status();
        let (paths, summary) = result;
        assert_eq!(strings(&paths), ["/", "/mnt", "/mnt/here", "/mnt/other"]);
        assert_eq!(summary.other_devices, 1);
        assert!(strings(&crossing.0).contains(&"/mnt/other/inside".to_string()));
        assert_eq!(crossing.1.other_devices, 0);
    }

    /// Everything a sorted walk from `top` yields, entering every directory it may; faults of
    /// `enter` are returned with the directory's path.
    fn sorted(s: &Sysroot, top: &[u8]) -> (Vec<Visit>, Vec<(Vec<u8>, Fault)>) {
        let mut w = SortedWalk::new(s, top, true);
        let (mut visits, mut faults) = (Vec::new(), Vec::new());
        while let Some(v) = w.next() {
            if let Err(f) = w.enter(&v) {
                faults.push((v.path.clone(), f));
            }
            assert!(w.open_levels() <= MAX_OPEN_LEVELS + 1);
            visits.push(v);
        }
        (visits, faults)
    }

    fn no_prune() -> Bounds {
        Bounds {
            prune: HashSet::new(),
            ..Bounds::same_device()
        }
    }

    #[test]
    fn sorted_walk_yields_manifest_order_and_the_same_entries_as_the_parallel_walk() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["usr/bin", "a/x", "a-b", "a.b/y/z", "proc/1", "empty"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in ["usr/bin/ls", "a/x/f", "a0", "a.b/y/z/f", "proc/1/status"] {
            std::fs::write(r.join(f), "x").unwrap();
        }
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/", r.join("a/up")).unwrap();
        std::fs::write(r.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "x").unwrap();
        let s = Sysroot::open(r).unwrap();
        let (visits, faults) = sorted(&s, b"/");
        assert!(faults.is_empty(), "{faults:?}");
        assert!(visits.iter().all(|v| v.stat.is_ok()));
        let paths: Vec<Vec<u8>> = visits.iter().map(|v| v.path.clone()).collect();
        let mut want = paths.clone();
        want.sort_by(|a, b| crate::host::pathbytes::cmp_paths(a, b));
        assert_eq!(paths, want, "not in manifest order");
        assert_eq!(paths, collect(&s, &no_prune(), 3).0);
        assert_eq!(
            strings(&paths[..6]),
            ["/", "/a", "/a/up", "/a/x", "/a/x/f", "/a-b"]
        );
        let depths: Vec<usize> = visits.iter().take(5).map(|v| v.depth).collect();
        assert_eq!(depths, [0, 1, 2, 2, 3]);
        assert_eq!(visits[0].name(), b".");
        assert_eq!(visits[4].name(), b"f");

        // A sub-tree, a single file, a link (never followed) and a missing top.
        let (visits, _) = sorted(&s, b"/a/x/../x/");
        assert_eq!(
            strings(&visits.iter().map(|v| v.path.clone()).collect::<Vec<_>>()),
            ["/a/x", "/a/x/f"]
        );
        for (top, kind_) in [(&b"/a0"[..], SFlag::S_IFREG), (b"/bin", SFlag::S_IFLNK)] {
            let (visits, _) = sorted(&s, top);
            assert_eq!(visits.len(), 1);
            assert_eq!(kind(visits[0].stat.as_ref().unwrap()), kind_);
        }
        let (visits, _) = sorted(&s, b"/missing");
        assert_eq!(visits.len(), 1);
        assert_eq!(visits[0].stat.as_ref().unwrap_err(), &Fault::Vanished);
    }

    /// `depth` nested directories named `name` below `top`, each made relative to its parent's
    /// fd (a path can outgrow PATH_MAX this way), with a file `f` at the bottom.
    fn chain(top: &std::path::Path, name: &str, depth: usize) {
        let mut fd =
            nix::fcntl::open(top, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..depth {
            nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755)).unwrap();
            fd = openat(&fd, name, DIR_FLAGS, Mode::empty()).unwrap();
        }
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC;
        drop(openat(&fd, "f", flags, Mode::from_bits_truncate(0o644)).unwrap());
    }

    #[test]
    fn paths_beyond_path_max_are_walked_and_the_limit_is_reported() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("deep")).unwrap();
        let name = "n".repeat(100);
        chain(&t.path().join("deep"), &name, 330);
        let s = Sysroot::open(t.path()).unwrap();
        // "/deep" and 101 bytes per level: entered while 256 more bytes fit in MAX_PATH.
        let last_entered = (MAX_PATH - 256 - 5) / 101;
        let too_long = 5 + (last_entered + 1) * 101;

        let (visits, faults) = sorted(&s, b"/");
        let longest = visits.iter().map(|v| v.path.len()).max().unwrap();
        assert!(longest > 4096, "{longest}");
        assert_eq!(longest, too_long);
        assert!(visits.iter().all(|v| v.stat.is_ok()));
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].0.len(), too_long);
        assert_eq!(faults[0].1, Fault::TooLong);

        let (paths, summary) = collect(&s, &no_prune(), 2);
        assert_eq!(paths.len(), visits.len());
        assert_eq!(summary.error_count, 1);
        assert_eq!(summary.errors[0].path.len(), too_long);
        assert!(
            summary.errors[0].reason.starts_with("not entered: "),
            "{}",
            summary.errors[0].reason
        );
    }

    #[test]
    fn entries_gone_before_their_lstat_are_reported_as_vanished() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        for i in 0..10 {
            std::fs::write(d.join(format!("f{i}")), "x").unwrap();
        }
        let s = Sysroot::open(t.path()).unwrap();
        // The listing is read; the first entry's visit removes the other nine before their lstat.
        let removed = Mutex::new(false);
        let summary = walk(&s, &no_prune(), 1, &|e: &Seen<'_>| {
            if e.dir == b"/d" && !std::mem::replace(&mut *removed.lock().unwrap(), true) {
                for i in 0..10 {
                    let p = d.join(format!("f{i}"));
                    if p.file_name().unwrap().as_bytes() != e.name {
                        std::fs::remove_file(p).unwrap();
                    }
                }
            }
        })
        .unwrap();
        assert_eq!(summary.vanished, 9);
        assert_eq!(summary.vanished_paths.len(), 9);
        assert!(summary
            .vanished_paths
            .iter()
            .all(|p| p.starts_with(b"/d/f")));
        assert_eq!((summary.entries, summary.error_count), (3, 0));

        for i in 0..10 {
            std::fs::write(d.join(format!("f{i}")), "x").unwrap();
        }
        let mut w = SortedWalk::new(&s, b"/d", true);
        let top = w.next().unwrap();
        assert_eq!(w.enter(&top), Ok(true));
        assert_eq!(w.next().unwrap().path, b"/d/f0");
        for i in 1..10 {
            std::fs::remove_file(d.join(format!("f{i}"))).unwrap();
        }
        let rest: Vec<Visit> = std::iter::from_fn(|| w.next()).collect();
        assert_eq!(rest.len(), 9);
        assert!(rest.iter().all(|v| v.stat == Err(Fault::Vanished)));
    }

    #[test]
    fn the_sorted_walk_does_not_enter_a_directory_swapped_for_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("a/swap")).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        let s = Sysroot::open(&r).unwrap();
        let mut w = SortedWalk::new(&s, b"/a", true);
        let a = w.next().unwrap();
        assert_eq!(w.enter(&a), Ok(true));
        let swap = w.next().unwrap();
        assert!(swap.is_dir());
        std::fs::remove_dir(r.join("a/swap")).unwrap();
        symlink(&outside, r.join("a/swap")).unwrap();
        assert_eq!(w.enter(&swap), Err(Fault::Replaced));
        assert!(w.next().is_none());
        // Only the visit just returned may be entered.
        let mut w = SortedWalk::new(&s, b"/a", true);
        let a = w.next().unwrap();
        let _ = w.next();
        assert_eq!(w.enter(&a), Ok(false));
    }

    /// `/a/a/.../a` (`depth` levels), each directory also holding a file `z`.
    fn ladder(r: &std::path::Path, depth: usize) {
        let mut dir = r.to_path_buf();
        for _ in 0..depth {
            dir.push("a");
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("z"), "z").unwrap();
        }
    }

    /// The `z` files a sorted walk of `/` finds, with their faults, calling `at_bottom` when it
    /// reaches the deepest one.
    fn ladder_walk(s: &Sysroot, at_bottom: impl FnOnce()) -> Vec<(usize, Result<(), Fault>)> {
        let mut at_bottom = Some(at_bottom);
        let (mut w, mut found, mut deepest) = (SortedWalk::new(s, b"/", true), Vec::new(), 0);
        while let Some(v) = w.next() {
            assert_eq!(w.enter(&v), Ok(v.is_dir()));
            assert!(w.open_levels() <= MAX_OPEN_LEVELS + 1);
            deepest = deepest.max(v.depth);
            if v.name() == b"z" {
                if v.depth == deepest {
                    if let Some(f) = at_bottom.take() {
                        f();
                    }
                }
                found.push((v.depth, v.stat.map(drop)));
            }
        }
        found
    }

    #[test]
    fn a_deep_tree_keeps_few_directories_open_and_reopens_the_closed_ones() {
        let t = tempfile::tempdir().unwrap();
        ladder(t.path(), 100);
        let s = Sysroot::open(t.path()).unwrap();
        let found = ladder_walk(&s, || {});
        assert_eq!(found.len(), 100);
        assert!(found.iter().all(|(_, r)| r.is_ok()), "{found:?}");

        // A closed level moved away: `..` of its child is no longer it, but it is still where
        // the walk saw it from the top, so the walk goes on there.
        let t = tempfile::tempdir().unwrap();
        let r = t.path().to_path_buf();
        ladder(&r, 40);
        let s = Sysroot::open(&r).unwrap();
        let found = ladder_walk(&s, || {
            std::fs::rename(r.join("a/a/a"), r.join("moved")).unwrap()
        });
        assert_eq!(found.len(), 40);
        assert!(found.iter().all(|(_, r)| r.is_ok()), "{found:?}");

        // Replaced as well: its remaining entries are reported, the levels above read again.
        let t = tempfile::tempdir().unwrap();
        let r = t.path().to_path_buf();
        ladder(&r, 40);
        let s = Sysroot::open(&r).unwrap();
        let found = ladder_walk(&s, || {
            std::fs::rename(r.join("a/a"), r.join("gone")).unwrap();
            std::fs::rename(r.join("gone/a"), r.join("moved")).unwrap();
            std::fs::create_dir(r.join("a/a")).unwrap();
        });
        assert_eq!(found.len(), 40);
        let lost: Vec<_> = found.iter().filter(|(_, r)| r.is_err()).collect();
        assert_eq!(lost, [&(3, Err(Fault::Lost))], "/a/a/z");
    }
}
