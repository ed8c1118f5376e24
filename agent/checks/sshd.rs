//! `[[sshd]]`: a keyword of the SSH daemon's effective global configuration (as
//! [`crate::host::sshd`] computes it from `sshd_config` and its includes) must satisfy `expect`;
//! when the keyword is never set globally, sshd's compiled-in `default` is judged, else `missing`.
//! A forwarding keyword that `DisableForwarding yes` overrides is judged as `no`, with the
//! DisableForwarding line as evidence, since that is what sshd does.

use toml::Spanned;

use super::expect::{Expect, ExpectSpec};
use super::IfMissing;
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::sshd::{SshdConfig, SshdError};
use crate::rule::{Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[sshd]]`.
    pub struct Sshd {
        /// The keyword, e.g. `PermitRootLogin` (case-insensitive).
        pub key: Spanned<String>,
        /// sshd's compiled-in value when the keyword is never set globally.
        #[serde(default)]
        pub default: Option<String>,
        /// When the keyword is unset and there is no default: `fail` (default), `pass`, `not-applicable`.
        #[serde(default = "missing_key_default")]
        pub missing: IfMissing,
        /// Compare values without regard to ASCII case (yes/no keywords are case-insensitive in sshd).
        #[serde(default)]
        pub ignore_case: bool,
        pub expect: Spanned<ExpectSpec>,
    }
}

fn missing_key_default() -> IfMissing {
    IfMissing::Fail
}

#[derive(Debug)]
pub struct SshdCheck {
    key: String,
    default: Option<String>,
    missing: IfMissing,
    expect: Expect,
}

impl CompileCheck for Sshd {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let key = self.key.get_ref();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            diags.error(
                self.key.span(),
                format!("`key` `{key}` is not an sshd_config keyword"),
            );
        }
        if key.eq_ignore_ascii_case("include") || key.eq_ignore_ascii_case("match") {
            diags.error(
                self.key.span(),
                format!("`{key}` is structure, not a setting"),
            );
        }
        let expect = Expect::compile(&self.expect, self.ignore_case, diags);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(SshdCheck {
            key: key.to_ascii_lowercase(),
            default: self.default.clone(),
            missing: self.missing,
            expect: expect?,
        }))
    }
}

/// The per-run result of reading sshd's configuration, shared by every `[[sshd]]` rule and the
/// `ssh_keys` permission rules (its `HostKey` lines).
#[derive(Debug)]
pub(crate) struct Effective(pub(crate) Result<SshdConfig, SshdError>);

/// sshd's configuration, read once per run.
pub(crate) fn effective(cx: &Context<'_>) -> std::sync::Arc<Effective> {
    cx.cache.get(|| Effective(SshdConfig::read(cx.sysroot)))
}

impl Check for SshdCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let effective = effective(cx);
        let cfg = match &effective.0 {
            Ok(cfg) => cfg,
            Err(e @ SshdError::Missing(_)) => return Outcome::not_applicable(e.to_string()),
            Err(e) => return Outcome::error(e),
        };
        if let Some(by) = cfg.forwarding_disabled(&self.key) {
            let own = cfg
                .settings
                .get(&self.key)
                .map(|s| format!(" (set to {} at {}:{})", s.value, s.path, s.line))
                .unwrap_or_default();
            let why = format!(
                "DisableForwarding yes overrides {}{own}: sshd disables this forwarding",
                self.key
            );
            let evidence = Evidence::new(why)
                .path(by.path.clone())
                .line(by.line)
                .found("no");
            return match self.expect.check("no") {
                Ok(()) => Outcome::pass(evidence),
                Err(want) => Outcome::fail(evidence.expected(want)),
            };
        }
        let found = cfg.settings.get(&self.key).map(|s| {
            let why = format!("{} is set (first value wins)", self.key);
            (
                Evidence::new(why).path(s.path.clone()).line(s.line),
                s.value.clone(),
            )
        });
        let default = self.default.clone().map(|d| {
            let why = format!("{} is not set globally; sshd's default applies", self.key);
            (Evidence::new(why), d)
        });
        self.expect.judge(found, default, |want| {
            self.missing.outcome(format!(
                "{} is not set globally in {} (expected {want})",
                self.key,
                cfg.files.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Status;

    fn check(key: &str, expect: &str) -> Box<dyn Check> {
        let text = format!(
            "id = \"r\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"r\"\nkey = \"{key}\"\nignore_case = true\ndefault = \"yes\"\nexpect = {expect}\n"
        );
        let src = crate::diag::SourceFile::new("t.toml", text.as_str());
        let mut diags = Diagnostics::new(&src);
        let params: Sshd = toml::from_str(&text).unwrap();
        params.compile(&mut diags).unwrap()
    }

    fn evaluate(config: &str, check: &dyn Check) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/ssh")).unwrap();
        std::fs::write(dir.path().join("etc/ssh/sshd_config"), config).unwrap();
        let sysroot = crate::sysroot::Sysroot::open(dir.path()).unwrap();
        let facts = crate::host::HostFacts::default();
        let cx = Context::new(&sysroot, crate::rule::Stage::Run, &facts, true);
        check.evaluate(&cx)
    }

    /// sshd_config(5): DisableForwarding disables X11, agent, TCP and StreamLocal forwarding and
    /// overrides their own options.
    #[test]
    fn disable_forwarding_yes_satisfies_the_forwarding_rules() {
        let x11 = check("X11Forwarding", "{ equals = \"no\" }");
        let outcome = evaluate("DisableForwarding yes\nX11Forwarding yes\n", x11.as_ref());
        let Outcome::Pass { evidence } = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            evidence[0].to_string(),
            "/etc/ssh/sshd_config:1: DisableForwarding yes overrides x11forwarding (set to yes at \
             /etc/ssh/sshd_config:2): sshd disables this forwarding (found no)"
        );
        // unset forwarding keywords whose default is yes are overridden too, in any case
        let tcp = check("AllowTcpForwarding", "{ equals = \"no\" }");
        let outcome = evaluate("disableforwarding=Yes\n", tcp.as_ref());
        assert_eq!(outcome.status(), Status::Pass, "{outcome:?}");
        // a rule that wants the forwarding on learns it is off
        let wants = check("AllowAgentForwarding", "{ equals = \"yes\" }");
        let outcome = evaluate("DisableForwarding yes\n", wants.as_ref());
        assert_eq!(outcome.status(), Status::Fail, "{outcome:?}");
    }

    #[test]
    fn disable_forwarding_no_leaves_the_keyword_to_decide() {
        let x11 = check("X11Forwarding", "{ equals = \"no\" }");
        let outcome = evaluate("DisableForwarding no\nX11Forwarding yes\n", x11.as_ref());
        let Outcome::Fail { evidence } = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(evidence[0].path.as_deref(), Some("/etc/ssh/sshd_config"));
        assert_eq!(evidence[0].line, Some(2));
        // only the first value counts, and a Match block sets no global value
        let outcome = evaluate(
            "DisableForwarding no\nDisableForwarding yes\nMatch User x\n  DisableForwarding yes\n",
            x11.as_ref(),
        );
        assert_eq!(outcome.status(), Status::Fail, "default yes: {outcome:?}");
        // keywords DisableForwarding does not cover are judged on their own
        let gw = check("GatewayPorts", "{ equals = \"no\" }");
        let outcome = evaluate("DisableForwarding yes\nGatewayPorts yes\n", gw.as_ref());
        assert_eq!(outcome.status(), Status::Fail, "{outcome:?}");
    }
}
