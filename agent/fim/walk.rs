//! Which trees file integrity covers, in which order, and what is found in them.
//!
//! Planning ([`plan`]) expands every walked rule of the policy inside the sysroot (globs through
//! [`Sysroot::glob`]), resolves each match *inside the root* (an include root may be a symlink,
//! as `/lib -> usr/lib` on merged-/usr systems: the link itself is recorded as an entry and the
//! tree it points to is walked once), drops duplicates and roots nested in another walked root,
//! and sorts the rest.
//!
//! Order: paths are compared component by component (as [`Path`]'s `Ord` does), so a
//! directory's subtree is contiguous and comes right after it: `/a`, `/a/x`, `/a-b`. That is the
//! order of a depth-first walk with each directory's entries sorted by name, the order of the
//! manifest, and what the one-pass merge in `verify` relies on.
//!
//! Each tree is walked with the sorted walk of [`crate::host::walk`] ([`SortedWalk`]): every
//! directory is opened relative to its parent's fd with `O_NOFOLLOW` and checked to be the one
//! its parent's listing saw, symlinks are never followed (not even at the top), other
//! filesystems are not entered, and entries are only `lstat`ed here; [`Pending::read`] reads them
//! later, on a worker thread, relative to the directory fd the walk found them in. The policy
//! decides which directories are entered: an ignored directory only when a rule covers
//! something below it.
//!
//! Nothing is left out silently. An entry that cannot be `lstat`ed (gone since its directory was
//! listed, or its directory lost) is recorded with a note and no metadata; a directory that
//! cannot be opened or listed, or is not entered because its entries' paths could exceed
//! [`crate::host::walk::MAX_PATH`], is recorded with a note saying so (an ignored directory too,
//! when what it hides was to be covered). `verify` reports each such entry as not verifiable,
//! every time, as it does a regular file it cannot read. The walk goes on after each.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

pub use crate::host::pathbytes::cmp_paths;
use crate::host::walk::{Fault, SortedWalk};
use crate::sysroot::Sysroot;

use super::entry::Pending;
use super::policy::{CompiledPolicy, Policy, Verdict};
use super::FimError;

/// Maximum symlinks followed when resolving one include root (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// True when `ancestor` is `path` or one of its ancestors.
fn is_within(path: &[u8], ancestor: &[u8]) -> bool {
    Path::new(OsStr::from_bytes(path)).starts_with(Path::new(OsStr::from_bytes(ancestor)))
}

/// One part of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An include root that is a symlink: recorded alone (its target is walked separately).
    Link {
        /// In-root path of the link.
        path: Vec<u8>,
        /// The policy of the rule that named it.
        verdict: Verdict,
    },
    /// A tree (or a single non-directory) walked recursively.
    Tree {
        /// Resolved in-root path of its top.
        path: Vec<u8>,
        /// The policy of its top.
        verdict: Verdict,
    },
}

impl Segment {
    /// The in-root path of the segment's first entry.
    pub fn path(&self) -> &[u8] {
        match self {
            Segment::Link { path, .. } | Segment::Tree { path, .. } => path,
        }
    }
}

/// Resolves `path` inside the root: symlinks are followed (absolute ones restart at the root),
/// `..` at the root stays there. With `allow_missing`, a missing tail is appended as is.
pub fn resolve_in_root(
    sysroot: &Sysroot,
    path: &[u8],
    follow_last: bool,
    allow_missing: bool,
) -> io::Result<Vec<u8>> {
    let mut rest: VecDeque<Vec<u8>> = split(path);
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(name) = rest.pop_front() {
        match name.as_slice() {
            b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        resolved.push(name);
        let candidate = join(&resolved);
        let is_last = rest.is_empty();
        let meta = match sysroot.symlink_metadata(OsStr::from_bytes(&candidate)) {
            Ok(m) => m,
            Err(e) if e.is_not_found() && allow_missing => {
                for name in rest.drain(..) {
                    match name.as_slice() {
                        b"." => {}
                        b".." => drop(resolved.pop()),
                        _ => resolved.push(name),
                    }
                }
                break;
            }
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        if meta.is_symlink() && (follow_last || !is_last) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ELOOP as i32,
                ));
            }
            let target = sysroot
                .read_link(OsStr::from_bytes(&candidate))
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
            let target = target.into_os_string().into_encoded_bytes();
            resolved.pop();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            let mut spliced = split(&target);
            spliced.append(&mut rest);
            rest = spliced;
        }
    }
    Ok(join(&resolved))
}

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out
}

/// Expands and resolves the walked rules of `policy` into sorted, non-overlapping segments.
pub fn plan(sysroot: &Sysroot, policy: &CompiledPolicy) -> Result<Vec<Segment>, FimError> {
    let mut segments = Vec::new();
    for pattern in policy.includes() {
        let matches: Vec<Vec<u8>> = if pattern.contains(['*', '?', '[']) {
            sysroot
                .glob(pattern)
                .map_err(|e| FimError::Walk {
                    path: pattern.to_string(),
                    reason: e.to_string(),
                })?
                .into_iter()
                .map(|p| p.into_os_string().into_encoded_bytes())
                .collect()
        } else {
            vec![pattern.as_bytes().to_vec()]
        };
        for m in matches {
            let Some(rule) = policy.classify(&m) else {
                continue;
            };
            // The link itself (its parent resolved), then what it points to.
            let at = match resolve_in_root(sysroot, &m, false, false) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::debug!(path = %String::from_utf8_lossy(&m), "fim: include root absent; skipped");
                    continue;
                }
                Err(e) => {
                    return Err(FimError::Walk {
                        path: String::from_utf8_lossy(&m).into_owned(),
                        reason: e.to_string(),
                    })
                }
            };
            let is_link = sysroot
                .symlink_metadata(OsStr::from_bytes(&at))
                .is_ok_and(|meta| meta.is_symlink());
            let top = if is_link {
                segments.push(Segment::Link {
                    path: at.clone(),
                    verdict: rule,
                });
                match resolve_in_root(sysroot, &at, true, false) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(path = %String::from_utf8_lossy(&at), "fim: include root link does not resolve ({e}); only the link is recorded");
                        continue;
                    }
                }
            } else {
                at
            };
            let verdict = match policy.classify(&top) {
                Some(v) if v.policy != Policy::Ignore => v,
                Some(_) => continue,
                None => rule,
            };
            segments.push(Segment::Tree { path: top, verdict });
        }
    }
    segments.sort_by(|a, b| {
        cmp_paths(a.path(), b.path()).then_with(|| kind_rank(a).cmp(&kind_rank(b)))
    });
    segments.dedup_by(|b, a| a.path() == b.path());
    let mut kept: Vec<Segment> = Vec::with_capacity(segments.len());
    let mut last_tree: Option<Vec<u8>> = None;
    for seg in segments {
        if let Some(tree) = &last_tree {
            if is_within(seg.path(), tree) {
                tracing::debug!(path = %String::from_utf8_lossy(seg.path()), "fim: include root already walked; skipped");
                continue;
            }
        }
        if let Segment::Tree { path, .. } = &seg {
            last_tree = Some(path.clone());
        }
        kept.push(seg);
    }
    Ok(kept)
}

fn kind_rank(s: &Segment) -> u8 {
    match s {
        Segment::Tree { .. } => 0,
        Segment::Link { .. } => 1,
    }
}

/// Most directories whose fds one chunk of [`Walker::next_chunk`] holds: with the chunks in
/// flight (one walked, two queued, one hashed) and the walk's own, well under the usual limit of
/// 1024 open files.
pub const CHUNK_DIRS: usize = 128;

/// Most path bytes in one chunk of [`Walker::next_chunk`] (deep trees have long paths).
pub const CHUNK_PATH_BYTES: usize = 4 << 20;

/// The note of an entry that could not be `lstat`ed.
pub fn stat_note(fault: Fault) -> String {
    match fault {
        Fault::Vanished => format!(
            "lstat: {}",
            io::Error::from_raw_os_error(Errno::ENOENT as i32)
        ),
        Fault::Lstat(e) => format!("lstat: {}", io::Error::from_raw_os_error(e as i32)),
        other => other.to_string(),
    }
}

/// The note of a directory that could not be entered.
pub fn enter_note(fault: Fault) -> String {
    let cannot_read = |e: Errno| format!("cannot read: {}", io::Error::from_raw_os_error(e as i32));
    match fault {
        Fault::Vanished => cannot_read(Errno::ENOENT),
        Fault::Open(e) | Fault::List(e) => cannot_read(e),
        other => other.to_string(),
    }
}

/// Totals of a walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Entries yielded.
    pub entries: u64,
    /// Entries or directories that could not be read.
    pub errors: u64,
}

/// Yields the [`Pending`] entries of all segments, in manifest order, in chunks.
pub struct Walker<'a> {
    sysroot: &'a Sysroot,
    policy: &'a CompiledPolicy,
    segments: VecDeque<Segment>,
    current: Option<Tree>,
    /// The manifest's in-root path and the prefix of its temporary files: never recorded.
    skip: Option<(Vec<u8>, Vec<u8>)>,
    stats: WalkStats,
}

struct Tree {
    walk: SortedWalk,
    /// The verdict of each directory from the top to the current one.
    verdicts: Vec<Verdict>,
}

impl<'a> Walker<'a> {
    /// A walker over `segments` (from [`plan`]); `skip` is the manifest's host path, if any.
    pub fn new(
        sysroot: &'a Sysroot,
        policy: &'a CompiledPolicy,
        segments: Vec<Segment>,
        skip: Option<&Path>,
    ) -> Walker<'a> {
        let skip = skip.and_then(|p| {
            let name = p.file_name()?;
            let inside = Path::new("/").join(p.strip_prefix(sysroot.root()).ok()?);
            let mut prefix = b".".to_vec();
            prefix.extend_from_slice(name.as_bytes());
            prefix.extend_from_slice(b".tmp-");
            Some((inside.into_os_string().into_encoded_bytes(), prefix))
        });
        Walker {
            sysroot,
            policy,
            segments: segments.into(),
            current: None,
            skip,
            stats: WalkStats::default(),
        }
    }

    /// Totals so far.
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    /// True for the manifest and its temporary files.
    fn skipped(&self, path: &[u8]) -> bool {
        let Some((manifest, prefix)) = &self.skip else {
            return false;
        };
        let (path, manifest) = (
            Path::new(OsStr::from_bytes(path)),
            Path::new(OsStr::from_bytes(manifest)),
        );
        path == manifest
            || (path.parent() == manifest.parent()
                && path
                    .file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(prefix)))
    }

    /// Up to `max` more entries, fewer when they span [`CHUNK_DIRS`] directories or
    /// [`CHUNK_PATH_BYTES`] of paths; empty only when the walk is done.
    pub fn next_chunk(&mut self, max: usize) -> Vec<Pending> {
        let mut out: Vec<Pending> = Vec::with_capacity(max.min(super::CHUNK));
        let (mut dirs, mut bytes) = (0, 0);
        while out.len() < max && dirs < CHUNK_DIRS && bytes < CHUNK_PATH_BYTES {
            let Some(p) = self.next_entry() else {
                break;
            };
            if !out
                .last()
                .is_some_and(|last| last.found.shares_dir(&p.found))
            {
                dirs += 1;
            }
            bytes += p.path().len();
            out.push(p);
        }
        out
    }

    fn next_entry(&mut self) -> Option<Pending> {
        loop {
            if self.current.is_none() {
                match self.segments.pop_front()? {
                    Segment::Link { path, verdict } => {
                        // The first visit of a walk is its top, there is always one.
                        let Some(found) = SortedWalk::new(self.sysroot, &path, true).next() else {
                            continue;
                        };
                        self.stats.entries += 1;
                        self.stats.errors += u64::from(found.stat.is_err());
                        return Some(Pending {
                            found,
                            policy: verdict.policy,
                            walk_note: None,
                        });
                    }
                    Segment::Tree { path, verdict } => {
                        self.current = Some(Tree {
                            walk: SortedWalk::new(self.sysroot, &path, true),
                            verdicts: vec![verdict],
                        });
                    }
                }
            }
            let policy = self.policy;
            let tree = self.current.as_mut()?;
            let Some(found) = tree.walk.next() else {
                self.current = None;
                continue;
            };
            let depth = found.depth;
            let verdict = if depth == 0 {
                tree.verdicts[0]
            } else {
                tree.verdicts.truncate(depth);
                let parent = tree.verdicts.last().copied();
                policy
                    .child(parent, &found.path)
                    .unwrap_or(tree.verdicts[0])
            };
            let is_dir = found.is_dir();
            if is_dir {
                tree.verdicts.truncate(depth);
                tree.verdicts.push(verdict);
            }
            let mut walk_note = None;
            if verdict.policy == Policy::Ignore {
                if !is_dir || !policy.has_include_below(&found.path) {
                    continue;
                }
                // Covered paths lie below: if they cannot be reached, the directory says so.
                match tree.walk.enter(&found) {
                    Ok(_) => continue,
                    Err(fault) => walk_note = Some(enter_note(fault)),
                }
            } else if is_dir {
                if let Err(fault) = tree.walk.enter(&found) {
                    walk_note = Some(enter_note(fault));
                }
            }
            if self.skipped(&found.path) {
                continue;
            }
            self.stats.entries += 1;
            self.stats.errors += u64::from(walk_note.is_some() || found.stat.is_err());
            return Some(Pending {
                found,
                policy: verdict.policy,
                walk_note,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::fim::policy::FimPolicy;

    #[test]
    fn path_order_is_component_wise() {
        let mut v: Vec<&[u8]> = vec![b"/a-b", b"/a/x", b"/a", b"/a/x/y", b"/a0", b"/b"];
        v.sort_by(|a, b| cmp_paths(a, b));
        let want: Vec<&[u8]> = vec![b"/a", b"/a/x", b"/a/x/y", b"/a-b", b"/a0", b"/b"];
        assert_eq!(v, want);
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["usr/lib/x", "usr/bin", "etc", "srv"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("usr/lib/x/f"), "f").unwrap();
        std::fs::write(t.path().join("etc/hostname"), "h").unwrap();
        std::fs::write(t.path().join("etc/passwd"), "p").unwrap();
        symlink("usr/lib", t.path().join("lib")).unwrap();
        symlink("/usr/bin", t.path().join("bin")).unwrap();
        symlink("/srv/../../../../etc", t.path().join("srv/up")).unwrap();
        t
    }

    #[test]
    fn resolves_inside_the_root() {
        let t = tree();
        let s = Sysroot::open(t.path()).unwrap();
        let r = |p: &str| {
            String::from_utf8(resolve_in_root(&s, p.as_bytes(), true, false).unwrap()).unwrap()
        };
        assert_eq!(r("/lib"), "/usr/lib");
        assert_eq!(r("/lib/x/f"), "/usr/lib/x/f");
        assert_eq!(r("/bin"), "/usr/bin");
        assert_eq!(r("/srv/up"), "/etc");
        assert_eq!(r("/.."), "/");
        let keep = resolve_in_root(&s, b"/lib", false, false).unwrap();
        assert_eq!(keep, b"/lib");
        let missing = resolve_in_root(&s, b"/lib/new/dir", true, true).unwrap();
        assert_eq!(missing, b"/usr/lib/new/dir");
        assert!(resolve_in_root(&s, b"/nope/x", true, false).is_err());
    }

    #[test]
    fn plan_records_links_and_walks_each_tree_once() {
        let t = tree();
        let s = Sysroot::open(t.path()).unwrap();
        let policy = FimPolicy::with_includes(&[
            "/lib",
            "/usr/lib",
            "/usr/lib/x",
            "/etc",
            "/missing",
            "/srv/up",
        ])
        .compile()
        .unwrap();
        let segs = plan(&s, &policy).unwrap();
        let paths: Vec<(String, bool)> = segs
            .iter()
            .map(|s| {
                (
                    String::from_utf8(s.path().to_vec()).unwrap(),
                    matches!(s, Segment::Tree { .. }),
                )
            })
            .collect();
        assert_eq!(
            paths,
            [
                ("/etc".to_string(), true),
                ("/lib".to_string(), false),
                ("/srv/up".to_string(), false),
                ("/usr/lib".to_string(), true),
            ]
        );
        let mut w = Walker::new(&s, &policy, segs, None);
        let mut all = Vec::new();
        loop {
            let chunk = w.next_chunk(2);
            if chunk.is_empty() {
                break;
            }
            all.extend(
                chunk
                    .into_iter()
                    .map(|p| String::from_utf8(p.found.path).unwrap()),
            );
        }
        assert_eq!(
            all,
            [
                "/etc",
                "/etc/passwd",
                "/lib",
                "/srv/up",
                "/usr/lib",
                "/usr/lib/x",
                "/usr/lib/x/f"
            ]
        );
    }
}
