//! `[[config]]`: the effective value of one key in key/value configuration files (login.defs,
//! sysctl.conf, pwquality.conf, journald.conf, a simple sshd_config ...). Files are read in the order
//! `paths` lists them (a glob expands in lexical order, like `*.conf` drop-in directories), and
//! `precedence` says whether the first or the last assignment wins. Two line formats: `space`
//! (`KEY VALUE`, `KEY=VALUE` also accepted) and `equals` (`key = value`, `;` comments too), with an
//! optional `[section]` filter for INI-style files. A key never assigned takes `default` when the
//! program has a built-in default, else `missing` decides.

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::expect::{compile_regex, Expect, ExpectSpec};
use super::{validate_paths, IfMissing};
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::keyvalue::{parse_assignments, Assignment, LineFormat};
use crate::rule::{Evidence, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precedence {
    /// The first assignment wins (sshd).
    First,
    /// The last assignment wins (login.defs, sysctl, systemd).
    #[default]
    Last,
}

rule_params! {
    /// TOML parameters of `[[config]]`.
    pub struct Config {
        /// Files to read, in order; globs allowed (expanded in lexical order).
        pub paths: Spanned<Vec<Spanned<String>>>,
        #[serde(default)]
        pub format: LineFormat,
        /// Only consider keys inside this `[section]` (format `equals`).
        #[serde(default)]
        pub section: Option<String>,
        pub key: Spanned<String>,
        /// Match the key, and compare values, without regard to ASCII case.
        #[serde(default)]
        pub ignore_case: bool,
        #[serde(default)]
        pub precedence: Precedence,
        /// The program's built-in value when the key is never assigned.
        #[serde(default)]
        pub default: Option<String>,
        /// When the key is never assigned and there is no default: `fail` (default), `pass`, `not-applicable`.
        #[serde(default = "missing_key_default")]
        pub missing: IfMissing,
        /// When none of the files exist: `not-applicable` (default), `fail`, `pass`.
        #[serde(default)]
        pub missing_file: IfMissing,
        /// Ignore the rest of a file from the first line matching this regex (sshd's `^Match\s`:
        /// conditional blocks do not set the global value).
        #[serde(default)]
        pub stop_at: Option<Spanned<String>>,
        pub expect: Spanned<ExpectSpec>,
    }
}

fn missing_key_default() -> IfMissing {
    IfMissing::Fail
}

#[derive(Debug)]
pub struct ConfigCheck {
    paths: Vec<String>,
    format: LineFormat,
    section: Option<String>,
    key: String,
    ignore_case: bool,
    precedence: Precedence,
    default: Option<String>,
    missing: IfMissing,
    missing_file: IfMissing,
    stop_at: Option<Regex>,
    expect: Expect,
}

impl CompileCheck for Config {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let paths = validate_paths(diags, &self.paths);
        let key = self.key.get_ref();
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c == '=') {
            diags.error(
                self.key.span(),
                format!("`key` `{key}` must be non-empty, without whitespace or `=`"),
            );
        }
        if self.section.is_some() && self.format != LineFormat::Equals {
            diags.error(self.key.span(), "`section` needs `format = \"equals\"`");
        }
        let stop_at = self.stop_at.as_ref().and_then(|r| compile_regex(r, diags));
        let expect = Expect::compile(&self.expect, self.ignore_case, diags);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(ConfigCheck {
            paths,
            format: self.format,
            section: self.section.clone(),
            key: key.clone(),
            ignore_case: self.ignore_case,
            precedence: self.precedence,
            default: self.default.clone(),
            missing: self.missing,
            missing_file: self.missing_file,
            stop_at,
            expect: expect?,
        }))
    }
}

impl Check for ConfigCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let files = match super::expand(cx.sysroot, &self.paths) {
            Ok(files) => files,
            Err(e) => return Outcome::error(e),
        };
        let mut winner: Option<(String, Assignment)> = None;
        let mut read_any = false;
        for file in &files {
            let path = file.display().to_string();
            let bytes = match cx.sysroot.read(file) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Outcome::error(e),
            };
            read_any = true;
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::error(format!(
                        "{path}: not a text file (invalid UTF-8 at byte {})",
                        e.valid_up_to()
                    ))
                }
            };
            for a in parse_assignments(
                text,
                self.format,
                self.section.as_deref(),
                self.stop_at.as_ref(),
            ) {
                let key_matches = if self.ignore_case {
                    a.key.eq_ignore_ascii_case(&self.key)
                } else {
                    a.key == self.key
                };
                if !key_matches {
                    continue;
                }
                if self.precedence == Precedence::First && winner.is_some() {
                    break;
                }
                winner = Some((path.clone(), a));
            }
        }
        if !read_any {
            return self
                .missing_file
                .outcome(format!("none of {} exists", self.paths.join(", ")));
        }
        let found = winner.map(|(path, a)| {
            (
                Evidence::new(format!("{} is set", self.key))
                    .path(path)
                    .line(a.line),
                a.value,
            )
        });
        let (default, explicit) =
            super::expect::default_for(cx.settings, self.default.as_deref(), || {
                format!("{} is not set; the built-in default applies", self.key)
            });
        self.expect.judge(found, default, |want| match explicit {
            Some(why) => Outcome::fail(
                Evidence::new(format!(
                    "{} is not set in {}; {why}",
                    self.key,
                    self.paths.join(", ")
                ))
                .expected(want),
            ),
            None => self.missing.outcome(format!(
                "{} is not set in {} (expected {want})",
                self.key,
                self.paths.join(", ")
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_format_accepts_equals_and_comments() {
        let a = parse_assignments(
            "# c\nPASS_MAX_DAYS\t99999\n  UMASK 022 \nPermitRootLogin=no\nLone\n",
            LineFormat::Space,
            None,
            None,
        );
        let kv: Vec<(&str, &str, usize)> = a
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str(), a.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("PASS_MAX_DAYS", "99999", 2),
                ("UMASK", "022", 3),
                ("PermitRootLogin", "no", 4),
                ("Lone", "", 5)
            ]
        );
    }

    #[test]
    fn stop_at_ignores_conditional_blocks() {
        let re = Regex::new(r"(?i)^match\s").unwrap();
        let a = parse_assignments(
            "PermitRootLogin no\nMatch User admin\n  PermitRootLogin yes\n",
            LineFormat::Space,
            None,
            Some(&re),
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].value, "no");
    }

    #[test]
    fn equals_format_with_sections() {
        let text = "; c\n[Journal]\nStorage = persistent\n[Other]\nStorage=volatile\nnoequals\n";
        let a = parse_assignments(text, LineFormat::Equals, Some("Journal"), None);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].value.as_str(), a[0].line), ("persistent", 3));
        let all = parse_assignments(text, LineFormat::Equals, None, None);
        assert_eq!(all.len(), 2);
    }
}
