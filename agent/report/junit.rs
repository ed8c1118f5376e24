//! The JUnit XML report, for CI systems and image pipelines that display test results: one test
//! suite per rule family (in the order families first appear in the results), one test case per
//! rule, named by rule id with classname `ec2-harden.<family>`. A `fail` is a `<failure>` (message
//! the title, type the severity, text the evidence and remediation), an `error` an `<error>`
//! (message the cause), a `not-applicable` a `<skipped>` (message the reason), and a failure
//! covered by a waiver a `<skipped>` with message `waived until YYYY-MM-DD: reason`. The host,
//! baseline and gate are recorded as properties of every suite.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report as JunitReport, TestCase, TestCaseStatus, TestSuite,
};

use super::{Report, RuleResult};
use crate::rule::{Evidence, Outcome};

/// Render `report` as JUnit XML. Never panics: if serialisation failed, the output is a minimal
/// JUnit document carrying the error.
pub fn render(report: &Report) -> String {
    let mut junit = JunitReport::new(format!(
        "ec2-harden {} {}",
        report.stage, report.baseline.name
    ));
    if let Some(time) = millis(report.timings.total_ms) {
        junit.set_time(time);
    }

    let properties = properties(report);
    let mut suites: Vec<TestSuite> = Vec::new();
    for result in &report.results {
        let index = match suites.iter().position(|s| s.name.as_str() == result.family) {
            Some(i) => i,
            None => {
                let mut suite = TestSuite::new(result.family.as_str());
                suite.add_properties(properties.iter().cloned());
                suites.push(suite);
                suites.len() - 1
            }
        };
        suites[index].add_test_case(test_case(result));
    }
    for suite in &mut suites {
        // The sum of the checks' own times; checks run in parallel, so not the suite's wall time.
        let total: u64 = report
            .results
            .iter()
            .filter(|r| r.family == suite.name.as_str())
            .map(|r| r.duration_us)
            .fold(0, u64::saturating_add);
        suite.set_time(Duration::from_micros(total));
    }
    junit.add_test_suites(suites);

    match junit.to_string() {
        Ok(xml) => xml,
        Err(e) => fallback(&format!("could not serialise the JUnit report: {e}")),
    }
}

fn test_case(r: &RuleResult) -> TestCase {
    let status = match (&r.outcome, &r.waiver) {
        (Outcome::Fail { evidence }, Some(w)) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("waived until {}: {}", w.expires, w.reason))
                .set_type("waived")
                .set_description(failure_text(evidence, &r.remediation));
            s
        }
        (Outcome::Error { cause }, Some(w)) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("waived until {}: {}", w.expires, w.reason))
                .set_type("waived")
                .set_description(format!("error: {cause}"));
            s
        }
        (Outcome::Fail { evidence }, None) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(r.title.as_str())
                .set_type(r.severity.as_str())
                .set_description(failure_text(evidence, &r.remediation));
            s
        }
        (Outcome::Error { cause }, None) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(cause.as_str()).set_type(r.severity.as_str());
            s
        }
        (Outcome::NotApplicable { reason }, _) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str()).set_type("not-applicable");
            s
        }
        (Outcome::Pass { .. }, _) => TestCaseStatus::success(),
    };
    let mut case = TestCase::new(r.id.as_str(), status);
    case.set_classname(format!("ec2-harden.{}", r.family))
        .set_time(Duration::from_micros(r.duration_us));
    if let Outcome::Pass { evidence } = &r.outcome {
        if !evidence.is_empty() {
            case.set_system_out(evidence_lines(evidence));
        }
    }
    case
}

/// One evidence item per line, then the remediation.
fn failure_text(evidence: &[Evidence], remediation: &str) -> String {
    let mut text = evidence_lines(evidence);
    if !remediation.trim().is_empty() {
        let _ = write!(text, "\nremediation:\n{}\n", remediation.trim_end());
    }
    text
}

fn evidence_lines(evidence: &[Evidence]) -> String {
    let mut text = String::new();
    for e in evidence {
        let _ = writeln!(text, "{e}");
    }
    text
}

fn properties(report: &Report) -> Vec<Property> {
    let host = &report.host;
    let os = if host.os.pretty_name.is_empty() {
        format!("{} {}", host.os.id, host.os.version_id)
            .trim()
            .to_string()
    } else {
        host.os.pretty_name.clone()
    };
    let mut props = vec![
        Property::new(
            "agent",
            format!("{} {}", report.agent.name, report.agent.version),
        ),
        Property::new("generated_at", report.generated_at.as_str()),
        Property::new("stage", report.stage.as_str()),
        Property::new("hostname", host.hostname.as_deref().unwrap_or("")),
        Property::new("os", os),
        Property::new("root", host.root.as_str()),
        Property::new("live", host.live.to_string()),
        Property::new("baseline", report.baseline.name.as_str()),
        Property::new("baseline_digest", report.baseline.digest.as_str()),
        Property::new("profile", report.profile.as_str()),
        Property::new("fail_on", report.gate.fail_on.as_str()),
        Property::new("gate_passed", report.gate.passed.to_string()),
    ];
    if let Some(b) = &report.benchmark {
        props.push(Property::new("benchmark", b.to_string()));
    }
    if !report.only.is_empty() {
        props.push(Property::new("only", report.only.join(",")));
    }
    if !report.skip.is_empty() {
        props.push(Property::new("skip", report.skip.join(",")));
    }
    if !report.rules.is_empty() {
        props.push(Property::new("rules", report.rules.join(",")));
    }
    props
}

/// `ms` milliseconds as a `Duration`, if it is a finite non-negative number that fits.
fn millis(ms: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// A minimal JUnit document reporting `message` as an error.
fn fallback(message: &str) -> String {
    let message = escape(message);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"ec2-harden\" tests=\"1\" failures=\"0\" errors=\"1\">\n\
         \x20   <testsuite name=\"ec2-harden\" tests=\"1\" disabled=\"0\" errors=\"1\" failures=\"0\">\n\
         \x20       <testcase name=\"report\">\n\
         \x20           <error message=\"{message}\"/>\n\
         \x20       </testcase>\n\
         \x20   </testsuite>\n\
         </testsuites>\n"
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{report_with_findings_of, sample_report};
    use crate::rule::Status;

    fn parse(xml: &str) -> JunitReport {
        JunitReport::deserialize_from_str(xml).expect("well-formed JUnit")
    }

    #[test]
    fn sample() {
        insta::assert_snapshot!("sample", render(&sample_report()));
    }

    #[test]
    fn counts_match_statuses() {
        let report = sample_report();
        let xml = render(&report);
        let count = |status: Status, waived: bool| {
            report
                .results
                .iter()
                .filter(|r| r.status() == status && r.waiver.is_some() == waived)
                .count()
        };
        let failures = count(Status::Fail, false);
        let errors = count(Status::Error, false);
        let skipped = count(Status::NotApplicable, false)
            + count(Status::NotApplicable, true)
            + count(Status::Fail, true)
            + count(Status::Error, true);
        assert_eq!((failures, errors, skipped), (3, 1, 2));
        assert_eq!(xml.matches("<failure").count(), failures);
        assert_eq!(xml.matches("<error").count(), errors);
        assert_eq!(xml.matches("<skipped").count(), skipped);
        assert_eq!(xml.matches("<testcase").count(), report.results.len());
        assert!(xml.contains("message=\"waived until 2025-06-30: bastion hosts"));
    }

    #[test]
    fn well_formed_and_structured() {
        let report = sample_report();
        let junit = parse(&render(&report));
        assert_eq!(junit.name.as_str(), "ec2-harden run amzn-2023");
        assert_eq!(junit.tests, 8);
        assert_eq!(junit.failures, 3);
        assert_eq!(junit.errors, 1);
        let names: Vec<&str> = junit.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ssh", "files"], "families in first-seen order");
        for suite in &junit.test_suites {
            for case in &suite.test_cases {
                let classname = case.classname.as_ref().unwrap();
                assert_eq!(
                    classname.as_str(),
                    format!("ec2-harden.{}", suite.name.as_str())
                );
            }
        }
        let shadow = junit.test_suites[1]
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "etc-shadow-mode")
            .unwrap();
        // quick-junit writes times in whole milliseconds: 310 µs is 0.000, 2,150 µs 0.002.
        assert_eq!(shadow.time, Some(Duration::ZERO));
        let sticky = junit.test_suites[1]
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "tmp-sticky-bit")
            .unwrap();
        assert_eq!(sticky.time, Some(Duration::from_millis(2)));
        match &shadow.status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                ty,
                description,
                ..
            } => {
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "/etc/shadow is readable only by root"
                );
                assert_eq!(ty.as_ref().unwrap().as_str(), "critical");
                let description = description.as_ref().unwrap().as_str();
                assert!(description.contains("/etc/shadow: mode is too permissive (found 0644"));
                assert!(
                    description.contains("/etc/shadow.bak"),
                    "every evidence item"
                );
                assert!(description.contains("remediation:\nchown root:root"));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn hostile_text_stays_well_formed() {
        let mut report = report_with_findings_of(5, 100, '漢');
        report.results[0].title =
            "<a href=\"x\">&amp;</a> ]]> \x1b[31mred\x1b[0m \u{0}".to_string();
        report.results[1].outcome = Outcome::error("bad <cause> & \"quotes\"\n second line");
        report.baseline.name = "\"<base>\"".to_string();
        let junit = parse(&render(&report));
        assert_eq!(junit.tests, 5);
        assert_eq!(junit.errors, 1);
        assert!(fallback("x < y & \"z\"").contains("message=\"x &lt; y &amp; &quot;z&quot;\""));
        parse(&fallback("x < y & \"z\" \x1b"));
    }
}
