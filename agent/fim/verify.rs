//! Verify: compare the tree with its manifest in one pass.
//!
//! The manifest is first read whole and checked (format, order, count, its own digest and, if
//! pinned, the expected digest) without keeping it in memory; only then is it trusted. The
//! second pass merge-joins the sorted manifest stream with the sorted walk: a path only in the
//! manifest is `removed`, only in the tree `added`, in both it is compared under its policy.
//! The walk is cut into chunks whose entries are read (hashed) in parallel.
//!
//! Severity of a change:
//!
//! * critical: an added or changed regular file that is setuid/setgid or carries file
//!   capabilities; anything added, removed or changed under `/usr/bin`, `/usr/sbin`, `/bin`,
//!   `/sbin`, `/usr/libexec`, `/boot`;
//! * high: a content change (content, size, type, link target, caps, or not verifiable) or an
//!   added/removed entry under `/usr/lib*` or `/etc`; a capability change anywhere;
//! * medium: metadata-only changes (mode, owner, group) elsewhere than the critical places,
//!   content changes and removed entries elsewhere;
//! * low: entries added elsewhere.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::rule::Severity;
use crate::sysroot::Sysroot;

use super::entry::{display_bytes, hex, Entry, Kind, Pending};
use super::manifest::{self, ManifestInfo, Reader};
use super::policy::{FimPolicy, Policy};
use super::walk::{self, cmp_paths, Walker};
use super::FimError;

/// Where any change is critical.
pub const CRITICAL_DIRS: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/usr/libexec",
    "/boot",
];

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions<'a> {
    /// Host path of the manifest; `None` is [`super::default_manifest_path`].
    pub manifest: Option<&'a Path>,
    /// Refuse a manifest whose digest is not this one.
    pub expect_digest: Option<[u8; 32]>,
    /// The policy to compare with; `None` uses the one recorded in the manifest.
    pub policy: Option<FimPolicy>,
}

/// Added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// In the tree, not in the manifest.
    Added,
    /// In the manifest, not in the tree.
    Removed,
    /// In both, different.
    Changed,
}

impl ChangeKind {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One thing that differs between the manifest and the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Different SHA-256 (same size).
    Content,
    /// Different size (for `growing`: it shrank).
    Size {
        /// Recorded.
        old: u64,
        /// Now.
        new: u64,
    },
    /// Different permission bits.
    Mode {
        /// Recorded.
        old: u32,
        /// Now.
        new: u32,
    },
    /// Different owner.
    Owner {
        /// Recorded.
        old: u32,
        /// Now.
        new: u32,
    },
    /// Different group.
    Group {
        /// Recorded.
        old: u32,
        /// Now.
        new: u32,
    },
    /// Different type (a file became a symlink...).
    Type {
        /// Recorded.
        old: Kind,
        /// Now.
        new: Kind,
    },
    /// Different symlink target.
    Target {
        /// Recorded.
        old: Vec<u8>,
        /// Now.
        new: Vec<u8>,
    },
    /// Different file capabilities (hex; empty for none).
    Caps {
        /// Recorded.
        old: Option<Vec<u8>>,
        /// Now.
        new: Option<Vec<u8>>,
    },
    /// The content could not be compared (unreadable now, changed while hashed, or not
    /// recorded at init).
    Unverified(String),
}

impl What {
    /// The short name of what changed: content, size, mode, owner, group, type, target, caps.
    pub fn name(&self) -> &'static str {
        match self {
            What::Content => "content",
            What::Size { .. } => "size",
            What::Mode { .. } => "mode",
            What::Owner { .. } => "owner",
            What::Group { .. } => "group",
            What::Type { .. } => "type",
            What::Target { .. } => "link target",
            What::Caps { .. } => "caps",
            What::Unverified(_) => "unverified",
        }
    }

    /// True for mode, owner and group.
    pub fn is_metadata(&self) -> bool {
        matches!(
            self,
            What::Mode { .. } | What::Owner { .. } | What::Group { .. }
        )
    }
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Content => f.write_str("content"),
            What::Size { old, new } => write!(f, "size {old} -> {new}"),
            What::Mode { old, new } => write!(f, "mode {old:04o} -> {new:04o}"),
            What::Owner { old, new } => write!(f, "owner {old} -> {new}"),
            What::Group { old, new } => write!(f, "group {old} -> {new}"),
            What::Type { old, new } => write!(f, "type {} -> {}", old.as_str(), new.as_str()),
            What::Target { old, new } => write!(
                f,
                "link target {} -> {}",
                display_bytes(old),
                display_bytes(new)
            ),
            What::Caps { old, new } => {
                let show = |c: &Option<Vec<u8>>| c.as_deref().map_or("none".to_string(), hex);
                write!(f, "caps {} -> {}", show(old), show(new))
            }
            What::Unverified(why) => write!(f, "not verifiable: {why}"),
        }
    }
}

/// One added, removed or changed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// In-root path, raw bytes.
    pub path: Vec<u8>,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// What differs (empty for added and removed).
    pub what: Vec<What>,
    /// How bad it is.
    pub severity: Severity,
    /// The recorded entry (removed, changed).
    pub old: Option<Entry>,
    /// The current entry (added, changed).
    pub new: Option<Entry>,
}

impl Change {
    /// The path, printable (non-UTF-8 bytes escaped as `\xHH`).
    pub fn display_path(&self) -> String {
        display_bytes(&self.path)
    }

    /// What changed (`mode 0644 -> 0666, content`) for a changed entry; what the entry is
    /// (`file, mode 4755, 0:0, setuid/setgid`) for an added or removed one.
    pub fn detail(&self) -> String {
        match self.kind {
            ChangeKind::Changed => self
                .what
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            ChangeKind::Added | ChangeKind::Removed => self
                .new
                .as_ref()
                .or(self.old.as_ref())
                .map(Entry::summary)
                .unwrap_or_default(),
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The manifest compared with.
    pub manifest: ManifestInfo,
    /// Changes, worst first (then by path).
    pub changes: Vec<Change>,
    /// Entries in the tree now (walked and compared).
    pub entries_checked: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Entries of the tree that could not be read fully.
    pub errors: u64,
    /// Wall time.
    pub seconds: f64,
}

impl VerifyReport {
    /// True when nothing changed.
    pub fn is_clean(&self) -> bool {
        self.changes.is_empty()
    }

    /// Number of changes of a kind.
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }

    /// A readable summary, grouped (changed, added, removed; the worst group first), worst
    /// first in each group, at most `max_bytes` long.
    pub fn render_text(&self, max_bytes: usize) -> String {
        let m = &self.manifest;
        let mut head = format!(
            "ec2-harden fim verify\nroot:     {}\nmanifest: {} (sha256:{})\n          created {} by {}, baseline {}, {} entries\nchecked:  {} entries, {} bytes hashed, {:.2} s\n",
            m.header.root,
            m.path.display(),
            hex(&m.digest),
            m.header.created,
            m.header.agent,
            m.header.baseline.as_deref().unwrap_or("-"),
            m.entries,
            self.entries_checked,
            self.bytes_hashed,
            self.seconds
        );
        let mut by_sev = String::new();
        for sev in Severity::ALL {
            let n = self.changes.iter().filter(|c| c.severity == sev).count();
            if n > 0 {
                let _ = write!(by_sev, ", {n} {sev}");
            }
        }
        let _ = writeln!(
            head,
            "changes:  {} added, {} removed, {} changed{}\n",
            self.count(ChangeKind::Added),
            self.count(ChangeKind::Removed),
            self.count(ChangeKind::Changed),
            by_sev
        );
        let verdict = if self.is_clean() {
            "verdict: CLEAN (the tree matches the manifest)\n".to_string()
        } else {
            format!(
                "verdict: CHANGED ({} change{}, worst {})\n",
                self.changes.len(),
                if self.changes.len() == 1 { "" } else { "s" },
                self.changes[0].severity
            )
        };
        let mut groups: Vec<(ChangeKind, Vec<&Change>)> =
            [ChangeKind::Changed, ChangeKind::Added, ChangeKind::Removed]
                .into_iter()
                .map(|k| {
                    (
                        k,
                        self.changes
                            .iter()
                            .filter(|c| c.kind == k)
                            .collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
        groups.sort_by_key(|(_, v)| std::cmp::Reverse(v[0].severity));
        let budget = max_bytes.saturating_sub(head.len() + verdict.len() + 120);
        let mut body = String::new();
        let mut shown = 0;
        'outer: for (kind, changes) in &groups {
            let title = format!("{} ({}):\n", kind.as_str(), changes.len());
            if body.len() + title.len() > budget {
                break;
            }
            body.push_str(&title);
            for c in changes {
                let mut line = format!("  [{}] {}", c.severity, c.display_path());
                match c.kind {
                    ChangeKind::Changed => {
                        let _ = write!(line, ": {}", c.detail());
                    }
                    ChangeKind::Added | ChangeKind::Removed => {
                        let _ = write!(line, " ({})", c.detail());
                    }
                }
                line.push('\n');
                if body.len() + line.len() > budget {
                    break 'outer;
                }
                body.push_str(&line);
                shown += 1;
            }
            body.push('\n');
        }
        if shown < self.changes.len() {
            let _ = writeln!(
                body,
                "... {} more change{} not shown (output capped at {max_bytes} bytes)\n",
                self.changes.len() - shown,
                if self.changes.len() - shown == 1 {
                    ""
                } else {
                    "s"
                }
            );
        }
        format!("{head}{body}{verdict}")
    }
}

/// Checks the manifest, walks the root and compares (see the module docs).
pub fn verify(sysroot: &Sysroot, opts: &VerifyOptions<'_>) -> Result<VerifyReport, FimError> {
    let start = Instant::now();
    let path: PathBuf = match opts.manifest {
        Some(p) => p.to_path_buf(),
        None => super::default_manifest_path(sysroot)?,
    };
    let info = manifest::validate(&path, opts.expect_digest.as_ref())?;
    let policy = opts
        .policy
        .clone()
        .unwrap_or_else(|| info.header.policy.clone());
    let compiled = policy.compile()?;
    let segments = walk::plan(sysroot, &compiled)?;
    let mut walker = Walker::new(sysroot, &compiled, segments, Some(&path));
    let mut reader = Reader::open(&path)?;
    let mut next_old = reader.next_entry()?;
    let mut changes: Vec<Change> = Vec::new();
    let (mut checked, mut bytes_hashed, mut errors) = (0u64, 0u64, 0u64);

    super::for_each_chunk(&mut walker, |pending| {
        // Merge this chunk with the manifest stream (serial, cheap).
        let mut pairs: Vec<Pair> = Vec::with_capacity(pending.len());
        for p in pending {
            loop {
                let order = next_old.as_ref().map(|o| cmp_paths(&o.path, p.path()));
                match order {
                    Some(Ordering::Less) => {
                        if let Some(old) = next_old.take() {
                            pairs.push(Pair::Removed(old));
                        }
                        next_old = reader.next_entry()?;
                    }
                    Some(Ordering::Equal) => {
                        if let Some(old) = next_old.take() {
                            pairs.push(Pair::Both(old, p));
                        }
                        next_old = reader.next_entry()?;
                        break;
                    }
                    Some(Ordering::Greater) | None => {
                        pairs.push(Pair::Added(p));
                        break;
                    }
                }
            }
        }
        // Read and compare in parallel.
        for r in super::par_map_ordered(&pairs, Pair::weight, compare) {
            if r.walked {
                checked += 1;
            }
            bytes_hashed += r.hashed;
            errors += u64::from(r.error);
            changes.extend(r.change);
        }
        Ok(())
    })?;
    while let Some(old) = next_old.take() {
        changes.extend(compare(&Pair::Removed(old)).change);
        next_old = reader.next_entry()?;
    }
    if reader.digest() != Some(info.digest) {
        return Err(FimError::Manifest {
            path: path.clone(),
            line: None,
            reason: "changed while it was being read".into(),
        });
    }
    changes.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| cmp_paths(&a.path, &b.path))
    });
    Ok(VerifyReport {
        manifest: info,
        changes,
        entries_checked: checked,
        bytes_hashed,
        errors,
        seconds: start.elapsed().as_secs_f64(),
    })
}

enum Pair {
    Removed(Entry),
    Added(Pending),
    Both(Entry, Pending),
}

impl Pair {
    fn weight(&self) -> u64 {
        match self {
            Pair::Removed(_) => 0,
            Pair::Added(p) | Pair::Both(_, p) => p.weight(),
        }
    }
}

struct Compared {
    change: Option<Change>,
    walked: bool,
    hashed: u64,
    error: bool,
}

fn compare(pair: &Pair) -> Compared {
    match pair {
        Pair::Removed(old) => Compared {
            change: Some(Change {
                severity: severity(ChangeKind::Removed, &old.path, &[], None),
                path: old.path.clone(),
                kind: ChangeKind::Removed,
                what: Vec::new(),
                old: Some(old.clone()),
                new: None,
            }),
            walked: false,
            hashed: 0,
            error: false,
        },
        Pair::Added(p) => {
            let new = p.read(p.policy.hashes());
            Compared {
                hashed: new.sha256.map_or(0, |_| new.size),
                error: new.note.is_some(),
                walked: true,
                change: Some(Change {
                    severity: severity(ChangeKind::Added, &new.path, &[], Some(&new)),
                    path: new.path.clone(),
                    kind: ChangeKind::Added,
                    what: Vec::new(),
                    old: None,
                    new: Some(new),
                }),
            }
        }
        Pair::Both(old, p) => {
            let hash = match p.policy {
                Policy::Full => true,
                // Grown logs are fine without reading them; same size must be same content.
                Policy::Growing => p.size() == Some(old.size),
                Policy::Metadata | Policy::Ignore => false,
            };
            let new = p.read(hash);
            let what = diff(old, &new, p.policy, hash);
            Compared {
                hashed: new.sha256.map_or(0, |_| new.size),
                error: new.note.is_some(),
                walked: true,
                change: (!what.is_empty()).then(|| Change {
                    severity: severity(ChangeKind::Changed, &new.path, &what, Some(&new)),
                    path: new.path.clone(),
                    kind: ChangeKind::Changed,
                    what,
                    old: Some(old.clone()),
                    new: Some(new),
                }),
            }
        }
    }
}

/// What differs between the recorded and the current entry under `policy`.
pub fn diff(old: &Entry, new: &Entry, policy: Policy, hashed: bool) -> Vec<What> {
    let mut what = Vec::new();
    if old.kind != new.kind {
        what.push(What::Type {
            old: old.kind,
            new: new.kind,
        });
        return what;
    }
    if old.mode != new.mode {
        what.push(What::Mode {
            old: old.mode,
            new: new.mode,
        });
    }
    if old.uid != new.uid {
        what.push(What::Owner {
            old: old.uid,
            new: new.uid,
        });
    }
    if old.gid != new.gid {
        what.push(What::Group {
            old: old.gid,
            new: new.gid,
        });
    }
    let caps = |c: &Option<Vec<u8>>| c.clone().filter(|c| !c.is_empty());
    if caps(&old.caps) != caps(&new.caps) {
        what.push(What::Caps {
            old: caps(&old.caps),
            new: caps(&new.caps),
        });
    }
    if old.target != new.target {
        what.push(What::Target {
            old: old.target.clone().unwrap_or_default(),
            new: new.target.clone().unwrap_or_default(),
        });
    }
    if new.kind != Kind::File {
        // A directory that could not be entered or listed, or an entry that could not be
        // lstat'ed: what is below it or what it is cannot be compared, even when the manifest
        // recorded the same (as for a regular file that cannot be read).
        if let Some(note) = &new.note {
            what.push(What::Unverified(note.clone()));
        }
        return what;
    }
    match policy {
        Policy::Metadata | Policy::Ignore => {}
        Policy::Growing if new.size > old.size => {}
        Policy::Full | Policy::Growing => {
            if old.size != new.size && new.note.is_none() {
                what.push(What::Size {
                    old: old.size,
                    new: new.size,
                });
            } else if hashed {
                match (&old.sha256, &new.sha256, &new.note) {
                    (Some(a), Some(b), _) if a != b => what.push(What::Content),
                    (Some(_), Some(_), _) => {}
                    (_, _, Some(note)) => what.push(What::Unverified(note.clone())),
                    (None, _, _) => what.push(What::Unverified(format!(
                        "no content recorded in the manifest ({})",
                        old.note.as_deref().unwrap_or("not hashed at init")
                    ))),
                    (Some(_), None, None) => what.push(What::Unverified("not hashed".into())),
                }
            }
        }
    }
    what
}

fn under(path: &[u8], dir: &str) -> bool {
    path.strip_prefix(dir.as_bytes())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// `/usr/lib`, `/usr/lib64`, `/usr/libexec`, `/usr/lib32`... and `/etc`.
fn sensitive(path: &[u8]) -> bool {
    under(path, "/etc")
        || path.strip_prefix(b"/usr/lib").is_some_and(|rest| {
            let first = rest.split(|&b| b == b'/').next().unwrap_or_default();
            first.iter().all(|b| b.is_ascii_alphanumeric())
        })
        || under(path, "/lib")
        || under(path, "/lib64")
}

/// The severity of a change (see the module docs).
pub fn severity(kind: ChangeKind, path: &[u8], what: &[What], new: Option<&Entry>) -> Severity {
    let critical_dir = CRITICAL_DIRS.iter().any(|d| under(path, d));
    let privileged = new.is_some_and(|e| e.is_setid() || e.has_caps());
    match kind {
        ChangeKind::Added if privileged || critical_dir => Severity::Critical,
        ChangeKind::Added if sensitive(path) => Severity::High,
        ChangeKind::Added => Severity::Low,
        ChangeKind::Removed if critical_dir => Severity::Critical,
        ChangeKind::Removed if sensitive(path) => Severity::High,
        ChangeKind::Removed => Severity::Medium,
        ChangeKind::Changed if privileged || critical_dir => Severity::Critical,
        ChangeKind::Changed => {
            let content = what.iter().any(|w| !w.is_metadata());
            let caps = what.iter().any(|w| matches!(w, What::Caps { .. }));
            if caps || (content && sensitive(path)) {
                Severity::High
            } else {
                Severity::Medium
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 10,
            mtime: 0,
            sha256: Some([1; 32]),
            caps: None,
            target: None,
            note: None,
        }
    }

    #[test]
    fn diff_under_each_policy() {
        let old = file("/etc/a");
        let mut new = file("/etc/a");
        new.sha256 = Some([2; 32]);
        assert_eq!(diff(&old, &new, Policy::Full, true), [What::Content]);
        assert!(diff(&old, &new, Policy::Metadata, false).is_empty());
        assert_eq!(diff(&old, &new, Policy::Growing, true), [What::Content]);
        new.size = 20;
        assert!(diff(&old, &new, Policy::Growing, false).is_empty());
        assert_eq!(
            diff(&old, &new, Policy::Full, true),
            [What::Size { old: 10, new: 20 }]
        );
        new.size = 5;
        assert_eq!(
            diff(&old, &new, Policy::Growing, false),
            [What::Size { old: 10, new: 5 }]
        );
        let mut meta = file("/etc/a");
        meta.mode = 0o600;
        meta.uid = 1;
        assert_eq!(
            diff(&old, &meta, Policy::Metadata, false),
            [
                What::Mode {
                    old: 0o644,
                    new: 0o600
                },
                What::Owner { old: 0, new: 1 }
            ]
        );
        let mut link = file("/etc/a");
        link.kind = Kind::Symlink;
        assert_eq!(
            diff(&old, &link, Policy::Full, true),
            [What::Type {
                old: Kind::File,
                new: Kind::Symlink
            }]
        );
        let mut noted = file("/etc/a");
        noted.sha256 = None;
        noted.note = Some("changed while hashed".into());
        assert_eq!(
            diff(&old, &noted, Policy::Full, true),
            [What::Unverified("changed while hashed".into())]
        );
    }

    #[test]
    fn severities() {
        let f = file("/x");
        let mut suid = file("/opt/x");
        suid.mode = 0o4755;
        assert_eq!(
            severity(ChangeKind::Added, b"/opt/x", &[], Some(&suid)),
            Severity::Critical
        );
        assert_eq!(
            severity(ChangeKind::Added, b"/opt/x", &[], Some(&f)),
            Severity::Low
        );
        assert_eq!(
            severity(ChangeKind::Added, b"/usr/sbin/x", &[], Some(&f)),
            Severity::Critical
        );
        assert_eq!(
            severity(ChangeKind::Removed, b"/boot/vmlinuz", &[], None),
            Severity::Critical
        );
        assert_eq!(
            severity(
                ChangeKind::Changed,
                b"/usr/lib64/libc.so",
                &[What::Content],
                Some(&f)
            ),
            Severity::High
        );
        assert_eq!(
            severity(
                ChangeKind::Changed,
                b"/etc/passwd",
                &[What::Content],
                Some(&f)
            ),
            Severity::High
        );
        assert_eq!(
            severity(
                ChangeKind::Changed,
                b"/etc/passwd",
                &[What::Mode {
                    old: 0o644,
                    new: 0o666
                }],
                Some(&f)
            ),
            Severity::Medium
        );
        assert_eq!(
            severity(ChangeKind::Changed, b"/opt/x", &[What::Content], Some(&f)),
            Severity::Medium
        );
        assert_eq!(
            severity(
                ChangeKind::Changed,
                b"/usr/binx/y",
                &[What::Content],
                Some(&f)
            ),
            Severity::Medium
        );
        let caps = What::Caps {
            old: None,
            new: Some(vec![1]),
        };
        assert_eq!(
            severity(ChangeKind::Changed, b"/opt/x", &[caps], Some(&f)),
            Severity::High
        );
        assert!(
            sensitive(b"/usr/libexec/x")
                && sensitive(b"/usr/lib/x")
                && !sensitive(b"/usr/local/lib")
        );
    }
}
