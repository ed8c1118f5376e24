//! `expect = { ... }`: the value test shared by the key/value kinds (`config`, `sysctl`). A found
//! value is normalised (trimmed, inner whitespace runs collapsed to one space) and must satisfy every
//! test given: `equals`, `one_of`, `not_one_of`, `matches`, `not_matches`, `min`, `max`, and for
//! octal permission values `umask` (at least these bits masked) and `mode` (no bit beyond these):
//! a stricter value than required always passes.

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::Diagnostics;
use crate::rule::{Evidence, Outcome, Settings};

/// The TOML form, validated by [`Expect::compile`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub equals: Option<String>,
    pub one_of: Option<Vec<String>>,
    pub not_one_of: Option<Vec<String>>,
    pub matches: Option<Spanned<String>>,
    pub not_matches: Option<Spanned<String>>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// The value is an octal umask that masks at least these bits (`027`: `077`, `177` pass).
    pub umask: Option<Spanned<String>>,
    /// The value is an octal file mode with no permission bit beyond these (`0640`: `0600` passes).
    pub mode: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Expect {
    equals: Option<String>,
    one_of: Option<Vec<String>>,
    not_one_of: Option<Vec<String>>,
    matches: Option<Regex>,
    not_matches: Option<Regex>,
    min: Option<i64>,
    max: Option<i64>,
    umask: Option<u32>,
    mode: Option<u32>,
    ignore_case: bool,
}

/// An octal permission value of 1 to 4 digits (`027`, `0640`, `4755`), as umask, login.defs and
/// rsyslog write them.
pub fn parse_octal(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

pub use crate::host::keyvalue::normalize;

impl Expect {
    pub fn compile(
        spec: &Spanned<ExpectSpec>,
        ignore_case: bool,
        diags: &mut Diagnostics<'_>,
    ) -> Option<Expect> {
        let s = spec.get_ref();
        let mark = diags.mark();
        let matches = s.matches.as_ref().and_then(|r| compile_regex(r, diags));
        let not_matches = s.not_matches.as_ref().and_then(|r| compile_regex(r, diags));
        let empty = s.equals.is_none()
            && s.one_of.is_none()
            && s.not_one_of.is_none()
            && s.matches.is_none()
            && s.not_matches.is_none()
            && s.min.is_none()
            && s.max.is_none()
            && s.umask.is_none()
            && s.mode.is_none();
        if empty {
            diags.error(
                spec.span(),
                "`expect` needs at least one of equals, one_of, not_one_of, matches, not_matches, min, max, umask, mode",
            );
        }
        if s.equals.is_some() && s.one_of.is_some() {
            diags.error(spec.span(), "`expect` takes `equals` or `one_of`, not both");
        }
        if matches!(s.one_of.as_deref(), Some([])) {
            diags.error(spec.span(), "`expect.one_of` must not be empty");
        }
        if let (Some(min), Some(max)) = (s.min, s.max) {
            if min > max {
                diags.error(
                    spec.span(),
                    format!("`expect.min` ({min}) is greater than `expect.max` ({max})"),
                );
            }
        }
        let mut octal = |field: &Option<Spanned<String>>, name: &str| {
            let f = field.as_ref()?;
            let parsed = parse_octal(f.get_ref());
            if parsed.is_none() {
                diags.error(
                    f.span(),
                    format!(
                        "`expect.{name}` must be an octal permission value such as `027` or `0640`, not `{}`",
                        f.get_ref()
                    ),
                );
            }
            parsed
        };
        let umask = octal(&s.umask, "umask");
        let mode = octal(&s.mode, "mode");
        if diags.errors_since(mark) {
            return None;
        }
        Some(Expect {
            equals: s.equals.as_deref().map(normalize),
            one_of: s
                .one_of
                .as_ref()
                .map(|v| v.iter().map(|x| normalize(x)).collect()),
            not_one_of: s
                .not_one_of
                .as_ref()
                .map(|v| v.iter().map(|x| normalize(x)).collect()),
            matches,
            not_matches,
            min: s.min,
            max: s.max,
            umask,
            mode,
            ignore_case,
        })
    }

    fn eq(&self, a: &str, b: &str) -> bool {
        if self.ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    /// `Ok(())` when `value` satisfies every test; else the failed test, described.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let value = normalize(value);
        if let Some(want) = &self.equals {
            if !self.eq(&value, want) {
                return Err(format!("`{want}`"));
            }
        }
        if let Some(list) = &self.one_of {
            if !list.iter().any(|w| self.eq(&value, w)) {
                return Err(format!("one of {}", quote_list(list)));
            }
        }
        if let Some(list) = &self.not_one_of {
            if list.iter().any(|w| self.eq(&value, w)) {
                return Err(format!("none of {}", quote_list(list)));
            }
        }
        if let Some(re) = &self.matches {
            if !re.is_match(&value) {
                return Err(format!("a value matching /{re}/"));
            }
        }
        if let Some(re) = &self.not_matches {
            if re.is_match(&value) {
                return Err(format!("a value not matching /{re}/"));
            }
        }
        if self.min.is_some() || self.max.is_some() {
            let Ok(n) = value.parse::<i64>() else {
                return Err(format!("an integer {}", self.range()));
            };
            if self.min.is_some_and(|min| n < min) || self.max.is_some_and(|max| n > max) {
                return Err(self.range());
            }
        }
        if let Some(bits) = self.umask {
            match parse_octal(&value) {
                Some(u) if u & bits == bits => {}
                _ => return Err(format!("a umask of {bits:03o} or more restrictive")),
            }
        }
        if let Some(bits) = self.mode {
            match parse_octal(&value) {
                Some(m) if m & !bits & 0o7777 == 0 => {}
                _ => return Err(format!("a mode of {bits:04o} or stricter")),
            }
        }
        Ok(())
    }

    fn range(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!(">= {min}"),
            (None, Some(max)) => format!("<= {max}"),
            (None, None) => String::new(),
        }
    }

    /// Judge a setting: the value `found` (with where it was set), else the program's `default`
    /// (with why it applies), else whatever `missing` makes of the description of a passing value.
    pub fn judge(
        &self,
        found: Option<(Evidence, String)>,
        default: Option<(Evidence, String)>,
        missing: impl FnOnce(String) -> Outcome,
    ) -> Outcome {
        let Some((evidence, value)) = found.or(default) else {
            return missing(self.describe());
        };
        match self.check(&value) {
            Ok(()) => Outcome::pass(evidence.found(value)),
            Err(want) => Outcome::fail(evidence.found(value).expected(want)),
        }
    }

    /// What a passing value looks like, for evidence on passes and missing values.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(want) = &self.equals {
            parts.push(format!("`{want}`"));
        }
        if let Some(list) = &self.one_of {
            parts.push(format!("one of {}", quote_list(list)));
        }
        if let Some(list) = &self.not_one_of {
            parts.push(format!("none of {}", quote_list(list)));
        }
        if let Some(re) = &self.matches {
            parts.push(format!("matching /{re}/"));
        }
        if let Some(re) = &self.not_matches {
            parts.push(format!("not matching /{re}/"));
        }
        if self.min.is_some() || self.max.is_some() {
            parts.push(self.range());
        }
        if let Some(bits) = self.umask {
            parts.push(format!("a umask of {bits:03o} or more restrictive"));
        }
        if let Some(bits) = self.mode {
            parts.push(format!("a mode of {bits:04o} or stricter"));
        }
        parts.join(", ")
    }
}

/// How an unset key with a built-in `default` is judged under the run's [`Settings`]: under
/// [`Settings::Effective`] (EC2 profile) the default stands in for the value, with evidence saying
/// so (`why` and the profile); under [`Settings::Explicit`] (CIS profiles) it does not, and the
/// second value is the reason to give when the key is missing: the benchmark's audit reads what is
/// written. Without a default both are `None`.
pub fn default_for(
    settings: Settings,
    default: Option<&str>,
    why: impl FnOnce() -> String,
) -> (Option<(Evidence, String)>, Option<String>) {
    let Some(default) = default else {
        return (None, None);
    };
    match settings {
        Settings::Effective => {
            let evidence = Evidence::new(format!(
                "{} (ec2 profile: the effective state decides)",
                why()
            ));
            (Some((evidence, default.to_string())), None)
        }
        Settings::Explicit => (
            None,
            Some(format!(
                "the CIS profile follows the benchmark's audit, which requires the setting written down (the built-in default is `{default}`)"
            )),
        ),
    }
}

/// Compile a regex from a baseline, reporting a failure at its position.
pub fn compile_regex(r: &Spanned<String>, diags: &mut Diagnostics<'_>) -> Option<Regex> {
    match Regex::new(r.get_ref()) {
        Ok(re) => Some(re),
        Err(e) => {
            let text = e.to_string();
            let last = text.lines().last().unwrap_or_default().trim();
            let msg = last
                .strip_prefix("error:")
                .unwrap_or(last)
                .trim()
                .to_string();
            diags.error(
                r.span(),
                format!("regex `{}` does not compile: {msg}", r.get_ref()),
            );
            None
        }
    }
}

fn quote_list(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("`{s}`")).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;

    fn compile(toml_text: &str, ignore_case: bool) -> Result<Expect, Vec<String>> {
        #[derive(Deserialize)]
        struct W {
            expect: Spanned<ExpectSpec>,
        }
        let src = SourceFile::new("t.toml", toml_text);
        let w: W = toml::from_str(toml_text).map_err(|e| vec![e.to_string()])?;
        let mut d = Diagnostics::new(&src);
        Expect::compile(&w.expect, ignore_case, &mut d)
            .ok_or_else(|| d.list.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn equals_and_case() {
        let e = compile("expect = { equals = \"no\" }", true).unwrap();
        assert!(e.check("No").is_ok());
        assert!(e.check("  no ").is_ok());
        assert_eq!(e.check("yes"), Err("`no`".into()));
        let e = compile("expect = { equals = \"no\" }", false).unwrap();
        assert!(e.check("No").is_err());
    }

    #[test]
    fn ranges_and_lists_and_regex() {
        let e = compile("expect = { min = 1, max = 4 }", false).unwrap();
        assert!(e.check("4").is_ok());
        assert_eq!(e.check("5"), Err("between 1 and 4".into()));
        assert_eq!(e.check("four"), Err("an integer between 1 and 4".into()));
        let e = compile("expect = { one_of = [\"0\", \"1 2\"] }", false).unwrap();
        assert!(e.check("1\t 2").is_ok());
        assert!(e.check("3").is_err());
        let e = compile("expect = { not_matches = \"(?i)cbc\" }", false).unwrap();
        assert!(e.check("aes256-ctr").is_ok());
        assert!(e.check("aes128-CBC,aes256-ctr").is_err());
        let e = compile("expect = { not_one_of = [\"yes\"] }", true).unwrap();
        assert!(e.check("YES").is_err());
        assert!(e.check("no").is_ok());
    }

    #[test]
    fn stricter_permission_values_pass() {
        let e = compile("expect = { umask = \"027\" }", false).unwrap();
        for ok in ["027", "0027", "077", "177", "0777", "037", "067"] {
            assert!(e.check(ok).is_ok(), "umask {ok}");
        }
        for bad in ["022", "002", "007", "020", "0", "27x", "", "08"] {
            assert_eq!(
                e.check(bad),
                Err("a umask of 027 or more restrictive".into()),
                "umask {bad:?}"
            );
        }
        let e = compile("expect = { mode = \"0640\" }", false).unwrap();
        for ok in ["0640", "640", "0600", "0400", "0440", "0"] {
            assert!(e.check(ok).is_ok(), "mode {ok}");
        }
        for bad in ["0644", "0540", "0660", "4640", "0700", "rw-r-----"] {
            assert_eq!(
                e.check(bad),
                Err("a mode of 0640 or stricter".into()),
                "mode {bad}"
            );
        }
        let errs = compile("expect = { umask = \"9\" }", false).unwrap_err();
        assert!(errs[0].contains("octal permission value"), "{errs:?}");
    }

    #[test]
    fn invalid_specs_are_reported_with_positions() {
        let errs = compile("expect = { matches = \"(unclosed\" }", false).unwrap_err();
        assert!(
            errs[0].starts_with("t.toml:1:22: error: regex `(unclosed` does not compile"),
            "{errs:?}"
        );
        let errs = compile("expect = { }", false).unwrap_err();
        assert!(errs[0].contains("needs at least one of"), "{errs:?}");
        let errs = compile("expect = { min = 5, max = 1 }", false).unwrap_err();
        assert!(errs[0].contains("greater than"), "{errs:?}");
        let errs = compile("expect = { equal = \"x\" }", false).unwrap_err();
        assert!(errs[0].contains("unknown field `equal`"), "{errs:?}");
    }
}
