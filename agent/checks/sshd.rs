//! `[[sshd]]`: a keyword of the SSH daemon's effective global configuration (as
//! [`crate::host::sshd`] computes it from `sshd_config` and its includes) must satisfy `expect`;
//! when the keyword is never set globally, sshd's compiled-in `default` is judged, else `missing`.

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

/// The per-run result of reading sshd's configuration, shared by every `[[sshd]]` rule.
#[derive(Debug)]
struct Effective(Result<SshdConfig, SshdError>);

impl Check for SshdCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let effective = cx.cache.get(|| Effective(SshdConfig::read(cx.sysroot)));
        let cfg = match &effective.0 {
            Ok(cfg) => cfg,
            Err(e @ SshdError::Missing(_)) => return Outcome::not_applicable(e.to_string()),
            Err(e) => return Outcome::error(e),
        };
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
