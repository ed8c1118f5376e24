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
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::sysctl::{live_value, normalize_key, Persisted};
use crate::rule::{Evidence, Outcome, Settings};

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

impl SysctlCheck {
    fn live(&self, cx: &Context<'_>) -> Result<Outcome, Outcome> {
        let path = format!("/proc/sys/{}", self.path_key);
        let value = match live_value(cx.sysroot, &self.path_key) {
            Ok(Some(value)) => value,
            Ok(None) => {
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
        let (default, explicit) =
            super::expect::default_for(cx.settings, self.default.as_deref(), || {
                format!(
                    "{} is not set in sysctl.d; the kernel default applies at boot",
                    self.key
                )
            });
        let winner = persisted.lookup(&self.path_key);
        let verdict = self.expect.judge(found, default, |want| {
            let why = explicit.unwrap_or_else(|| "so a reboot does not apply it".to_string());
            Outcome::fail(
                Evidence::new(format!(
                    "{} is not set in any sysctl.d file; {why}",
                    self.key
                ))
                .expected(format!("{want} in /etc/sysctl.d/*.conf")),
            )
        });
        if cx.settings != Settings::Explicit {
            return verdict;
        }
        // The CIS audit fails a wrong value in any file the administrator keeps (/etc, /run), even
        // one a later file overrides: a conflicting line is one rename away from winning. The
        // distribution's own defaults under /usr/lib are there to be overridden.
        let conflicts: Vec<Evidence> = persisted
            .assignments
            .iter()
            .filter(|a| a.key == self.path_key && !winner.is_some_and(|w| std::ptr::eq(w, *a)))
            .filter(|a| a.path.starts_with("/etc/") || a.path.starts_with("/run/"))
            .filter_map(|a| {
                let want = self.expect.check(&a.value).err()?;
                Some(
                    Evidence::new(format!(
                        "{} is also set here, to a value the CIS profile does not accept (the benchmark's audit fails it in any file, even overridden)",
                        self.key
                    ))
                    .path(a.path.clone())
                    .line(a.line)
                    .found(a.value.clone())
                    .expected(want),
                )
            })
            .collect();
        if conflicts.is_empty() {
            return verdict;
        }
        Outcome::combine(
            vec![
                verdict,
                Outcome::Fail {
                    evidence: conflicts,
                },
            ],
            "nothing to check",
        )
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
