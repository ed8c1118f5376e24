//! The human summary of a [`Report`], for a terminal, a Packer build log and SSM Run Command. Run
//! Command keeps only the first 24,000 characters of stdout, so the output is always at most
//! [`RUN_COMMAND_STDOUT_LIMIT`] bytes (bytes never undercount characters): the worst findings get
//! full detail (evidence, fix), the next ones a single line each, the rest a count and a pointer to
//! the JSON report. The gate verdict is always the last line. Every string taken from the report is
//! folded onto one line (control characters become spaces, so no ANSI escape gets through) and cut
//! on a character boundary. The output is plain text and deterministic.

use std::fmt::Write as _;

use super::{Report, RuleResult};
use crate::rule::{Outcome, Severity, Status};

/// SSM Run Command shows only this much of a command's stdout.
pub const RUN_COMMAND_STDOUT_LIMIT: usize = 24_000;

/// Evidence items shown per finding; the rest are counted.
const EVIDENCE_PER_FINDING: usize = 3;
/// Characters kept of one evidence line, a cause or a fix.
const DETAIL_CHARS: usize = 240;
/// Characters kept of a title.
const TITLE_CHARS: usize = 160;
/// Characters kept of a rule id (ids are short; this only guards against a pathological baseline).
const ID_CHARS: usize = 100;
/// Characters kept of a header field (host name, root, OS, baseline name).
const FIELD_CHARS: usize = 100;
/// Warnings shown near the top, and characters kept of each.
const WARNINGS_SHOWN: usize = 3;
const WARNING_CHARS: usize = 200;
/// Waived results listed at the end, and characters kept of each reason.
const WAIVED_SHOWN: usize = 10;
const REASON_CHARS: usize = 100;
/// How many hex digits of the baseline digest the header shows.
const SHORT_DIGEST: usize = 12;

/// Render the summary; at most [`RUN_COMMAND_STDOUT_LIMIT`] bytes, ending with the verdict line.
pub fn render(report: &Report) -> String {
    let header = header(report);
    let verdict = verdict(report);
    let waived = waived_section(report);
    let findings = report.findings_worst_first();

    // Everything but the findings is bounded by the cuts above; the findings get what is left,
    // keeping room for the "more findings not shown" line.
    let more_reserve = more_line(findings.len()).len();
    let fixed = header.len() + waived.len() + verdict.len() + 1;
    let budget = RUN_COMMAND_STDOUT_LIMIT.saturating_sub(fixed + more_reserve);
    let body = findings_section(&findings, budget);

    let mut out = String::with_capacity(RUN_COMMAND_STDOUT_LIMIT);
    out.push_str(&header);
    out.push_str(&body);
    out.push_str(&waived);
    out.push_str(&verdict);
    out.push('\n');

    // Unreachable by construction; kept so a future change to the layout cannot break the bound.
    if out.len() > RUN_COMMAND_STDOUT_LIMIT {
        let keep = RUN_COMMAND_STDOUT_LIMIT.saturating_sub(verdict.len() + 3);
        out.truncate(floor_char_boundary(&out, keep));
        out.push_str("…\n");
        out.push_str(&verdict);
        out.push('\n');
        out.truncate(floor_char_boundary(&out, RUN_COMMAND_STDOUT_LIMIT));
    }
    out
}

/// Agent, host, OS, root, stage, baseline; warnings; totals. Ends with a blank line.
fn header(report: &Report) -> String {
    let host = &report.host;
    let hostname = host.hostname.as_deref().unwrap_or("unknown host");
    let os = if !host.os.pretty_name.is_empty() {
        host.os.pretty_name.clone()
    } else if !host.os.id.is_empty() {
        format!("{} {}", host.os.id, host.os.version_id)
            .trim_end()
            .to_string()
    } else {
        "unknown OS".to_string()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} on {}: {}",
        field(&report.agent.name, 40),
        field(&report.agent.version, 40),
        field(hostname, FIELD_CHARS),
        field(&os, FIELD_CHARS),
    );
    let digest = report
        .baseline
        .digest
        .strip_prefix("sha256:")
        .map(|hex| {
            let short: String = hex.chars().take(SHORT_DIGEST).collect();
            format!("sha256:{}", field(&short, SHORT_DIGEST))
        })
        .unwrap_or_else(|| field(&report.baseline.digest, SHORT_DIGEST + 7));
    let _ = write!(
        out,
        "root {} ({}), stage {}, baseline {} {}, profile {}",
        field(&host.root, FIELD_CHARS),
        if host.live {
            "live host"
        } else {
            "offline image"
        },
        report.stage,
        field(&report.baseline.name, FIELD_CHARS),
        digest,
        report.profile,
    );
    if !report.only.is_empty() {
        let only = report.only.join(", ");
        let _ = write!(out, ", only {}", field(&only, FIELD_CHARS));
    }
    if !report.skip.is_empty() {
        let skip = report.skip.join(", ");
        let _ = write!(out, ", skipping {}", field(&skip, FIELD_CHARS));
    }
    if !report.rules.is_empty() {
        let rules = report.rules.join(", ");
        let _ = write!(out, ", rules {}", field(&rules, FIELD_CHARS));
    }
    out.push('\n');
    if let Some(b) = &report.benchmark {
        let judged = match report.profile.cis_name() {
            Some(level) => format!("judged at {level}"),
            None => "cited; settings judged by their effect".to_string(),
        };
        let _ = writeln!(
            out,
            "benchmark {} ({judged})",
            field(&b.to_string(), FIELD_CHARS)
        );
    }
    if let Some(imds) = &host.imds {
        let _ = writeln!(out, "{}", field(&imds.summary(), WARNING_CHARS));
    }
    for warning in report.warnings.iter().take(WARNINGS_SHOWN) {
        let _ = writeln!(out, "warning: {}", field(warning, WARNING_CHARS));
    }
    if report.warnings.len() > WARNINGS_SHOWN {
        let _ = writeln!(
            out,
            "warning: (+{} more; see the JSON report)",
            report.warnings.len() - WARNINGS_SHOWN
        );
    }
    let t = &report.totals;
    let count = |status: Status| t.by_status.get(status.as_str()).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "{} rules: {} pass, {} fail, {} error, {} not-applicable, {} waived",
        t.rules,
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Error),
        count(Status::NotApplicable),
        t.waived,
    );
    out.push('\n');
    out
}

/// The findings, as much detail as `budget` bytes allow. Empty budget: only the count line.
fn findings_section(findings: &[&RuleResult], budget: usize) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("no findings\n\n");
        return out;
    }
    let heading = findings_heading(findings);
    if heading.len() > budget {
        out.push_str(&more_line(findings.len()));
        out.push('\n');
        return out;
    }
    out.push_str(&heading);

    let compact: Vec<String> = findings.iter().map(|f| compact_line(f)).collect();
    // remaining_compact[i]: bytes the one-line form of findings i.. would take.
    let mut remaining_compact = vec![0usize; compact.len() + 1];
    for i in (0..compact.len()).rev() {
        remaining_compact[i] = remaining_compact[i + 1] + compact[i].len();
    }
    // Detail may use the budget as long as it leaves room for the remaining findings' one-line
    // form, up to a third of the budget: a long tail still gets its ids listed.
    let tail_reserve = budget / 3;
    let mut i = 0;
    while i < findings.len() {
        let block = full_block(findings[i]);
        let reserve = remaining_compact[i + 1].min(tail_reserve);
        if out.len() + block.len() + reserve > budget {
            break;
        }
        out.push_str(&block);
        i += 1;
    }
    while i < findings.len() && out.len() + compact[i].len() <= budget {
        out.push_str(&compact[i]);
        i += 1;
    }
    if i < findings.len() {
        // Room for this line was reserved by the caller.
        out.push_str(&more_line(findings.len() - i));
        out.push('\n');
    }
    out.push('\n');
    out
}

fn findings_heading(findings: &[&RuleResult]) -> String {
    let by_severity: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|&s| {
            let n = findings.iter().filter(|f| f.severity == s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    format!(
        "{} ({}), worst first:\n",
        plural(findings.len(), "finding", "findings"),
        by_severity.join(", ")
    )
}

fn more_line(n: usize) -> String {
    format!(
        "… {} not shown: use --format json --output FILE for the full report",
        plural(n, "more finding", "more findings")
    )
}

/// `[HIGH] FAIL  rule-id  title`, newline-terminated.
fn compact_line(f: &RuleResult) -> String {
    format!(
        "[{}] {:<5} {}  {}\n",
        f.severity.as_str().to_uppercase(),
        f.status().as_str().to_uppercase(),
        field(&f.id, ID_CHARS),
        field(&f.title, TITLE_CHARS),
    )
}

/// The headline plus evidence and fix (a failure) or cause (an error).
fn full_block(f: &RuleResult) -> String {
    let mut out = compact_line(f);
    if !f.cis.is_empty() {
        let numbers: Vec<String> = f
            .cis
            .iter()
            .map(|r| format!("{} (L{})", r.number, r.level))
            .collect();
        let _ = writeln!(out, "    CIS {}", field(&numbers.join(", "), DETAIL_CHARS));
    }
    match &f.outcome {
        Outcome::Fail { evidence } | Outcome::Pass { evidence } => {
            for e in evidence.iter().take(EVIDENCE_PER_FINDING) {
                let _ = writeln!(out, "    {}", field(&e.to_string(), DETAIL_CHARS));
            }
            if evidence.len() > EVIDENCE_PER_FINDING {
                let _ = writeln!(out, "    (+{} more)", evidence.len() - EVIDENCE_PER_FINDING);
            }
            let mut lines = f
                .remediation
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty());
            if let Some(fix) = lines.next() {
                // Later lines are in the JSON and JUnit reports; say that there are more.
                let more = if lines.next().is_some() { " …" } else { "" };
                let _ = writeln!(out, "    fix: {}{more}", field(fix, DETAIL_CHARS));
            }
        }
        Outcome::Error { cause } => {
            let _ = writeln!(out, "    cause: {}", field(cause, DETAIL_CHARS));
        }
        Outcome::NotApplicable { reason } => {
            let _ = writeln!(out, "    reason: {}", field(reason, DETAIL_CHARS));
        }
    }
    out
}

/// Waived results (id, expiry, reason), at most [`WAIVED_SHOWN`]. Empty when none.
fn waived_section(report: &Report) -> String {
    let waived: Vec<&RuleResult> = report
        .results
        .iter()
        .filter(|r| r.waiver.is_some())
        .collect();
    let mut out = String::new();
    if waived.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{}:", plural(waived.len(), "waived", "waived"));
    for r in waived.iter().take(WAIVED_SHOWN) {
        if let Some(w) = &r.waiver {
            let _ = writeln!(
                out,
                "  {}  until {}  {}",
                field(&r.id, ID_CHARS),
                field(&w.expires, 20),
                field(&w.reason, REASON_CHARS),
            );
        }
    }
    if waived.len() > WAIVED_SHOWN {
        let _ = writeln!(out, "  (+{} more)", waived.len() - WAIVED_SHOWN);
    }
    out.push('\n');
    out
}

/// `PASSED: no findings at or above high` / `FAILED: 3 findings at or above high`.
fn verdict(report: &Report) -> String {
    let gate = &report.gate;
    let threshold = field(&gate.fail_on, 20);
    let word = if gate.passed { "PASSED" } else { "FAILED" };
    if gate.fail_on == "never" {
        let findings = report.results.iter().filter(|r| r.is_finding()).count();
        return format!(
            "{word}: --fail-on never ({} not gated)",
            plural(findings, "finding", "findings")
        );
    }
    match gate.findings_at_or_above {
        0 => format!("{word}: no findings at or above {threshold}"),
        n => format!(
            "{word}: {} at or above {threshold}",
            plural(n, "finding", "findings")
        ),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `s` on one line (control characters, including newlines and ESC, become spaces), cut to at most
/// `max_chars` characters with a trailing `…` when anything was removed.
fn field(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut chars = s.chars();
    for (taken, c) in chars.by_ref().enumerate() {
        if taken == max_chars {
            // Over the limit: drop the last kept char to make room for the ellipsis.
            out.pop();
            out.push('…');
            return out;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The largest index `<= i` that is a char boundary of `s` (`str::floor_char_boundary` is unstable).
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    (0..=i).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{
        report_from, report_with_findings, report_with_findings_of, sample_report,
    };
    use crate::report::AppliedWaiver;
    use crate::rule::Evidence;

    fn check_bound_and_verdict(report: &Report) -> String {
        let out = render(report);
        assert!(
            out.len() <= RUN_COMMAND_STDOUT_LIMIT,
            "{} bytes > {RUN_COMMAND_STDOUT_LIMIT}",
            out.len()
        );
        let last = out.lines().last().expect("output has lines");
        assert_eq!(last, verdict(report));
        assert!(last.starts_with("PASSED: ") || last.starts_with("FAILED: "));
        assert!(out.ends_with('\n'));
        assert!(!out.contains('\x1b'), "no ANSI escapes");
        out
    }

    #[test]
    fn sample() {
        let out = check_bound_and_verdict(&sample_report());
        insta::assert_snapshot!("sample", out);
    }

    #[test]
    fn deterministic() {
        let r = report_with_findings(300, 500);
        assert_eq!(render(&r), render(&r));
    }

    #[test]
    fn bound_holds_for_any_number_of_findings() {
        for n in [0, 1, 100, 10_000] {
            let out = check_bound_and_verdict(&report_with_findings(n, 5_000));
            if n == 0 {
                assert!(out.contains("no findings\n"));
                assert!(out.ends_with("PASSED: no findings at or above high\n"));
            }
            if n == 1 {
                assert!(out.contains("rule-00000"));
                assert!(!out.contains("not shown"));
            }
            if n >= 100 {
                assert!(out.contains(&format!("{n} findings (")));
                // The worst finding is shown in detail even when most are not.
                assert!(out.contains("    fix: "));
            }
        }
    }

    #[test]
    fn ten_thousand_findings_size() {
        let report = report_with_findings(10_000, 5_000);
        let out = check_bound_and_verdict(&report);
        // Detail, then one line per finding, then the count of the rest, in that order.
        let detail = out.find("    fix: ").expect("some detail");
        let more = out
            .find("more findings not shown: use --format json --output FILE for the full report")
            .expect("a tail count");
        assert!(detail < more);
        assert!(
            out.len() > RUN_COMMAND_STDOUT_LIMIT - 500,
            "uses the budget: {}",
            out.len()
        );
    }

    #[test]
    fn bound_holds_with_multibyte_evidence() {
        for fill in ['é', '漢', '🦀'] {
            for n in [0, 1, 100, 10_000] {
                let out = check_bound_and_verdict(&report_with_findings_of(n, 5_000, fill));
                if n > 0 {
                    assert!(out.contains(&format!("{fill}…")));
                }
            }
        }
    }

    #[test]
    fn cuts_never_split_a_char() {
        // Multibyte characters placed at and around every cut position.
        for prefix in 0..8 {
            for fill in ['é', '漢'] {
                let s: String = "a".repeat(prefix) + &fill.to_string().repeat(300);
                for max in [0, 1, 2, 3, 239, 240, 241] {
                    let cut = field(&s, max);
                    assert!(cut.chars().count() <= max.max(1));
                }
                for i in 0..s.len() + 2 {
                    assert!(s.is_char_boundary(floor_char_boundary(&s, i)));
                }
            }
        }
        assert_eq!(field("abc", 3), "abc");
        assert_eq!(field("abcd", 3), "ab…");
        assert_eq!(field("a\nb\x1b[31m", 10), "a b [31m");
    }

    #[test]
    fn worst_first() {
        let report = report_with_findings(10, 50);
        let out = check_bound_and_verdict(&report);
        let critical = out.find("[CRITICAL] FAIL").unwrap();
        let high = out.find("[HIGH] FAIL").unwrap();
        let low = out.find("[LOW] FAIL").unwrap();
        let info = out.find("[INFO] FAIL").unwrap();
        assert!(critical < high && high < low && low < info);

        let sample = render(&sample_report());
        let shadow = sample.find("etc-shadow-mode").unwrap();
        let sticky = sample.find("tmp-sticky-bit").unwrap();
        assert!(shadow < sticky, "critical before low");
        // A waived failure is not a finding: it appears only in the waived section.
        let waived_at = sample.find("1 waived:").unwrap();
        assert!(sample.find("ssh-x11-forwarding-no").unwrap() > waived_at);
    }

    #[test]
    fn verdict_lines() {
        let r = sample_report();
        assert_eq!(verdict(&r), "FAILED: 2 findings at or above high");
        let mut r = report_with_findings(0, 0);
        assert_eq!(verdict(&r), "PASSED: no findings at or above high");
        r.gate.fail_on = "never".to_string();
        assert_eq!(
            verdict(&r),
            "PASSED: --fail-on never (0 findings not gated)"
        );
    }

    #[test]
    fn huge_multibyte_everywhere() {
        // Every field the header, findings and waived section show is long and multibyte.
        let big: String = "漢".repeat(20_000);
        let mut report = report_with_findings_of(500, 5_000, '漢');
        for r in report.results.iter_mut().step_by(3) {
            r.id = big.clone();
            r.title = big.clone();
            r.waiver = Some(AppliedWaiver {
                reason: big.clone(),
                expires: big.clone(),
            });
            r.outcome = Outcome::Fail {
                evidence: vec![Evidence::new(big.clone()); 50],
            };
        }
        let mut report = report_from(report.results, vec![big.clone(); 50]);
        report.host.hostname = Some(big.clone());
        report.host.root = big.clone();
        report.host.os.pretty_name = big.clone();
        report.baseline.name = big.clone();
        report.baseline.digest = big.clone();
        report.only = vec![big.clone(); 10];
        report.agent.version = big.clone();
        report.gate.fail_on = big.clone();
        check_bound_and_verdict(&report);
    }
}
