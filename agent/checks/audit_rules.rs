//! `[[audit_rules]]`: lines of the audit rule set auditd loads at start ([`crate::host::audit`]:
//! `/etc/audit/rules.d/*.rules` when augenrules has rules to compile there, else
//! `/etc/audit/audit.rules`, or the file a unit loads with `auditctl -R`). Like `file_content`,
//! `must_match` needs one line to match and `must_not_match` forbids lines (`unless` excepted);
//! the evidence says which files were judged and why those.

use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use super::file_content::{compile_line_tests, FileContentCheck};
use crate::checks::params::rule_params;
use crate::checks::{Check, CompileCheck, Context};
use crate::diag::Diagnostics;
use crate::host::audit::{loaded_rules, LoadedRules};
use crate::host::systemd::UnitIndex;
use crate::rule::{Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[audit_rules]]`.
    pub struct AuditRules {
        /// Some loaded rule line must match this regex.
        #[serde(default)]
        pub must_match: Option<Spanned<String>>,
        /// No loaded rule line may match this regex...
        #[serde(default)]
        pub must_not_match: Option<Spanned<String>>,
        /// ...unless it also matches this one.
        #[serde(default)]
        pub unless: Option<Spanned<String>>,
    }
}

#[derive(Debug)]
pub struct AuditRulesCheck {
    lines: FileContentCheck,
}

impl CompileCheck for AuditRules {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let lines = compile_line_tests(
            "audit_rules",
            &self.id,
            self.must_match.as_ref(),
            self.must_not_match.as_ref(),
            self.unless.as_ref(),
            diags,
        );
        (!diags.errors_since(mark)).then(|| Box::new(AuditRulesCheck { lines }) as Box<dyn Check>)
    }
}

/// The loaded rule set, worked out once per run for every audit rule.
struct Loaded(Result<LoadedRules, String>);

impl Check for AuditRulesCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let loaded: Arc<Loaded> = cx.cache.get(|| {
            let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
            Loaded(loaded_rules(cx.sysroot, &units))
        });
        let rules = match &loaded.0 {
            Ok(r) => r,
            Err(e) => {
                return Outcome::error(format!("cannot tell which audit rules auditd loads: {e}"))
            }
        };
        if rules.files.is_empty() {
            // auditd starts with no rule at all: a required rule is missing, a forbidden one absent
            let e = Evidence::new(format!("audit rules judged: {}", rules.how));
            return if self.lines.requires_a_line() {
                Outcome::fail(e)
            } else {
                Outcome::pass(e)
            };
        }
        let files: Vec<PathBuf> = rules.files.iter().map(PathBuf::from).collect();
        let outcome = self.lines.judge(cx, &files, &rules.how);
        let note = Evidence::new(format!("audit rules judged: {}", rules.how));
        match outcome {
            Outcome::Pass { mut evidence } => {
                evidence.push(note);
                Outcome::Pass { evidence }
            }
            Outcome::Fail { mut evidence } => {
                evidence.push(note);
                Outcome::Fail { evidence }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostFacts;
    use crate::rule::Stage;
    use crate::sysroot::Sysroot;
    use regex::Regex;
    use std::fs;

    fn eval(files: &[(&str, &str)]) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let facts = HostFacts::gather(&sysroot);
        let cx = Context::new(&sysroot, Stage::Run, &facts, true);
        let check = AuditRulesCheck {
            lines: FileContentCheck::lines(
                Some(Regex::new(r"^\s*-w\s+/etc/passwd\s+-p\s+wa").unwrap()),
                None,
                None,
            ),
        };
        check.evaluate(&cx)
    }

    #[test]
    fn a_unit_that_loads_no_rule_file_fails_a_required_rule() {
        let o = eval(&[
            (
                "/usr/lib/systemd/system/auditd.service",
                "[Service]\nExecStartPost=-/sbin/auditctl\n",
            ),
            (
                "/etc/audit/audit.rules",
                "-w /etc/passwd -p wa -k identity\n",
            ),
        ]);
        let Outcome::Fail { evidence } = o else {
            panic!("expected a failure: {o:?}")
        };
        assert!(evidence[0].message.contains("without -R"), "{evidence:?}");
    }

    #[test]
    fn rules_in_audit_rules_count_when_rules_d_has_none() {
        let o = eval(&[(
            "/etc/audit/audit.rules",
            "-D\n-w /etc/passwd -p wa -k identity\n",
        )]);
        assert!(matches!(o, Outcome::Pass { .. }), "{o:?}");
        let Outcome::Pass { evidence } = o else {
            unreachable!()
        };
        assert_eq!(evidence[0].path.as_deref(), Some("/etc/audit/audit.rules"));
        assert!(
            evidence[1].message.contains("holds no rule"),
            "{evidence:?}"
        );
    }

    #[test]
    fn rules_d_replaces_audit_rules_when_it_has_rules() {
        // augenrules rewrites audit.rules from rules.d: the old file's rule is not in force
        let o = eval(&[
            ("/etc/audit/audit.rules", "-w /etc/passwd -p wa\n"),
            ("/etc/audit/rules.d/10-base.rules", "-D\n-b 8192\n"),
        ]);
        let Outcome::Fail { evidence } = o else {
            panic!("{o:?}")
        };
        assert!(
            evidence[0].message.contains("rules.d/*.rules"),
            "{evidence:?}"
        );
        let o = eval(&[("/etc/audit/rules.d/50-id.rules", "-w /etc/passwd -p wa\n")]);
        assert!(matches!(o, Outcome::Pass { .. }), "{o:?}");
    }

    #[test]
    fn no_rules_anywhere_fails() {
        let o = eval(&[]);
        let Outcome::Fail { evidence } = o else {
            panic!("{o:?}")
        };
        assert!(evidence[0].message.contains("none of"), "{evidence:?}");
    }
}
