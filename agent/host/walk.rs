//! A whole-tree metadata walk of the sysroot's local filesystems, on all cores, for the tree scans
//! (world-writable files, unowned files, setuid inventory, ...).
//!
//! File integrity ([`crate::fim::walk`]) needs its entries in manifest order, one sorted stream it
//! can merge against a manifest, and it reads file contents. The tree scans only need every
//! entry's `lstat` once, in any order, as fast as possible; so this walk shares fim's rules (stay
//! inside the root, never follow a symlink, do not leave the filesystem unless told, keep names as
//! raw bytes, keep going past a bad entry) and fim's helpers for ordering and printing paths
//! ([`crate::host::pathbytes::cmp_paths`], [`crate::host::pathbytes::display_bytes`]), but not its sorted
//! single-stream walker.
//!
//! How it walks: worker threads take directories from one shared LIFO stack (depth first, so few
//! directory fds are open at once). A directory is opened *relative to its parent's fd* with
//! `O_DIRECTORY|O_NOFOLLOW`, and `fstat`ed to check it is still the directory the parent's listing
//! saw (same device and inode); it is read with `getdents64` into the worker's buffer and its
//! entries are `fstatat(AT_SYMLINK_NOFOLLOW)`ed relative to it: about four system calls per
//! directory and one per entry, which is all the kernel needs to tell an owner and a mode.
//! Nothing is looked up by host path after the root is opened, so a directory swapped for a
//! symlink while the walk runs cannot lead it out of the root (the race fim's `walkdir` walk
//! documents). Entries that vanish during the walk are skipped silently (a live host's `/tmp`);
//! other errors are recorded with their path and the walk goes on.
//!
//! Where it stops ([`Bounds`]): `/proc`, `/sys`, `/dev` and `/run` are never entered (kernel
//! interfaces and runtime state, not files on disk). On an offline tree (any `--root` but `/`)
//! no directory on another device than the root's is entered, like `find -xdev`. On the live
//! root, other *local* filesystems are part of the host (a separate `/var`, `/home`, `/boot`, a
//! tmpfs `/tmp`), so the walk crosses into them, except the mounts [`skipped_fstype`] names from
//! `/proc/self/mountinfo`: network filesystems (NFS and EFS, CIFS/SMB, Ceph, ...; slow, not this
//! host's files, and a hung server would hang the audit), FUSE (anything can be behind it),
//! kernel pseudo filesystems, read-only images (squashfs snaps, iso9660) and overlay mounts
//! (container root filesystems, whose layers live on the host's disk and are walked there), and
//! bind mounts of a directory that is already walked elsewhere.
//!
//! Threads: the walk runs on its own scoped OS threads, not on rayon. Checks run as rayon tasks,
//! and a rayon worker waiting for nested rayon work may pick up another check that waits on the
//! same cached walk, which would deadlock on the cache's `OnceLock`.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use rustix::fs::RawDir;

use crate::host::pathbytes::display_bytes;
use crate::sysroot::Sysroot;

/// In-root directories never entered, whatever the root: kernel and runtime state.
pub const ALWAYS_PRUNED: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// Most walk errors kept with their paths (the count is always exact).
const MAX_ERRORS_KEPT: usize = 1000;

/// Bytes of directory entries read per getdents64 call (per worker): a few hundred names.
const DIRENT_BUFFER: usize = 32 * 1024;

/// Flags for opening a directory to list it.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY);

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
    /// The root opened is not the sysroot's root (it was replaced in between).
    #[error("root {path} changed while the tree walk started")]
    RootChanged {
        /// The host path of the root.
        path: String,
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
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || sep + 1 >= fields.len() {
            continue;
        }
        let m = MountLine {
            point: crate::host::mounts::unescape_bytes(fields[4]),
            dev: fields[2].to_string(),
            root: crate::host::mounts::unescape_bytes(fields[3]),
            fstype: fields[sep + 1].to_string(),
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

/// One entry seen by the walk: its directory's in-root path, its name, and its `lstat`.
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
        SFlag::from_bits_truncate(self.stat.st_mode & SFlag::S_IFMT.bits())
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

/// An entry the walk could not read, or a directory it could not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// In-root path, raw bytes.
    pub path: Vec<u8>,
    /// What failed.
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

struct Shared<'a, V> {
    queue: Mutex<Queue>,
    wake: Condvar,
    visit: &'a V,
    bounds: &'a Bounds,
    root_dev: u64,
    entries: AtomicU64,
    dirs: AtomicU64,
    other_devices: AtomicU64,
    errors: Mutex<(u64, Vec<EntryError>)>,
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
    let host = sysroot.root().display().to_string();
    let root = nix::fcntl::open(sysroot.root(), DIR_FLAGS, Mode::empty()).map_err(|e| {
        WalkError::OpenRoot {
            path: host.clone(),
            source: io::Error::from_raw_os_error(e as i32),
        }
    })?;
    let st = fstat(&root).map_err(|e| WalkError::OpenRoot {
        path: host.clone(),
        source: io::Error::from_raw_os_error(e as i32),
    })?;
    let expected = sysroot.metadata("/").map_err(|e| WalkError::OpenRoot {
        path: host.clone(),
        source: io::Error::new(e.kind(), e.to_string()),
    })?;
    if expected.dev() != st.st_dev || expected.ino() != st.st_ino {
        return Err(WalkError::RootChanged { path: host });
    }
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
        errors: Mutex::new((0, Vec::new())),
    };
    let threads = threads.clamp(1, 64);
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| worker(&shared));
        }
        worker(&shared);
    });
    let (error_count, errors) = shared
        .errors
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(WalkSummary {
        entries: shared.entries.into_inner(),
        dirs: shared.dirs.into_inner(),
        other_devices: shared.other_devices.into_inner(),
        error_count,
        errors,
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

fn record<V>(shared: &Shared<'_, V>, path: Vec<u8>, reason: String) {
    let mut errors = shared.errors.lock().unwrap_or_else(|e| e.into_inner());
    errors.0 += 1;
    if errors.1.len() < MAX_ERRORS_KEPT {
        errors.1.push(EntryError { path, reason });
    }
}

/// Lists one directory: visits each entry and queues the subdirectories to enter.
fn list<V: Fn(&Seen<'_>) + Sync>(
    shared: &Shared<'_, V>,
    job: Job,
    children: &mut Vec<Job>,
    buf: &mut [MaybeUninit<u8>],
) {
    let fd = match openat(
        job.parent.as_fd(),
        job.name.as_c_str(),
        DIR_FLAGS,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return, // removed since its parent was listed
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return record(shared, job.path, "replaced while walked".into())
        }
        Err(e) => return record(shared, job.path, format!("cannot open: {}", e.desc())),
    };
    drop(job.parent);
    match fstat(&fd) {
        Ok(st) if st.st_dev == job.dev && st.st_ino == job.ino => {}
        Ok(_) => return record(shared, job.path, "replaced while walked".into()),
        Err(e) => return record(shared, job.path, format!("fstat: {}", e.desc())),
    }
    shared.dirs.fetch_add(1, Ordering::Relaxed);
    let fd = Arc::new(fd);
    let mut seen = 0u64;
    // getdents64 straight into this worker's buffer, on the fd already open (no dup, no
    // fdopendir, no rewind): on a host of many small directories these per-directory calls cost
    // as much as the per-entry lstat.
    let mut dir = RawDir::new(fd.as_fd(), buf);
    while let Some(entry) = dir.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                record(shared, job.path.clone(), format!("listing: {e}"));
                break;
            }
        };
        let name: &CStr = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let st = match fstatat(fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                record(
                    shared,
                    join(&job.path, bytes),
                    format!("lstat: {}", e.desc()),
                );
                continue;
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
            continue;
        }
        let path = item.path();
        if shared.bounds.prune.contains(&path) {
            continue;
        }
        if st.st_dev != shared.root_dev && !shared.bounds.cross_devices {
            shared.other_devices.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        children.push(Job {
            parent: Arc::clone(&fd),
            name: name.to_owned(),
            path,
            dev: st.st_dev,
            ino: st.st_ino,
        });
    }
    shared.entries.fetch_add(seen, Ordering::Relaxed);
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
}
