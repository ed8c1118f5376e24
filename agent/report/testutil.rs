//! Test-only builders of [`Report`]s for the renderers' unit tests: one realistic sample with a result
//! of every status (and a waived failure) for snapshots and schema validation, and synthetic reports
//! with many large findings for the output-size tests. Timestamps and timings are fixed so snapshots
//! are stable; totals and the gate are computed with [`Totals::compute`] and [`Gate::compute`] so
//! they always agree with the results.

use crate::host::{HostFacts, OsRelease};
use crate::report::{
    AgentInfo, AppliedWaiver, BaselineInfo, BenchmarkInfo, FailOn, Gate, LayerInfo, Report,
    RuleResult, Timings, Totals, REPORT_SCHEMA_VERSION,
};
use crate::rule::{CisRecommendation, Evidence, Outcome, Profile, Severity, Stage};

/// A fixed `sha256:` digest (64 hex digits).
pub(crate) const SAMPLE_DIGEST: &str =
    "sha256:3f6c0e1b9a2d47c58e1f0a9b2c3d4e5f60718293a4b5c6d7e8f9012345678abc";

fn host() -> HostFacts {
    HostFacts {
        root: "/".to_string(),
        live: true,
        hostname: Some("ip-10-0-1-23.ec2.internal".to_string()),
        os: OsRelease {
            id: "amzn".to_string(),
            id_like: vec!["fedora".to_string()],
            version_id: "2023".to_string(),
            pretty_name: "Amazon Linux 2023.6.20241010".to_string(),
        },
        kernel: Some("6.1.112-122.189.amzn2023.x86_64".to_string()),
        arch: "x86_64".to_string(),
        notes: Vec::new(),
        imds: None,
        package_refresh: None,
    }
}

fn baseline() -> BaselineInfo {
    BaselineInfo {
        name: "amzn-2023".to_string(),
        layers: vec![
            LayerInfo {
                name: "linux-common".to_string(),
                version: "1.2.0".to_string(),
                source: "embedded:linux-common".to_string(),
            },
            LayerInfo {
                name: "amzn-2023".to_string(),
                version: "1.0.3".to_string(),
                source: "embedded:amzn-2023".to_string(),
            },
        ],
        digest: SAMPLE_DIGEST.to_string(),
    }
}

/// A result with the given metadata; remediation and references are filled in plausibly.
fn result(
    id: &str,
    title: &str,
    severity: Severity,
    family: &str,
    outcome: Outcome,
    remediation: &str,
    duration_us: u64,
) -> RuleResult {
    RuleResult {
        id: id.to_string(),
        title: title.to_string(),
        severity,
        family: family.to_string(),
        kind: family.to_string(),
        outcome,
        waiver: None,
        remediation: remediation.to_string(),
        references: vec!["AWS Well-Architected SEC06-BP02".to_string()],
        cis: Vec::new(),
        duration_us,
    }
}

/// Assemble a report around `results`, computing totals and the gate (`--fail-on high`).
pub(crate) fn report_from(results: Vec<RuleResult>, warnings: Vec<String>) -> Report {
    let totals = Totals::compute(&results);
    let gate = Gate::compute(&results, FailOn::AtOrAbove(Severity::High));
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        agent: AgentInfo {
            name: "ec2-harden".to_string(),
            version: "0.1.0".to_string(),
        },
        generated_at: "2024-11-05T09:30:00Z".to_string(),
        stage: Stage::Run,
        host: host(),
        baseline: baseline(),
        profile: Profile::Ec2,
        benchmark: Some(BenchmarkInfo {
            name: "CIS Amazon Linux 2023 Benchmark".into(),
            version: "v1.0.0".into(),
        }),
        only: Vec::new(),
        rules: Vec::new(),
        skip: Vec::new(),
        gate,
        totals,
        timings: Timings {
            baseline_ms: 1.5,
            facts_ms: 0.75,
            checks_ms: 12.25,
            total_ms: 14.5,
        },
        warnings,
        results,
    }
}

/// A realistic report: two families (`ssh`, `files`), every status, a waived failure, a warning.
pub(crate) fn sample_report() -> Report {
    let mut waived = result(
        "ssh-x11-forwarding-no",
        "SSH X11 forwarding is disabled",
        Severity::Low,
        "ssh",
        Outcome::fail(
            Evidence::new("X11Forwarding is enabled")
                .path("/etc/ssh/sshd_config")
                .line(88)
                .found("yes")
                .expected("no"),
        ),
        "Set `X11Forwarding no` in /etc/ssh/sshd_config and reload sshd.",
        95,
    );
    waived.waiver = Some(AppliedWaiver {
        reason: "bastion hosts run legacy GUI tooling until migration (SEC-1234)".to_string(),
        expires: "2025-06-30".to_string(),
    });

    let mut results = vec![
        result(
            "ssh-permit-root-login-no",
            "SSH root login is disabled",
            Severity::High,
            "ssh",
            Outcome::Fail {
                evidence: vec![
                    Evidence::new("PermitRootLogin allows root")
                        .path("/etc/ssh/sshd_config")
                        .line(42)
                        .found("yes")
                        .expected("no"),
                    Evidence::new("drop-in overrides the main file")
                        .path("/etc/ssh/sshd_config.d/50-cloud-init.conf")
                        .line(3)
                        .found("PermitRootLogin yes"),
                ],
            },
            "Set `PermitRootLogin no` in /etc/ssh/sshd_config and in every file under\n/etc/ssh/sshd_config.d/, then run `systemctl reload sshd`.",
            140,
        ),
        result(
            "ssh-password-authentication-no",
            "SSH password authentication is disabled",
            Severity::Medium,
            "ssh",
            Outcome::pass(
                Evidence::new("PasswordAuthentication is off")
                    .path("/etc/ssh/sshd_config")
                    .line(65)
                    .found("no"),
            ),
            "Set `PasswordAuthentication no` in /etc/ssh/sshd_config.",
            120,
        ),
        result(
            "etc-shadow-mode",
            "/etc/shadow is readable only by root",
            Severity::Critical,
            "files",
            Outcome::Fail {
                evidence: vec![
                    Evidence::new("mode is too permissive")
                        .path("/etc/shadow")
                        .found("0644")
                        .expected("0000 or stricter than 0640"),
                    Evidence::new("owner is not root")
                        .path("/etc/shadow")
                        .found("uid 1000 (ec2-user)")
                        .expected("uid 0"),
                    Evidence::new("group is not root or shadow")
                        .path("/etc/shadow")
                        .found("gid 1000")
                        .expected("gid 0"),
                    Evidence::new("world-readable backup present")
                        .path("/etc/shadow-")
                        .found("0644"),
                    Evidence::new("world-readable backup present")
                        .path("/etc/shadow.bak")
                        .found("0644"),
                ],
            },
            "chown root:root /etc/shadow /etc/shadow-\nchmod 0000 /etc/shadow /etc/shadow-",
            310,
        ),
        result(
            "etc-passwd-mode",
            "/etc/passwd is not writable by group or others",
            Severity::Medium,
            "files",
            Outcome::pass(
                Evidence::new("mode ok")
                    .path("/etc/passwd")
                    .found("0644")
                    .expected("0644 or stricter"),
            ),
            "chmod 0644 /etc/passwd",
            85,
        ),
        result(
            "ssh-max-auth-tries",
            "SSH MaxAuthTries is 4 or less",
            Severity::Medium,
            "ssh",
            Outcome::error("/etc/ssh/sshd_config.d/99-local.conf: Permission denied (os error 13)"),
            "Set `MaxAuthTries 4` in /etc/ssh/sshd_config.",
            60,
        ),
        waived,
        result(
            "var-log-audit-mode",
            "Audit logs are readable only by root",
            Severity::Medium,
            "files",
            Outcome::not_applicable("auditd is not installed: /var/log/audit does not exist"),
            "chmod 0600 /var/log/audit/*",
            40,
        ),
        result(
            "tmp-sticky-bit",
            "World-writable directories have the sticky bit",
            Severity::Low,
            "files",
            Outcome::fail(
                Evidence::new("world-writable directory without sticky bit")
                    .path("/var/tmp/build-cache")
                    .found("0777")
                    .expected("1777"),
            ),
            "chmod +t /var/tmp/build-cache",
            2150,
        ),
    ];
    // the recommendations the sample's CIS Amazon Linux 2023 v1.0.0 rules check
    for (id, number) in [
        ("ssh-permit-root-login-no", "4.2.7"),
        ("etc-shadow-mode", "6.1.6"),
    ] {
        let r = results.iter_mut().find(|r| r.id == id).unwrap();
        r.cis = vec![CisRecommendation {
            number: number.to_string(),
            level: 1,
        }];
        r.references.insert(
            0,
            format!("CIS Amazon Linux 2023 Benchmark v1.0.0 {number}"),
        );
    }
    report_from(
        results,
        vec![
            "waiver `ssh-legacy-ciphers` (waivers.toml:12) matches no rule in baseline amzn-2023"
                .to_string(),
        ],
    )
}

/// `n` failing results, severities cycling through every level, each with one evidence item whose
/// message is `evidence_len` ASCII characters and a remediation of the same length.
pub(crate) fn report_with_findings(n: usize, evidence_len: usize) -> Report {
    report_with_findings_of(n, evidence_len, 'x')
}

/// Like [`report_with_findings`], filling messages with `fill` (use a multibyte char to test cuts).
pub(crate) fn report_with_findings_of(n: usize, evidence_len: usize, fill: char) -> Report {
    let text: String = std::iter::repeat_n(fill, evidence_len).collect();
    let results = (0..n)
        .map(|i| {
            let severity = Severity::ALL[i % Severity::ALL.len()];
            result(
                &format!("rule-{i:05}"),
                &format!("synthetic rule {i}"),
                severity,
                if i % 2 == 0 { "files" } else { "ssh" },
                Outcome::fail(
                    Evidence::new(text.clone())
                        .path(format!("/etc/synthetic/{i}"))
                        .found(text.clone())
                        .expected("something else"),
                ),
                &text,
                i as u64,
            )
        })
        .collect();
    report_from(results, Vec::new())
}
