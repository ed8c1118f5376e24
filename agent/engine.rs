//! The rule engine: select the rules that apply (stage, `--only`), evaluate them in parallel over one
//! [`Context`], apply waivers, and assemble the [`Report`]. A panicking check is caught and reported
//! as that rule's `error` so one bad check never takes the run down.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rayon::prelude::*;

use crate::baseline::{Baseline, Waiver};
use crate::checks::Context;
use crate::checks::Rule;
use crate::fim::FimSettings;
use crate::host::probe::ProbeSettings;
use crate::host::HostFacts;
use crate::report::{
    AgentInfo, AppliedWaiver, FailOn, Gate, Report, RuleResult, Timings, Totals,
    REPORT_SCHEMA_VERSION,
};
use crate::rule::{Evidence, Outcome, Profile, Severity, Stage, Status};
use crate::sysroot::Sysroot;

/// How a `check` run is asked to go.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stage: Stage,
    /// Which rules run (by their CIS level) and how settings with a default are judged.
    pub profile: Profile,
    /// Families to run (empty: all).
    pub only: Vec<String>,
    /// Families to leave out (`--skip`).
    pub skip: Vec<String>,
    /// Rule ids to run (`--rule`; empty: every rule the other filters select).
    pub rules: Vec<String>,
    pub offline: bool,
    pub fail_on: FailOn,
    /// "Today", for waiver expiry (UTC date of the run).
    pub today: jiff::civil::Date,
    /// Manifest location and pinned digest for the `fim` family; its policy is replaced by the
    /// baseline's.
    pub fim: FimSettings,
    /// `--active-probes`, the agent's executable and the IMDS endpoint (firewall family).
    pub probes: ProbeSettings,
}

/// Every family the baseline's rules use, sorted (for `--only` validation and help).
pub fn families(baseline: &Baseline) -> BTreeSet<String> {
    baseline
        .rules
        .iter()
        .map(|r| r.meta.family.clone())
        .collect()
}

/// The rules a run evaluates: those of its profile, for its stage, in the `--only` families, not
/// `--skip`ped, and among the `--rule` ids when some are given.
pub fn select<'b>(baseline: &'b Baseline, opts: &RunOptions) -> Vec<&'b Rule> {
    baseline
        .rules
        .iter()
        .filter(|r| opts.profile.selects(&r.meta))
        .filter(|r| r.meta.applies_to(opts.stage))
        .filter(|r| opts.only.is_empty() || opts.only.contains(&r.meta.family))
        .filter(|r| !opts.skip.contains(&r.meta.family))
        .filter(|r| opts.rules.is_empty() || opts.rules.contains(&r.meta.id))
        .collect()
}

/// Run the baseline over the sysroot. `baseline_ms` is the time spent loading the baseline, for the
/// report's timings.
pub fn run(
    baseline: &Baseline,
    sysroot: &Sysroot,
    facts: HostFacts,
    facts_ms: f64,
    baseline_ms: f64,
    opts: &RunOptions,
) -> Report {
    let started = Instant::now();
    let generated_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut cx = Context::new(sysroot, opts.stage, &facts, opts.offline);
    cx.settings = opts.profile.settings();
    cx.fim = FimSettings {
        policy: baseline.fim.clone(),
        baseline: Some(baseline.name.clone()),
        ..opts.fim.clone()
    };
    cx.probes = opts.probes.clone();
    let selected = select(baseline, opts);
    let mut results: Vec<RuleResult> = selected
        .par_iter()
        .map(|rule| evaluate(rule, &cx))
        .collect();
    let expired = apply_waivers(&mut results, &baseline.waivers, opts.today);
    results.extend(expired);
    let checks_ms = ms(started);

    let mut warnings: Vec<String> = baseline.warnings.iter().map(ToString::to_string).collect();
    warnings.extend(facts.notes.iter().cloned());
    let totals = Totals::compute(&results);
    let gate = Gate::compute(&results, opts.fail_on);
    drop(cx);
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        agent: AgentInfo::current(),
        generated_at,
        stage: opts.stage,
        host: facts,
        baseline: baseline.info(),
        profile: opts.profile,
        benchmark: baseline.benchmark.as_ref().map(|b| b.info.clone()),
        only: opts.only.clone(),
        skip: opts.skip.clone(),
        rules: opts.rules.clone(),
        gate,
        totals,
        timings: Timings {
            baseline_ms,
            facts_ms,
            checks_ms,
            total_ms: baseline_ms + facts_ms + checks_ms,
        },
        warnings,
        results,
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// Evaluate one rule, timing it and turning a panic into an `error` outcome.
pub fn evaluate(rule: &Rule, cx: &Context<'_>) -> RuleResult {
    let start = Instant::now();
    let outcome =
        catch_unwind(AssertUnwindSafe(|| rule.check.evaluate(cx))).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(rule = %rule.meta.id, "check panicked: {msg}");
            Outcome::error(format!("internal error: the check panicked: {msg}"))
        });
    // A failure always says why: a check that forgot its evidence still yields a usable finding.
    let outcome = match outcome {
        Outcome::Fail { evidence } if evidence.is_empty() => {
            debug_assert!(false, "check {} failed without evidence", rule.meta.id);
            Outcome::fail(Evidence::new(
                "the check failed without giving evidence (internal)",
            ))
        }
        other => other,
    };
    // evidence and causes quote the audited system: bounded and without control characters
    let outcome = outcome.bounded();
    let us = start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
    tracing::trace!(rule = %rule.meta.id, status = %outcome.status(), us, "rule evaluated");
    RuleResult::new(&rule.meta, outcome, us)
}

/// Mark failures covered by an unexpired waiver; return one finding per expired waiver whose rule ran.
/// A waiver is valid through its `expires` date (inclusive).
pub fn apply_waivers(
    results: &mut [RuleResult],
    waivers: &[Waiver],
    today: jiff::civil::Date,
) -> Vec<RuleResult> {
    let mut expired = Vec::new();
    for w in waivers {
        let Some(result) = results.iter_mut().find(|r| r.id == w.rule) else {
            continue;
        };
        if today > w.expires {
            expired.push(RuleResult {
                id: format!("waiver-expired-{}", w.rule),
                title: format!("Waiver for {} has expired", w.rule),
                severity: Severity::Medium,
                family: "baseline".into(),
                kind: "waiver".into(),
                outcome: Outcome::fail(
                    Evidence::new(format!(
                        "waiver for `{}` expired on {} ({})",
                        w.rule, w.expires, w.reason
                    ))
                    .path(w.origin.file.clone())
                    .line(w.origin.line)
                    .expected(format!("expires on or after {today}")),
                ),
                waiver: None,
                remediation: format!(
                    "Fix `{}` or renew the waiver at {} with a new reason and date.",
                    w.rule, w.origin
                ),
                references: Vec::new(),
                cis: Vec::new(),
                duration_us: 0,
            });
        } else if matches!(result.status(), Status::Fail | Status::Error) {
            result.waiver = Some(AppliedWaiver {
                reason: w.reason.clone(),
                expires: w.expires.to_string(),
            });
        }
    }
    expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;
    use crate::fim::FimPolicy;
    use crate::report::LayerInfo;
    use crate::rule::{Origin, RuleMeta};

    /// A check that panics with a formatted message (a `String` payload) or a literal (`&str`).
    #[derive(Debug)]
    enum Panics {
        Formatted,
        Literal,
    }

    impl Check for Panics {
        fn evaluate(&self, _cx: &Context<'_>) -> Outcome {
            match self {
                Panics::Formatted => panic!("index {} out of range for {} entries", 7, 3),
                Panics::Literal => panic!("a literal panic message"),
            }
        }
    }

    /// A check that always passes.
    #[derive(Debug)]
    struct Passes;

    impl Check for Passes {
        fn evaluate(&self, _cx: &Context<'_>) -> Outcome {
            Outcome::pass(Evidence::new("all good"))
        }
    }

    fn rule(id: &str, check: impl Check + 'static) -> Rule {
        Rule {
            meta: RuleMeta {
                id: id.into(),
                title: format!("{id} title"),
                severity: Severity::High,
                stages: Stage::ALL.to_vec(),
                family: "test".into(),
                kind: "test".into(),
                rationale: String::new(),
                remediation: String::new(),
                references: Vec::new(),
                cis: Vec::new(),
                origin: Origin {
                    file: "engine-tests.toml".into(),
                    line: 1,
                },
            },
            check: Box::new(check),
        }
    }

    fn cause(result: &RuleResult) -> &str {
        match &result.outcome {
            Outcome::Error { cause } => cause,
            other => panic!("{}: expected an error outcome, got {other:?}", result.id),
        }
    }

    #[test]
    fn a_panicking_check_is_an_error_naming_the_panic() {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let facts = HostFacts::gather(&sysroot);
        let cx = Context::new(&sysroot, Stage::Run, &facts, true);

        let result = evaluate(&rule("panics-formatted", Panics::Formatted), &cx);
        assert_eq!(result.status(), Status::Error);
        assert_eq!(
            cause(&result),
            "internal error: the check panicked: index 7 out of range for 3 entries"
        );
        let result = evaluate(&rule("panics-literal", Panics::Literal), &cx);
        assert_eq!(
            cause(&result),
            "internal error: the check panicked: a literal panic message"
        );
        // the rule's metadata still describes the result
        assert_eq!(
            (result.id.as_str(), result.severity),
            ("panics-literal", Severity::High)
        );
    }

    #[test]
    fn a_run_reports_the_panicking_rule_as_an_error_and_the_others_normally() {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let facts = HostFacts::gather(&sysroot);
        let baseline = Baseline {
            name: "engine-tests".into(),
            layers: vec![LayerInfo {
                name: "engine-tests".into(),
                version: "1".into(),
                source: "engine-tests.toml".into(),
            }],
            digest: "sha256:0".into(),
            rules: vec![rule("panics", Panics::Formatted), rule("passes", Passes)],
            waivers: Vec::new(),
            warnings: Vec::new(),
            fim: FimPolicy::default(),
            benchmark: None,
        };
        let opts = RunOptions {
            stage: Stage::Run,
            profile: Profile::Ec2,
            only: Vec::new(),
            skip: Vec::new(),
            rules: Vec::new(),
            offline: true,
            fail_on: FailOn::AtOrAbove(Severity::High),
            today: jiff::civil::date(2025, 1, 1),
            fim: FimSettings::default(),
            probes: ProbeSettings::default(),
        };
        let report = run(&baseline, &sysroot, facts, 0.0, 0.0, &opts);

        let statuses: Vec<(&str, Status)> = report
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.status()))
            .collect();
        assert_eq!(
            statuses,
            vec![("panics", Status::Error), ("passes", Status::Pass)]
        );
        assert_eq!(
            cause(&report.results[0]),
            "internal error: the check panicked: index 7 out of range for 3 entries"
        );
        // an error is a finding: the high rule that could not be evaluated fails the gate
        assert_eq!(
            (report.gate.findings_at_or_above, report.gate.passed),
            (1, false)
        );
    }
}
