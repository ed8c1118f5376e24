//! The one `Report` a run produces, and the renderers that turn it into text, JSON and JUnit.
//! Renderers take a finished `Report` and never read the host. `--fail-on` gating lives here too,
//! so the exit code and every renderer agree on what a finding is.

pub mod json;
pub mod junit;
pub mod output;
#[cfg(test)]
pub(crate) mod testutil;
pub mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::HostFacts;
use crate::rule::{CisRecommendation, Outcome, Profile, RuleMeta, Severity, Stage, Status};

/// The version of the JSON report layout (`schema/report.schema.json`). Bumped on breaking change.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub agent: AgentInfo,
    /// RFC 3339 UTC time the run started.
    pub generated_at: String,
    pub stage: Stage,
    pub host: HostFacts,
    pub baseline: BaselineInfo,
    /// The profile that selected the rules and decided how settings were judged.
    #[serde(default)]
    pub profile: Profile,
    /// The CIS benchmark the baseline's rules cite, when it has one: its name and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<BenchmarkInfo>,
    /// Families the run was restricted to with `--only` (empty: all).
    #[serde(default)]
    pub only: Vec<String>,
    /// Families left out with `--skip` (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// Rules the run was restricted to with `--rule` (empty: no such restriction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    pub gate: Gate,
    pub totals: Totals,
    pub timings: Timings,
    /// Non-fatal problems: waivers matching no rule, facts that could not be read.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// One entry per rule evaluated, in baseline order.
    pub results: Vec<RuleResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
}

impl AgentInfo {
    pub fn current() -> AgentInfo {
        AgentInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A CIS benchmark as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchmarkInfo {
    /// e.g. `CIS Debian Linux 12 Benchmark`.
    pub name: String,
    /// e.g. `v1.1.0`.
    pub version: String,
}

impl BenchmarkInfo {
    /// How a rule cites one of its recommendations: `CIS Debian Linux 12 Benchmark v1.1.0 5.1.20`.
    pub fn cite(&self, number: &str) -> String {
        format!("{} {} {number}", self.name, self.version)
    }
}

impl std::fmt::Display for BenchmarkInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// The top layer's name (what the user selected or what was auto-selected).
    pub name: String,
    /// Every layer, bottom (most general) first.
    pub layers: Vec<LayerInfo>,
    /// `sha256:` of the layers' sources, in order: two runs with the same digest used the same rules.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub version: String,
    /// `embedded:NAME` or the file path the layer was read from.
    pub source: String,
}

/// The `--fail-on` verdict, which decides exit code 0 or 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// The threshold, or `never`.
    pub fail_on: String,
    /// Findings (unwaived fail or error results) at or above the threshold.
    pub findings_at_or_above: usize,
    pub passed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub rules: usize,
    /// Count per status (`pass`, `fail`, `error`, `not-applicable`), every status present.
    pub by_status: BTreeMap<String, usize>,
    /// Unwaived findings (fail or error) per severity, every severity present.
    pub findings_by_severity: BTreeMap<String, usize>,
    /// Results whose failure is covered by a valid waiver.
    pub waived: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading and validating baselines.
    pub baseline_ms: f64,
    /// Gathering host facts.
    pub facts_ms: f64,
    /// Running all checks (wall time; checks run in parallel).
    pub checks_ms: f64,
    pub total_ms: f64,
}

/// A valid (unexpired) waiver that covered a rule's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedWaiver {
    pub reason: String,
    /// `YYYY-MM-DD`, the last day the waiver is valid.
    pub expires: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub family: String,
    pub kind: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiver: Option<AppliedWaiver>,
    pub remediation: String,
    #[serde(default)]
    pub references: Vec<String>,
    /// The CIS recommendations the rule checks (number and server level), from the benchmark.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cis: Vec<CisRecommendation>,
    pub duration_us: u64,
}

impl RuleResult {
    pub fn new(meta: &RuleMeta, outcome: Outcome, duration_us: u64) -> RuleResult {
        RuleResult {
            id: meta.id.clone(),
            title: meta.title.clone(),
            severity: meta.severity,
            family: meta.family.clone(),
            kind: meta.kind.clone(),
            outcome,
            waiver: None,
            remediation: meta.remediation.clone(),
            references: meta.references.clone(),
            cis: meta.cis.clone(),
            duration_us,
        }
    }

    pub fn status(&self) -> Status {
        self.outcome.status()
    }

    /// A finding is a failure or an error (could not evaluate) that no valid waiver covers.
    pub fn is_finding(&self) -> bool {
        matches!(self.status(), Status::Fail | Status::Error) && self.waiver.is_none()
    }
}

/// `--fail-on`: the lowest severity that makes the run exit 1, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    AtOrAbove(Severity),
    Never,
}

impl FailOn {
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::AtOrAbove(s) => s.as_str(),
            FailOn::Never => "never",
        }
    }
    pub fn counts(self, severity: Severity) -> bool {
        match self {
            FailOn::AtOrAbove(threshold) => severity >= threshold,
            FailOn::Never => false,
        }
    }
}

impl std::str::FromStr for FailOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(FailOn::Never),
            "info" => Err("`info` is not a gate; use low, medium, high, critical or never".into()),
            other => other.parse().map(FailOn::AtOrAbove).map_err(|_| {
                format!("unknown threshold `{other}`, expected one of critical, high, medium, low, never")
            }),
        }
    }
}

impl Totals {
    pub fn compute(results: &[RuleResult]) -> Totals {
        let mut totals = Totals {
            rules: results.len(),
            by_status: Status::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            findings_by_severity: Severity::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            waived: 0,
        };
        for r in results {
            *totals
                .by_status
                .entry(r.status().as_str().to_string())
                .or_default() += 1;
            if r.is_finding() {
                *totals
                    .findings_by_severity
                    .entry(r.severity.as_str().to_string())
                    .or_default() += 1;
            }
            if r.waiver.is_some() {
                totals.waived += 1;
            }
        }
        totals
    }
}

impl Gate {
    pub fn compute(results: &[RuleResult], fail_on: FailOn) -> Gate {
        let findings_at_or_above = results
            .iter()
            .filter(|r| r.is_finding() && fail_on.counts(r.severity))
            .count();
        Gate {
            fail_on: fail_on.as_str().to_string(),
            findings_at_or_above,
            passed: findings_at_or_above == 0,
        }
    }
}

impl Report {
    /// Findings, worst first: severity descending, then errors after failures, then id.
    pub fn findings_worst_first(&self) -> Vec<&RuleResult> {
        let mut findings: Vec<&RuleResult> =
            self.results.iter().filter(|r| r.is_finding()).collect();
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.status().cmp(&b.status()))
                .then(a.id.cmp(&b.id))
        });
        findings
    }
}

/// The output formats `--format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => text::render(self),
            Format::Json => json::render(self),
            Format::Junit => junit::render(self),
        }
    }
}
