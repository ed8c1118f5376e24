//! `[[file_permissions]]`: a file's mode, owner and group. `max_mode` is the most permissive mode
//! allowed: any permission bit set on the file but not in `max_mode` (including setuid, setgid and
//! sticky) fails. Owners and groups are names from the audited system's own `/etc/passwd` and
//! `/etc/group`, or numeric ids. `path` may be a glob; every match is checked, or with `type` only
//! the matches of that type (`/etc/cron.*` judged as directories leaves `/etc/cron.allow` to the
//! rule about that file). With `ssh_keys`, `path` is a directory and the files judged are the
//! OpenSSH keys in it, found by content, and those sshd's `HostKey` lines name
//! ([`crate::host::sshkeys`]).

use std::os::unix::fs::MetadataExt;

use toml::Spanned;

use super::file_presence::FileType;
use super::{validate_path, IfMissing, OneOrMany};
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::accounts::Accounts;
use crate::host::sshd::SshdError;
use crate::host::sshkeys::{self, KeyKind};
use crate::rule::{Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[file_permissions]]`.
    pub struct FilePermissions {
        /// Absolute path inside the sysroot; glob patterns allowed.
        pub path: Spanned<String>,
        /// Most permissive octal mode allowed, e.g. `"0640"`.
        #[serde(default)]
        pub max_mode: Option<Spanned<String>>,
        /// Allowed owners (names or uids).
        #[serde(default)]
        pub owner: Option<OneOrMany>,
        /// Allowed groups (names or gids).
        #[serde(default)]
        pub group: Option<OneOrMany>,
        /// When nothing matches `path`: `not-applicable` (default), `fail` or `pass`.
        #[serde(default)]
        pub missing: IfMissing,
        /// Judge the symlink's target (default) rather than the link itself.
        #[serde(default = "default_true")]
        pub follow_symlinks: bool,
        /// Judge only the matches of this type (`file`, `dir`, `symlink`); the others are left to
        /// other rules. Types are those of what is judged (the target unless `follow_symlinks = false`).
        #[serde(default, rename = "type")]
        pub file_type: Option<Spanned<FileType>>,
        /// `private` or `public`: judge the OpenSSH keys of that kind under the directory `path`
        /// (by content, recursively) and the host keys sshd's configuration names.
        #[serde(default)]
        pub ssh_keys: Option<Spanned<SshKeys>>,
    }
}

/// Which OpenSSH keys a rule with `ssh_keys` judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshKeys {
    Private,
    Public,
}

fn default_true() -> bool {
    true
}

/// Parse an octal mode like `0640` or `640` (at most 0o7777).
pub fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

#[derive(Debug)]
pub struct FilePermissionsCheck {
    path: String,
    max_mode: Option<u32>,
    owner: Option<Vec<String>>,
    group: Option<Vec<String>>,
    missing: IfMissing,
    follow: bool,
    file_type: Option<FileType>,
    ssh_keys: Option<KeyKind>,
}

impl CompileCheck for FilePermissions {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        validate_path(diags, &self.path);
        let max_mode = self.max_mode.as_ref().and_then(|m| {
            let mode = parse_mode(m.get_ref());
            if mode.is_none() {
                diags.error(
                    m.span(),
                    format!("`max_mode` `{}` is not an octal mode between 0000 and 7777 (e.g. \"0640\")", m.get_ref()),
                );
            }
            mode
        });
        if self.max_mode.is_none() && self.owner.is_none() && self.group.is_none() {
            diags.error(
                self.id.span(),
                format!(
                    "rule `{}`: file_permissions needs at least one of max_mode, owner, group",
                    self.id.get_ref()
                ),
            );
        }
        for (what, list) in [("owner", &self.owner), ("group", &self.group)] {
            if list
                .as_ref()
                .is_some_and(|l| l.0.is_empty() || l.0.iter().any(|s| s.trim().is_empty()))
            {
                diags.error(
                    self.id.span(),
                    format!(
                        "rule `{}`: `{what}` must name at least one non-empty account",
                        self.id.get_ref()
                    ),
                );
            }
        }
        if let Some(t) = &self.file_type {
            if *t.get_ref() == FileType::Symlink && self.follow_symlinks {
                diags.error(
                    t.span(),
                    "`type = \"symlink\"` needs `follow_symlinks = false`: followed links are judged by their targets",
                );
            }
        }
        if let Some(k) = &self.ssh_keys {
            let p = self.path.get_ref();
            if p.contains(['*', '?', '[']) {
                diags.error(
                    k.span(),
                    format!("`ssh_keys` searches the directory `path`; `{p}` is a glob"),
                );
            }
            if self.file_type.is_some() {
                diags.error(
                    k.span(),
                    "`ssh_keys` judges regular files: leave `type` out",
                );
            }
        }
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(FilePermissionsCheck {
            path: self.path.get_ref().clone(),
            max_mode,
            owner: self.owner.clone().map(|o| o.0),
            group: self.group.clone().map(|g| g.0),
            missing: self.missing,
            follow: self.follow_symlinks,
            file_type: self.file_type.as_ref().map(|t| *t.get_ref()),
            ssh_keys: self.ssh_keys.as_ref().map(|k| match k.get_ref() {
                SshKeys::Private => KeyKind::Private,
                SshKeys::Public => KeyKind::Public,
            }),
        }))
    }
}

impl FilePermissionsCheck {
    /// `ssh_keys`: each key file found, judged, its evidence saying why it is a key.
    fn evaluate_keys(&self, cx: &Context<'_>, kind: KeyKind) -> Outcome {
        let effective = super::sshd::effective(cx);
        let host_keys = match &effective.0 {
            Ok(config) => config.host_keys.as_slice(),
            Err(SshdError::Missing(_)) => &[],
            Err(e) => return Outcome::error(format!("reading sshd's HostKey lines: {e}")),
        };
        let keys = match sshkeys::find(cx.sysroot, &self.path, kind, host_keys) {
            Ok(k) => k,
            Err(e) => return Outcome::error(format!("cannot list the SSH keys: {e}")),
        };
        if keys.is_empty() {
            let what = match kind {
                KeyKind::Private => "private",
                KeyKind::Public => "public",
            };
            return self.missing.outcome(format!(
                "no OpenSSH {what} key under {} and no HostKey naming one",
                self.path
            ));
        }
        let accounts = cx.cache.get(|| Accounts::read(cx.sysroot));
        let outcomes = keys
            .iter()
            .map(|key| {
                let md = if self.follow {
                    cx.sysroot.metadata(&key.path)
                } else {
                    cx.sysroot.symlink_metadata(&key.path)
                };
                let outcome = match md {
                    Ok(md) => self.check_one(&accounts, &key.path, &md),
                    Err(e) => return Outcome::error(e),
                };
                let why = |mut e: Evidence| {
                    e.message = format!("{} ({})", e.message, key.why);
                    e
                };
                match outcome {
                    Outcome::Pass { evidence } => Outcome::Pass {
                        evidence: evidence.into_iter().map(why).collect(),
                    },
                    Outcome::Fail { evidence } => Outcome::Fail {
                        evidence: evidence.into_iter().map(why).collect(),
                    },
                    other => other,
                }
            })
            .collect();
        Outcome::combine(outcomes, "nothing to check")
    }
}

impl Check for FilePermissionsCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        if let Some(kind) = self.ssh_keys {
            return self.evaluate_keys(cx, kind);
        }
        let paths = match cx.sysroot.glob(&self.path) {
            Ok(p) => p,
            Err(e) => return Outcome::error(e),
        };
        if paths.is_empty() {
            return self
                .missing
                .outcome(format!("{} does not exist", self.path));
        }
        let accounts = cx.cache.get(|| Accounts::read(cx.sysroot));
        let mut outcomes = Vec::new();
        for p in &paths {
            let path = p.display().to_string();
            let md = if self.follow {
                cx.sysroot.metadata(p)
            } else {
                cx.sysroot.symlink_metadata(p)
            };
            match md {
                Ok(md) if self.judges(&md) => outcomes.push(self.check_one(&accounts, &path, &md)),
                Ok(_) => {}
                Err(e) if e.is_not_found() => outcomes.push(
                    self.missing
                        .outcome(format!("{path} does not exist (dangling symlink?)")),
                ),
                Err(e) => outcomes.push(Outcome::error(e)),
            }
        }
        if outcomes.is_empty() {
            let wanted = match self.file_type {
                Some(FileType::File) => "a regular file",
                Some(FileType::Dir) => "a directory",
                Some(FileType::Symlink) => "a symlink",
                None => "of the type judged",
            };
            return self.missing.outcome(format!(
                "nothing matching {} is {wanted} ({} other match{})",
                self.path,
                paths.len(),
                if paths.len() == 1 { "" } else { "es" }
            ));
        }
        Outcome::combine(outcomes, "nothing to check")
    }
}

impl FilePermissionsCheck {
    /// Whether a match of `path` is this rule's to judge (`type`, when given).
    fn judges(&self, md: &std::fs::Metadata) -> bool {
        let ft = md.file_type();
        match self.file_type {
            None => true,
            Some(FileType::File) => ft.is_file(),
            Some(FileType::Dir) => ft.is_dir(),
            Some(FileType::Symlink) => ft.is_symlink(),
        }
    }

    fn check_one(&self, accounts: &Accounts, path: &str, md: &std::fs::Metadata) -> Outcome {
        let mode = md.mode() & 0o7777;
        let mut failures = Vec::new();
        if let Some(max) = self.max_mode {
            let extra = mode & !max;
            if extra != 0 {
                failures.push(
                    Evidence::new(format!(
                        "mode has bits {extra:04o} beyond the allowed {max:04o}"
                    ))
                    .path(path)
                    .found(format!("{mode:04o}"))
                    .expected(format!("{max:04o} or stricter")),
                );
            }
        }
        let ids = [
            ("owner", &self.owner, md.uid(), accounts.user(md.uid())),
            ("group", &self.group, md.gid(), accounts.group(md.gid())),
        ];
        for (what, allowed, id, name) in ids {
            let Some(allowed) = allowed else { continue };
            let id_str = id.to_string();
            let ok = allowed
                .iter()
                .any(|a| *a == id_str || Some(a.as_str()) == name);
            if !ok {
                let found = match name {
                    Some(n) => format!("{n} ({id})"),
                    None => format!(
                        "{id} (no such {what} in the image's {})",
                        if what == "owner" {
                            "/etc/passwd"
                        } else {
                            "/etc/group"
                        }
                    ),
                };
                failures.push(
                    Evidence::new(format!("{what} is not allowed"))
                        .path(path)
                        .found(found)
                        .expected(allowed.join(" or ")),
                );
            }
        }
        if failures.is_empty() {
            let owner = accounts
                .user(md.uid())
                .map_or_else(|| md.uid().to_string(), str::to_string);
            let group = accounts
                .group(md.gid())
                .map_or_else(|| md.gid().to_string(), str::to_string);
            Outcome::pass(
                Evidence::new(format!("mode {mode:04o}, owner {owner}, group {group}")).path(path),
            )
        } else {
            Outcome::Fail { evidence: failures }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_strictly() {
        assert_eq!(parse_mode("0640"), Some(0o640));
        assert_eq!(parse_mode("640"), Some(0o640));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("0o640"), None);
        assert_eq!(parse_mode("0648"), None);
        assert_eq!(parse_mode("17777"), None);
        assert_eq!(parse_mode(""), None);
    }

    fn compile(text: &str) -> Option<Box<dyn Check>> {
        let src = crate::diag::SourceFile::new("t.toml", text);
        let mut diags = Diagnostics::new(&src);
        let params: FilePermissions = toml::from_str(text).unwrap();
        params.compile(&mut diags)
    }

    fn rule(keys: &str) -> String {
        format!("id = \"r\"\ntitle = \"t\"\nseverity = \"medium\"\nrationale = \"r\"\nremediation = \"r\"\n{keys}")
    }

    fn evaluate(root: &std::path::Path, check: &dyn Check) -> Outcome {
        let sysroot = crate::sysroot::Sysroot::open(root).unwrap();
        let facts = crate::host::HostFacts::default();
        let cx = Context::new(&sysroot, crate::rule::Stage::Run, &facts, true);
        check.evaluate(&cx)
    }

    /// `/etc/cron.*` also matches `/etc/cron.allow`, a file with a rule (0640) of its own: a rule
    /// about the cron directories judges only the directories.
    #[test]
    fn a_type_restricts_which_matches_a_glob_judges() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        for d in ["cron.d", "cron.daily"] {
            std::fs::create_dir_all(etc.join(d)).unwrap();
            std::fs::set_permissions(etc.join(d), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(etc.join("cron.allow"), "root\n").unwrap();
        std::fs::set_permissions(
            etc.join("cron.allow"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let dirs = compile(&rule(
            "path = \"/etc/cron.*\"\nmax_mode = \"0700\"\ntype = \"dir\"",
        ))
        .unwrap();
        let Outcome::Pass { evidence } = evaluate(dir.path(), dirs.as_ref()) else {
            panic!("the directories are 0700")
        };
        let judged: Vec<_> = evidence.iter().filter_map(|e| e.path.as_deref()).collect();
        assert_eq!(judged, ["/etc/cron.d", "/etc/cron.daily"]);
        // without `type` the file is judged by the directory rule and fails it
        let any = compile(&rule("path = \"/etc/cron.*\"\nmax_mode = \"0700\"")).unwrap();
        let Outcome::Fail { evidence } = evaluate(dir.path(), any.as_ref()) else {
            panic!("cron.allow is 0640")
        };
        assert_eq!(evidence[0].path.as_deref(), Some("/etc/cron.allow"));
        // a directory that is too open still fails
        std::fs::set_permissions(etc.join("cron.d"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let Outcome::Fail { evidence } = evaluate(dir.path(), dirs.as_ref()) else {
            panic!("cron.d is 0755")
        };
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0].path.as_deref(), Some("/etc/cron.d"));
        // matches of none of the type: `missing` decides
        let files = compile(&rule(
            "path = \"/etc/cron.d*\"\nmax_mode = \"0700\"\ntype = \"file\"\nmissing = \"fail\"",
        ))
        .unwrap();
        let Outcome::Fail { evidence } = evaluate(dir.path(), files.as_ref()) else {
            panic!("no regular file matches")
        };
        assert_eq!(
            evidence[0].message,
            "nothing matching /etc/cron.d* is a regular file (2 other matches)"
        );
    }

    #[test]
    fn a_symlink_type_needs_links_judged_themselves() {
        assert!(compile(&rule(
            "path = \"/etc/x\"\nowner = \"root\"\ntype = \"symlink\""
        ))
        .is_none());
        assert!(compile(&rule(
            "path = \"/etc/x\"\nowner = \"root\"\ntype = \"symlink\"\nfollow_symlinks = false"
        ))
        .is_some());
    }
}
