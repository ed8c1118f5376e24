//! `[[tree_scan]]`: properties of every file on the local filesystems, from one walk of the whole
//! tree per run: world-writable regular files, world-writable directories without the sticky
//! bit, files whose owner or group is not in the audited system's `/etc/passwd` / `/etc/group`,
//! and setuid/setgid regular files that no installed package vouches for (see [`super::shipped`]:
//! a package ships the file with that content and, where the database records one, that mode) and
//! that `allow` does not name.
//!
//! However many `tree_scan` rules a baseline has, the tree is walked once ([`crate::host::walk`],
//! bounded to the local filesystems, never following symlinks) and the walk collects what every
//! scan needs; each rule then filters the shared result with its own `exclude` (a path or any of
//! its ancestors matches: the subtree is ignored) and `allow` (the path itself matches: accepted).
//! Evidence stays small: the total and the first [`LISTED`] paths in path order, names with
//! non-UTF-8 bytes or control characters printed escaped (`\xff`).
//!
//! A scan that could not see everything says so: entries the walk could not read, directories
//! it could not list or did not enter (paths longer than [`crate::host::walk::MAX_PATH`]) make
//! the outcome `error` (or, next to matches, a `fail` that says there may be more); entries that
//! vanished between their directory's listing and their `lstat` are listed in the evidence.

use std::collections::HashSet;
use std::sync::Mutex;

use nix::sys::stat::SFlag;
use serde::Deserialize;
use toml::Spanned;

use super::validate_path;
use crate::checks::params::rule_params;
use crate::checks::shipped::{Verdict, Vouchers};
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::fim::entry::display_bytes;
use crate::fim::walk::cmp_paths;
use crate::host::accounts::Accounts;
use crate::host::walk::{self, Bounds, EntryError, Seen, WalkSummary};
use crate::rule::{Evidence, Outcome};

/// Paths listed in a rule's evidence; the total is always given.
pub const LISTED: usize = 20;

/// Matches kept per scan in memory; beyond it only the count grows (a tree with millions of
/// world-writable files is reported as such without holding every path).
const MAX_KEPT: usize = 100_000;

/// What a rule looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scan {
    /// Regular files writable by others (`o+w`).
    WorldWritableFiles,
    /// Directories writable by others without the sticky bit (anyone may delete anyone's files).
    WorldWritableDirsNoSticky,
    /// Entries (of any type) whose uid is not in `/etc/passwd`.
    Unowned,
    /// Entries whose gid is not in `/etc/group`.
    Ungrouped,
    /// Regular files with the setuid or setgid bit that no installed package ships as they are,
    /// outside `allow`.
    SuidSgid,
}

impl Scan {
    const ALL: [Scan; 5] = [
        Scan::WorldWritableFiles,
        Scan::WorldWritableDirsNoSticky,
        Scan::Unowned,
        Scan::Ungrouped,
        Scan::SuidSgid,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// What one match is, in evidence.
    fn noun(self) -> &'static str {
        match self {
            Scan::WorldWritableFiles => "world-writable regular file",
            Scan::WorldWritableDirsNoSticky => "world-writable directory without the sticky bit",
            Scan::Unowned => "file whose owner is not in /etc/passwd",
            Scan::Ungrouped => "file whose group is not in /etc/group",
            Scan::SuidSgid => "setuid/setgid file not vouched for by a package or the allow-list",
        }
    }

    /// The same, for a count other than one.
    fn plural(self) -> &'static str {
        match self {
            Scan::WorldWritableFiles => "world-writable regular files",
            Scan::WorldWritableDirsNoSticky => "world-writable directories without the sticky bit",
            Scan::Unowned => "files whose owner is not in /etc/passwd",
            Scan::Ungrouped => "files whose group is not in /etc/group",
            Scan::SuidSgid => "setuid/setgid files not vouched for by a package or the allow-list",
        }
    }
}

rule_params! {
    /// TOML parameters of `[[tree_scan]]`.
    pub struct TreeScan {
        /// `world-writable-files`, `world-writable-dirs-no-sticky`, `unowned`, `ungrouped` or
        /// `suid-sgid`.
        pub scan: Scan,
        /// Accepted paths (globs; `*` stays within one component, `**` spans several).
        #[serde(default)]
        pub allow: Vec<Spanned<String>>,
        /// Ignored subtrees (globs): a path is ignored when it or one of its ancestors matches.
        #[serde(default)]
        pub exclude: Vec<Spanned<String>>,
    }
}

#[derive(Debug)]
pub struct TreeScanCheck {
    scan: Scan,
    allow: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl CompileCheck for TreeScan {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        for p in self.allow.iter().chain(&self.exclude) {
            validate_path(diags, p);
        }
        if diags.errors_since(mark) {
            return None;
        }
        let patterns = |list: &[Spanned<String>]| {
            list.iter()
                .filter_map(|p| glob::Pattern::new(p.get_ref()).ok())
                .collect()
        };
        Some(Box::new(TreeScanCheck {
            scan: self.scan,
            allow: patterns(&self.allow),
            exclude: patterns(&self.exclude),
        }))
    }
}

/// One match of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// In-root path, raw bytes.
    pub path: Vec<u8>,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What one walk found for every scan.
#[derive(Debug, Default)]
pub struct Findings {
    /// Matches per [`Scan`] (indexed by [`Scan::index`]), at most [`MAX_KEPT`] each.
    pub hits: [Vec<Hit>; 5],
    /// True matches per scan, counting those beyond [`MAX_KEPT`].
    pub totals: [u64; 5],
    pub summary: WalkSummary,
    /// What was walked, for evidence.
    pub bounds: String,
}

/// The run's walk, computed once and shared by every `tree_scan` rule through the context cache.
#[derive(Debug)]
struct SharedWalk {
    result: Result<Findings, String>,
    /// Why owners could not be judged (`/etc/passwd` could not be read).
    uids_unknown: Option<String>,
    /// Why groups could not be judged (`/etc/group` could not be read).
    gids_unknown: Option<String>,
}

/// The ids that exist on the audited system; `None` when its database could not be read (the
/// walk then judges no owner, or no group, rather than calling every file unowned).
#[derive(Debug, Default)]
pub struct KnownIds {
    pub uids: Option<HashSet<u32>>,
    pub gids: Option<HashSet<u32>>,
}

/// Walks `sysroot` within `bounds` and collects the matches of every scan.
pub fn collect(
    sysroot: &crate::sysroot::Sysroot,
    bounds: &Bounds,
    ids: &KnownIds,
    threads: usize,
) -> Result<Findings, walk::WalkError> {
    let hits: Mutex<Findings> = Mutex::new(Findings::default());
    let visit = |s: &Seen<'_>| {
        let st = s.stat;
        let mode = st.st_mode & 0o7777;
        let kind = s.kind();
        let mut matched = [false; 5];
        matched[Scan::WorldWritableFiles.index()] = kind == SFlag::S_IFREG && mode & 0o002 != 0;
        matched[Scan::WorldWritableDirsNoSticky.index()] =
            kind == SFlag::S_IFDIR && mode & 0o002 != 0 && mode & 0o1000 == 0;
        matched[Scan::SuidSgid.index()] = kind == SFlag::S_IFREG && mode & 0o6000 != 0;
        if let Some(uids) = &ids.uids {
            matched[Scan::Unowned.index()] = !uids.contains(&st.st_uid);
        }
        if let Some(gids) = &ids.gids {
            matched[Scan::Ungrouped.index()] = !gids.contains(&st.st_gid);
        }
        if !matched.contains(&true) {
            return;
        }
        let hit = Hit {
            path: s.path(),
            mode,
            uid: st.st_uid,
            gid: st.st_gid,
        };
        let mut f = hits.lock().unwrap_or_else(|e| e.into_inner());
        for scan in Scan::ALL {
            let i = scan.index();
            if matched[i] {
                f.totals[i] += 1;
                if f.hits[i].len() < MAX_KEPT {
                    f.hits[i].push(hit.clone());
                }
            }
        }
    };
    let summary = walk::walk(sysroot, bounds, threads, &visit)?;
    let mut findings = hits.into_inner().unwrap_or_else(|e| e.into_inner());
    for list in &mut findings.hits {
        list.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    }
    findings.summary = summary;
    findings.bounds = bounds.description.clone();
    Ok(findings)
}

impl SharedWalk {
    fn run(cx: &Context<'_>) -> SharedWalk {
        let accounts = cx.cache.get(|| Accounts::read(cx.sysroot));
        // Accounts records an unreadable database as "<path>: <error>".
        let problem = |file: &str| {
            accounts
                .problems
                .iter()
                .find(|p| p.starts_with(&format!("{file}:")))
                .cloned()
        };
        let (uids_unknown, gids_unknown) = (problem("/etc/passwd"), problem("/etc/group"));
        let ids = KnownIds {
            uids: uids_unknown
                .is_none()
                .then(|| accounts.users.keys().copied().collect()),
            gids: gids_unknown
                .is_none()
                .then(|| accounts.groups.keys().copied().collect()),
        };
        let bounds = Bounds::for_sysroot(cx.sysroot);
        let started = std::time::Instant::now();
        let result =
            collect(cx.sysroot, &bounds, &ids, walk::default_threads()).map_err(|e| e.to_string());
        if let Ok(f) = &result {
            tracing::debug!(
                entries = f.summary.entries,
                dirs = f.summary.dirs,
                errors = f.summary.error_count,
                ms = started.elapsed().as_millis() as u64,
                "tree scan walk done"
            );
        }
        SharedWalk {
            result,
            uids_unknown,
            gids_unknown,
        }
    }
}

impl TreeScanCheck {
    fn excluded(&self, path: &[u8]) -> bool {
        if self.exclude.is_empty() {
            return false;
        }
        let text = String::from_utf8_lossy(path);
        let mut ends: Vec<usize> = text.match_indices('/').map(|(i, _)| i).skip(1).collect();
        ends.push(text.len());
        ends.into_iter().any(|end| {
            self.exclude
                .iter()
                .any(|p| p.matches_with(&text[..end], MATCH))
        })
    }

    /// Evidence of the entries that vanished while the tree was walked (outside `exclude`): they
    /// were listed but gone before they could be looked at (removed or renamed meanwhile).
    fn vanished(&self, summary: &WalkSummary) -> Option<Evidence> {
        let listed = summary.vanished_paths.len() as u64;
        let shown: Vec<&Vec<u8>> = summary
            .vanished_paths
            .iter()
            .filter(|p| !self.excluded(p))
            .collect();
        let count = shown.len() as u64 + (summary.vanished - listed);
        if count == 0 {
            return None;
        }
        let first: Vec<String> = shown.iter().take(3).map(|p| display_bytes(p)).collect();
        Some(Evidence::new(format!(
            "{count} {} vanished while the tree was walked (removed or renamed meanwhile){}",
            if count == 1 { "entry" } else { "entries" },
            if first.is_empty() {
                String::new()
            } else {
                format!(": {}", first.join(", "))
            }
        )))
    }

    fn allowed(&self, path: &[u8]) -> bool {
        let text = String::from_utf8_lossy(path);
        self.allow.iter().any(|p| p.matches_with(&text, MATCH))
    }

    fn describe(&self, hit: &Hit, accounts: &Accounts) -> Evidence {
        let owner = accounts
            .user(hit.uid)
            .map_or_else(|| hit.uid.to_string(), str::to_string);
        let group = accounts
            .group(hit.gid)
            .map_or_else(|| hit.gid.to_string(), str::to_string);
        let ev = Evidence::new(self.scan.noun()).path(display_bytes(&hit.path));
        match self.scan {
            Scan::WorldWritableFiles => ev
                .found(format!("mode {:04o}", hit.mode))
                .expected("no write permission for others"),
            Scan::WorldWritableDirsNoSticky => ev
                .found(format!("mode {:04o}", hit.mode))
                .expected("the sticky bit (1000) or no write permission for others"),
            Scan::Unowned => ev
                .found(format!("uid {}", hit.uid))
                .expected("an owner listed in /etc/passwd"),
            Scan::Ungrouped => ev
                .found(format!("gid {}", hit.gid))
                .expected("a group listed in /etc/group"),
            Scan::SuidSgid => ev
                .found(format!(
                    "mode {:04o}, owner {owner}, group {group}",
                    hit.mode
                ))
                .expected("a file of an installed package, or a path in the rule's allow-list"),
        }
    }
}

impl Check for TreeScanCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let shared = cx.cache.get(|| SharedWalk::run(cx));
        let findings = match &shared.result {
            Ok(f) => f,
            Err(e) => return Outcome::error(e),
        };
        let unknown = match self.scan {
            Scan::Unowned => shared.uids_unknown.as_ref(),
            Scan::Ungrouped => shared.gids_unknown.as_ref(),
            _ => None,
        };
        if let Some(why) = unknown {
            return Outcome::error(format!("cannot tell which ids exist: {why}"));
        }
        let accounts = cx.cache.get(|| Accounts::read(cx.sysroot));
        let i = self.scan.index();
        let kept = &findings.hits[i];
        let judged: Vec<&Hit> = kept.iter().filter(|h| !self.excluded(&h.path)).collect();
        // setuid/setgid files are judged against the package database, looked up once per run
        // for all of the walk's (whatever each rule excludes), and only when there are some
        let vouchers = (self.scan == Scan::SuidSgid && !judged.is_empty()).then(|| {
            cx.cache.get(|| {
                let paths: Vec<Vec<u8>> = kept.iter().map(|h| h.path.clone()).collect();
                Vouchers::lookup(cx, &paths)
            })
        });
        if let Some(why) = vouchers.as_ref().and_then(|v| v.unreadable()) {
            return Outcome::error(format!(
                "cannot read the package database to judge {} setuid/setgid files: {why}",
                judged.len()
            ));
        }
        let mut found: Vec<Evidence> = Vec::new();
        let mut passed: Vec<Evidence> = Vec::new();
        let (mut shipped, mut allowed) = (0usize, 0usize);
        for hit in judged {
            let is_allowed = self.allowed(&hit.path);
            let verdict = match &vouchers {
                Some(v) => v.judge(
                    cx,
                    &accounts,
                    &hit.path,
                    (hit.mode, hit.uid, hit.gid),
                    is_allowed,
                ),
                None if is_allowed => Verdict::Allowed,
                None => Verdict::Fails(self.describe(hit, &accounts)),
            };
            match verdict {
                Verdict::Shipped(e) => {
                    shipped += 1;
                    passed.push(e);
                }
                // other scans accept `allow`ed paths silently, as always
                Verdict::Allowed if self.scan != Scan::SuidSgid => {}
                Verdict::Allowed => {
                    allowed += 1;
                    passed.push(
                        Evidence::new("setuid/setgid file in the rule's allow-list")
                            .path(display_bytes(&hit.path))
                            .found(format!("mode {:04o}", hit.mode)),
                    );
                }
                Verdict::Fails(e) => found.push(e),
            }
        }
        let damage = vouchers.as_ref().and_then(|v| {
            let problems = v.problems();
            problems.first().map(|first| {
                Evidence::new(format!(
                    "the package database is damaged in {} place{} (the rest was used); the first: {first}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ))
            })
        });
        let dropped = findings.totals[i] - kept.len() as u64;
        let errors: Vec<&EntryError> = findings
            .summary
            .errors
            .iter()
            .filter(|e| !self.excluded(&e.path))
            .collect();
        let unlisted_errors = findings.summary.error_count - findings.summary.errors.len() as u64;
        let error_count = errors.len() as u64 + unlisted_errors;
        let vanished = self.vanished(&findings.summary);
        let scope = format!(
            "{} entries on {}",
            findings.summary.entries, findings.bounds
        );
        if !found.is_empty() || dropped > 0 {
            let total = found.len() as u64 + dropped;
            let mut evidence = vec![Evidence::new(format!(
                "{total} {} in {scope}{}",
                if total == 1 {
                    self.scan.noun()
                } else {
                    self.scan.plural()
                },
                if total as usize > LISTED {
                    format!("; the first {LISTED} in path order follow")
                } else {
                    String::new()
                }
            ))
            .found(total.to_string())
            .expected("0")];
            evidence.extend(found.into_iter().take(LISTED));
            if error_count > 0 {
                evidence.push(Evidence::new(format!(
                    "{error_count} entries could not be read, so there may be more"
                )));
            }
            evidence.extend(damage);
            evidence.extend(vanished);
            return Outcome::Fail { evidence };
        }
        if error_count > 0 {
            let first: Vec<String> = errors
                .iter()
                .take(3)
                .map(|e| format!("{}: {}", display_bytes(&e.path), e.reason))
                .collect();
            return Outcome::error(format!(
                "{error_count} entries could not be read ({}), so the scan is incomplete",
                first.join("; ")
            ));
        }
        let mut evidence = vec![Evidence::new(format!(
            "no {} in {scope}",
            self.scan.plural()
        ))];
        if !passed.is_empty() {
            evidence[0] = Evidence::new(format!(
                "{} setuid/setgid files in {scope}: {shipped} shipped unchanged by installed packages, {allowed} in the allow-list{}",
                passed.len(),
                if passed.len() > LISTED {
                    format!("; the first {LISTED} in path order follow")
                } else {
                    String::new()
                }
            ));
            evidence.extend(passed.into_iter().take(LISTED));
        }
        evidence.extend(damage);
        evidence.extend(vanished);
        Outcome::Pass { evidence }
    }
}
