//! The walk: which trees are visited, in which order, and what is found in them.
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
//! Each tree is walked with `walkdir` (iterative, so depth is unlimited): symlinks are never
//! followed (not even at the root), other filesystems are not entered, and entries are only
//! `lstat`ed here; [`Pending::read`] opens regular files later, on a worker thread. An error on
//! one entry is recorded with that entry and the walk goes on.
//!
//! Residual race (documented limit): `walkdir` opens directories by host path, so a directory
//! swapped for a symlink *while the walk runs* could make it list a directory outside the root.
//! Files are always opened with `O_NOFOLLOW` and re-checked with `fstat`.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use crate::host::pathbytes::cmp_paths;
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
    policy: &'a CompiledPolicy,
    host_root: PathBuf,
    segments: VecDeque<Segment>,
    current: Option<Tree>,
    /// The last entry of the previous chunk, held back so a following error about the same
    /// directory (its listing failed) can be attached to it.
    carry: Option<Pending>,
    /// Host paths never recorded (the manifest itself); temp files next to it are skipped too.
    skip: Option<(PathBuf, Vec<u8>)>,
    stats: WalkStats,
}

struct Tree {
    top: Vec<u8>,
    host_top: PathBuf,
    iter: walkdir::IntoIter,
    verdicts: Vec<Verdict>,
}

impl<'a> Walker<'a> {
    /// A walker over `segments` (from [`plan`]); `skip` is the manifest's host path, if any.
    pub fn new(
        sysroot: &Sysroot,
        policy: &'a CompiledPolicy,
        segments: Vec<Segment>,
        skip: Option<&Path>,
    ) -> Walker<'a> {
        let skip = skip.and_then(|p| {
            let name = p.file_name()?;
            let mut prefix = b".".to_vec();
            prefix.extend_from_slice(name.as_bytes());
            prefix.extend_from_slice(b".tmp-");
            Some((p.to_path_buf(), prefix))
        });
        Walker {
            policy,
            host_root: sysroot.root().to_path_buf(),
            segments: segments.into(),
            current: None,
            carry: None,
            skip,
            stats: WalkStats::default(),
        }
    }

    /// Totals so far.
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    fn host(&self, path: &[u8]) -> PathBuf {
        self.host_root
            .join(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)))
    }

    fn skipped(&self, host: &Path) -> bool {
        let Some((manifest, prefix)) = &self.skip else {
            return false;
        };
        host == manifest
            || (host.parent() == manifest.parent()
                && host
                    .file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(prefix)))
    }

    /// Up to `max` more entries (fewer only at the end; empty when done).
    pub fn next_chunk(&mut self, max: usize) -> Vec<Pending> {
        let mut out: Vec<Pending> = Vec::with_capacity(max + 1);
        out.extend(self.carry.take());
        while out.len() <= max {
            match self.next_item() {
                Some(Item::Entry(p)) => out.push(p),
                Some(Item::DirError { path, reason }) => {
                    self.stats.errors += 1;
                    match out.last_mut() {
                        Some(last) if last.path == path => {
                            last.walk_note = Some(reason);
                        }
                        _ => {
                            tracing::warn!(path = %String::from_utf8_lossy(&path), "fim: {reason}");
                        }
                    }
                }
                None => return out,
            }
        }
        self.carry = out.pop();
        out
    }

    fn next_item(&mut self) -> Option<Item> {
        loop {
            if self.current.is_none() {
                match self.segments.pop_front()? {
                    Segment::Link { path, verdict } => {
                        let host = self.host(&path);
                        self.stats.entries += 1;
                        return Some(Item::Entry(Pending {
                            meta: std::fs::symlink_metadata(&host).map_err(|e| e.to_string()),
                            path,
                            host,
                            policy: verdict.policy,
                            walk_note: None,
                        }));
                    }
                    Segment::Tree { path, verdict } => {
                        let host_top = self.host(&path);
                        let iter = walkdir::WalkDir::new(&host_top)
                            .follow_links(false)
                            .follow_root_links(false)
                            .same_file_system(true)
                            .sort_by_file_name()
                            .into_iter();
                        self.current = Some(Tree {
                            top: path,
                            host_top,
                            iter,
                            verdicts: vec![verdict],
                        });
                    }
                }
            }
            let policy = self.policy;
            let tree = self.current.as_mut()?;
            let next = tree.iter.next();
            let Some(result) = next else {
                self.current = None;
                continue;
            };
            let entry = match result {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| in_root(&tree.top, &tree.host_top, p))
                        .unwrap_or_else(|| tree.top.clone());
                    let reason = match e.io_error() {
                        Some(io) => format!("cannot read: {io}"),
                        None => e.to_string(),
                    };
                    return Some(Item::DirError { path, reason });
                }
            };
            let host = entry.path().to_path_buf();
            let path = in_root(&tree.top, &tree.host_top, &host);
            let depth = entry.depth();
            let verdict = if depth == 0 {
                tree.verdicts[0]
            } else {
                tree.verdicts.truncate(depth);
                let parent = tree.verdicts.last().copied();
                policy.child(parent, &path).unwrap_or(tree.verdicts[0])
            };
            let is_dir = entry.file_type().is_dir();
            if is_dir {
                tree.verdicts.truncate(depth);
                tree.verdicts.push(verdict);
            }
            if verdict.policy == Policy::Ignore {
                if is_dir && !policy.has_include_below(&path) {
                    tree.iter.skip_current_dir();
                }
                continue;
            }
            if self.skipped(&host) {
                continue;
            }
            self.stats.entries += 1;
            return Some(Item::Entry(Pending {
                meta: entry.metadata().map_err(|e| match e.io_error() {
                    Some(io) => format!("lstat: {io}"),
                    None => e.to_string(),
                }),
                path,
                host,
                policy: verdict.policy,
                walk_note: None,
            }));
        }
    }
}

#[allow(clippy::large_enum_variant)] // short-lived, one at a time
enum Item {
    Entry(Pending),
    DirError { path: Vec<u8>, reason: String },
}

fn in_root(top: &[u8], host_top: &Path, host: &Path) -> Vec<u8> {
    let rel = host.strip_prefix(host_top).unwrap_or(host);
    let rel = rel.as_os_str().as_bytes();
    if rel.is_empty() {
        return top.to_vec();
    }
    let mut out = top.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    out
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
                    .map(|p| String::from_utf8(p.path).unwrap()),
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
