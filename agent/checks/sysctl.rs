//! `[[sysctl]]`: a kernel parameter, judged twice. **Live**: the running kernel's value under the
//! sysroot's `/proc/sys` (a host, or a chroot with `/proc` mounted). **Persisted**: the value the
//! system will apply at its next boot, computed as `systemd-sysctl` does — `*.conf` files from
//! `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`, `/usr/lib/sysctl.d` and
//! `/lib/sysctl.d`, a file name in an earlier directory hiding the same name in a later one, all read
//! in file-name order, the last assignment of a key winning, and an explicit key beating any glob
//! (`net.ipv4.conf.*.rp_filter`) that matches it; when nothing persists the key, the kernel's
//! compiled-in `default` applies. A live host must pass both; an offline image (no `/proc/sys`) is
//! judged by what it will apply at boot, so it gets a real verdict rather than "not applicable".

use toml::Spanned;

use super::expect::{normalize, Expect, ExpectSpec};
use crate::baseline::diag::Diagnostics;
use crate::baseline::file::rule_params;
use crate::baseline::layer::CompileCheck;
use crate::context::Context;
use crate::rule::{Check, Evidence, Outcome};
use crate::sysroot::Sysroot;

rule_params! {
    /// TOML parameters of `[[sysctl]]`.
    pub struct Sysctl {
        /// The parameter, dotted (`net.ipv4.ip_forward`) or slashed (`net/ipv4/ip_forward`).
        pub key: Spanned<String>,
        /// The kernel's value when no sysctl.d file sets it (omit when it depends on the build).
        #[serde(default)]
        pub default: Option<String>,
        /// Also judge the persisted configuration (default true). `false`: live value only.
        #[serde(default = "default_true")]
        pub persisted: bool,
        pub expect: Spanned<ExpectSpec>,
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug)]
pub struct SysctlCheck {
    key: String,
    /// Normalised slash form, e.g. `net/ipv4/ip_forward`.
    path_key: String,
    default: Option<String>,
    persisted: bool,
    expect: Expect,
}

/// systemd's normalisation to the `/proc/sys` path form: if the first separator is `/`, the name is
/// already a path (dots are part of names, e.g. VLAN `eth0.100`); otherwise dots are separators and
/// any slash stands for a dot.
pub fn normalize_key(key: &str) -> String {
    let key = key.trim().trim_start_matches('-').trim_start_matches('/');
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key.to_string(),
        _ => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
    }
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`.
pub fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", normalize_key(key))
}

impl CompileCheck for Sysctl {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let key = self.key.get_ref();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            && !key.split(['.', '/']).any(|c| c.is_empty() || c == "..");
        if !valid {
            diags.error(
                self.key.span(),
                format!("`key` `{key}` is not a sysctl name like net.ipv4.ip_forward"),
            );
        }
        let expect = Expect::compile(&self.expect, false, diags);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(SysctlCheck {
            key: key.clone(),
            path_key: normalize_key(key),
            default: self.default.clone(),
            persisted: self.persisted,
            expect: expect?,
        }))
    }
}

/// One `key = value` line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Normalised slash form; may be a glob.
    pub key: String,
    pub value: String,
    pub path: String,
    pub line: usize,
}

/// The persisted sysctl configuration of the sysroot, in application order.
#[derive(Debug, Default)]
pub struct Persisted {
    pub assignments: Vec<Assignment>,
    /// Files read, in order.
    pub files: Vec<String>,
    pub errors: Vec<String>,
}

const SYSCTL_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

impl Persisted {
    pub fn read(sysroot: &Sysroot) -> Persisted {
        let mut p = Persisted::default();
        let (files, errors) = super::dropins::drop_in_files(sysroot, SYSCTL_DIRS, ".conf");
        p.errors = errors;
        for path in files {
            match sysroot.read(&path) {
                Ok(bytes) => {
                    p.parse(&path, &String::from_utf8_lossy(&bytes));
                    p.files.push(path);
                }
                Err(e) if e.is_not_found() => {} // a dangling link is skipped, as systemd does
                Err(e) => p.errors.push(e.to_string()),
            }
        }
        p
    }

    pub fn parse(&mut self, path: &str, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue; // systemd logs and ignores such lines
            };
            self.assignments.push(Assignment {
                key: normalize_key(key),
                value: normalize(value),
                path: path.to_string(),
                line: i + 1,
            });
        }
    }

    /// The assignment that applies to `path_key`: the last explicit one, else the last glob match.
    pub fn lookup(&self, path_key: &str) -> Option<&Assignment> {
        let is_glob = |k: &str| k.contains(['*', '?', '[']);
        self.assignments
            .iter()
            .rev()
            .find(|a| !is_glob(&a.key) && a.key == path_key)
            .or_else(|| {
                self.assignments.iter().rev().find(|a| {
                    is_glob(&a.key)
                        && glob::Pattern::new(&a.key).is_ok_and(|p| {
                            p.matches_with(
                                path_key,
                                glob::MatchOptions {
                                    require_literal_separator: true,
                                    ..glob::MatchOptions::new()
                                },
                            )
                        })
                })
            })
    }
}

impl SysctlCheck {
    fn live(&self, cx: &Context<'_>) -> Result<Outcome, Outcome> {
        let path = format!("/proc/sys/{}", self.path_key);
        let value = match cx.sysroot.read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.is_not_found() => {
                return Err(Outcome::not_applicable(format!(
                    "the running kernel has no {} ({path} does not exist)",
                    self.key
                )))
            }
            Err(e) => return Err(Outcome::error(e)),
        };
        let evidence = Evidence::new(format!("{} (running kernel)", self.key))
            .path(path)
            .found(normalize(&value));
        Ok(match self.expect.check(&value) {
            Ok(()) => Outcome::pass(evidence),
            Err(want) => Outcome::fail(evidence.expected(want)),
        })
    }

    fn persisted(&self, cx: &Context<'_>) -> Outcome {
        let persisted = cx.cache.get(|| Persisted::read(cx.sysroot));
        if !persisted.errors.is_empty() {
            return Outcome::error(format!(
                "cannot read the sysctl configuration: {}",
                persisted.errors.join("; ")
            ));
        }
        let found = persisted.lookup(&self.path_key).map(|a| {
            let why = format!("{} (applied at boot)", self.key);
            (
                Evidence::new(why).path(a.path.clone()).line(a.line),
                a.value.clone(),
            )
        });
        let default = self.default.clone().map(|d| {
            let why = format!(
                "{} is not set in sysctl.d; the kernel default applies at boot",
                self.key
            );
            (Evidence::new(why), d)
        });
        self.expect.judge(found, default, |want| {
            Outcome::fail(
                Evidence::new(format!(
                    "{} is not set in any sysctl.d file, so a reboot does not apply it",
                    self.key
                ))
                .expected(format!("{want} in /etc/sysctl.d/*.conf")),
            )
        })
    }
}

impl Check for SysctlCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let mut parts = Vec::new();
        if cx.is_live() {
            match self.live(cx) {
                Ok(o) => parts.push(o),
                Err(stop) => return stop,
            }
        } else if !self.persisted {
            return Outcome::not_applicable(Context::OFFLINE_IMAGE);
        }
        if self.persisted {
            parts.push(self.persisted(cx));
        }
        Outcome::combine(parts, "nothing to check")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_like_systemd() {
        assert_eq!(normalize_key("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            normalize_key("net/ipv4/conf/eth0.100/rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            normalize_key("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            normalize_key(" -kernel.yama.ptrace_scope "),
            "kernel/yama/ptrace_scope"
        );
        assert_eq!(proc_path("fs.suid_dumpable"), "/proc/sys/fs/suid_dumpable");
    }

    #[test]
    fn last_explicit_assignment_wins_and_beats_globs() {
        let mut p = Persisted::default();
        p.parse(
            "/usr/lib/sysctl.d/50-default.conf",
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.ip_forward=1\n",
        );
        p.parse(
            "/etc/sysctl.d/60-site.conf",
            "; comment\nnet.ipv4.ip_forward = 0\nnet.ipv4.conf.all.rp_filter = 1\ngarbage line\n",
        );
        p.parse(
            "/etc/sysctl.d/70-late-glob.conf",
            "net.ipv4.conf.*.rp_filter = 0\n",
        );
        let fwd = p.lookup("net/ipv4/ip_forward").unwrap();
        assert_eq!(
            (fwd.value.as_str(), fwd.path.as_str(), fwd.line),
            ("0", "/etc/sysctl.d/60-site.conf", 2)
        );
        // the explicit `all` assignment wins over a later glob
        assert_eq!(p.lookup("net/ipv4/conf/all/rp_filter").unwrap().value, "1");
        // other interfaces take the last glob
        assert_eq!(p.lookup("net/ipv4/conf/eth0/rp_filter").unwrap().value, "0");
        assert!(p.lookup("kernel/randomize_va_space").is_none());
        // a glob never crosses a separator
        assert!(p.lookup("net/ipv4/conf/a/b/rp_filter").is_none());
    }
}
