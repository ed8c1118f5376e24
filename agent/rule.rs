//! The words every layer shares about a rule: its metadata (id, title, severity, stages, family,
//! rationale, remediation, references, where it was defined), the evidence behind a verdict and the
//! outcome of evaluating it. This module imports nothing from the rest of the crate; the compiled
//! check a rule carries is [`crate::checks::Rule`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad a failing rule is. Ordered from least to most severe, so `a > b` means "worse".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown severity `{s}`, expected one of critical, high, medium, low, info")
            })
    }
}

/// When in a host's life a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Inside the image build (Packer, Image Builder), before the AMI is created.
    Bake,
    /// First boot, from cloud-init user data.
    Boot,
    /// Any time later: SSM Run Command, State Manager, a timer, by hand.
    Run,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Bake, Stage::Boot, Stage::Run];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Bake => "bake",
            Stage::Boot => "boot",
            Stage::Run => "run",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule was defined: the baseline file (or embedded name) and line, for messages and `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Everything about a rule except how it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMeta {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub stages: Vec<Stage>,
    /// The check family (`files`, `ssh`, `kernel`, ...) that `--only` selects on.
    pub family: String,
    /// The rule kind: the `[[kind]]` table it was written as, or a built-in family's name.
    pub kind: String,
    pub rationale: String,
    pub remediation: String,
    pub references: Vec<String>,
    /// The recommendations of the baseline's CIS benchmark this rule checks (empty: none, or the
    /// baseline has no benchmark). Filled from the benchmark's recommendation list, not from the
    /// rule's own table, so one common rule carries each distribution's numbers.
    pub cis: Vec<CisRecommendation>,
    pub origin: Origin,
}

impl RuleMeta {
    pub fn applies_to(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    /// The lowest CIS server level of the recommendations this rule checks: 1 when any is a
    /// Level 1 recommendation, 2 when all are Level 2, `None` when it checks none.
    pub fn cis_level(&self) -> Option<u8> {
        self.cis.iter().map(|r| r.level).min()
    }
}

/// One recommendation of a CIS benchmark as a rule cites it: its number and its server level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CisRecommendation {
    /// The recommendation's number in the benchmark, e.g. `5.1.20`.
    pub number: String,
    /// 1 (Level 1 Server) or 2 (Level 2 Server).
    pub level: u8,
}

/// Which rules a run selects and how settings are judged: the CIS Benchmark's server profiles, or
/// the EC2 profile (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every rule of the baseline: the CIS rules of both levels, the EC2-native families (IMDS,
    /// credentials, FIM, encryption, patches, image hygiene, firewall) and hardening beyond CIS;
    /// settings judged by their effect (a compliant built-in default passes).
    #[default]
    Ec2,
    /// The rules that check a Level 1 Server recommendation, judged as the benchmark's audit
    /// procedure does (a setting it requires written down must be written down).
    CisLevel1Server,
    /// Level 1 and Level 2 Server recommendations, judged as the benchmark's audit does.
    CisLevel2Server,
}

impl Profile {
    pub const ALL: [Profile; 3] = [
        Profile::Ec2,
        Profile::CisLevel1Server,
        Profile::CisLevel2Server,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Ec2 => "ec2",
            Profile::CisLevel1Server => "cis-level1-server",
            Profile::CisLevel2Server => "cis-level2-server",
        }
    }

    /// The CIS profile's name as the benchmark writes it (`Level 1 - Server`), `None` for EC2.
    pub fn cis_name(self) -> Option<&'static str> {
        match self {
            Profile::Ec2 => None,
            Profile::CisLevel1Server => Some("Level 1 - Server"),
            Profile::CisLevel2Server => Some("Level 2 - Server"),
        }
    }

    /// A CIS profile: rules are selected by their recommendations' levels and settings are judged
    /// by the letter of the benchmark's audit.
    pub fn is_cis(self) -> bool {
        self != Profile::Ec2
    }

    /// Whether a rule runs under this profile.
    pub fn selects(self, meta: &RuleMeta) -> bool {
        match self {
            Profile::Ec2 => true,
            Profile::CisLevel1Server => meta.cis_level() == Some(1),
            Profile::CisLevel2Server => meta.cis_level().is_some(),
        }
    }

    /// How the run judges a setting with a built-in default.
    pub fn settings(self) -> Settings {
        if self.is_cis() {
            Settings::Explicit
        } else {
            Settings::Effective
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown profile `{s}`, expected one of ec2, cis-level1-server, cis-level2-server")
            })
    }
}

/// Whether a setting the configuration leaves out counts with its built-in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// The effective state decides: an unset key with a compliant default passes (EC2 profile).
    Effective,
    /// The benchmark's audit procedure decides: a setting it requires written must be written,
    /// whatever the default (CIS profiles).
    Explicit,
}

/// One piece of evidence behind an outcome: where it was seen and what was found versus expected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The path inside the sysroot (as the host being audited sees it, e.g. `/etc/shadow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    pub message: String,
}

impl Evidence {
    pub fn new(message: impl Into<String>) -> Self {
        Evidence {
            message: message.into(),
            ..Evidence::default()
        }
    }
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
    pub fn line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            f.write_str(path)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        match (&self.found, &self.expected) {
            (Some(found), Some(expected)) => write!(f, " (found {found}, expected {expected})"),
            (Some(found), None) => write!(f, " (found {found})"),
            (None, Some(expected)) => write!(f, " (expected {expected})"),
            (None, None) => Ok(()),
        }
    }
}

/// The result of evaluating one rule. `Error` means "could not evaluate" and never counts as a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Pass { evidence: Vec<Evidence> },
    Fail { evidence: Vec<Evidence> },
    NotApplicable { reason: String },
    Error { cause: String },
}

impl Outcome {
    pub fn pass(evidence: Evidence) -> Self {
        Outcome::Pass {
            evidence: vec![evidence],
        }
    }
    pub fn fail(evidence: Evidence) -> Self {
        Outcome::Fail {
            evidence: vec![evidence],
        }
    }
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Outcome::NotApplicable {
            reason: reason.into(),
        }
    }
    pub fn error(cause: impl fmt::Display) -> Self {
        Outcome::Error {
            cause: cause.to_string(),
        }
    }
    pub fn status(&self) -> Status {
        match self {
            Outcome::Pass { .. } => Status::Pass,
            Outcome::Fail { .. } => Status::Fail,
            Outcome::NotApplicable { .. } => Status::NotApplicable,
            Outcome::Error { .. } => Status::Error,
        }
    }
    /// Combine per-item outcomes of one rule (e.g. one per file matched by a glob): any error makes
    /// the whole an error, else any fail a fail (evidence of all failures kept), else pass. An empty
    /// list or an all-not-applicable list is not applicable with `empty_reason`.
    pub fn combine(outcomes: Vec<Outcome>, empty_reason: &str) -> Outcome {
        let mut pass = Vec::new();
        let mut fail = Vec::new();
        let mut errors = Vec::new();
        let mut na = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Pass { evidence } => pass.extend(evidence),
                Outcome::Fail { evidence } => fail.extend(evidence),
                Outcome::Error { cause } => errors.push(cause),
                Outcome::NotApplicable { reason } => na.push(reason),
            }
        }
        if !errors.is_empty() {
            Outcome::Error {
                cause: errors.join("; "),
            }
        } else if !fail.is_empty() {
            Outcome::Fail { evidence: fail }
        } else if !pass.is_empty() {
            Outcome::Pass { evidence: pass }
        } else if na.is_empty() {
            Outcome::not_applicable(empty_reason)
        } else {
            Outcome::NotApplicable {
                reason: na.join("; "),
            }
        }
    }
}

/// The most characters one evidence field or error cause keeps: a hostile or broken file must not
/// fill a report (or SSM, or a terminal) with megabytes of its content.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Text that may come from the audited system, made safe to show: control characters other than
/// newline and tab written as `\u{..}` escapes (no terminal escape sequences reach a log or a
/// text report), and at most about [`MAX_TEXT_CHARS`] characters: beyond that the middle is cut
/// (the head and the tail kept, a message usually ending with what matters) and the cut said.
pub fn bounded_text(text: &str) -> std::borrow::Cow<'_, str> {
    bounded_to(text, MAX_TEXT_CHARS)
}

/// The most characters an evidence path keeps: the tree walk reports paths of up to 32 KiB.
pub const MAX_PATH_CHARS: usize = 33 * 1024;

fn bounded_to(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if text.len() <= max && !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len().min(max * 2));
    for c in text.chars() {
        if unsafe_char(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    let chars = escaped.chars().count();
    if chars <= max {
        return std::borrow::Cow::Owned(escaped);
    }
    // keep the head and the tail (a message usually ends with what matters), cut the middle
    let keep = max / 2;
    let head_end = escaped
        .char_indices()
        .nth(keep)
        .map_or(escaped.len(), |(i, _)| i);
    let tail_start = escaped
        .char_indices()
        .nth(chars - keep)
        .map_or(escaped.len(), |(i, _)| i);
    let cut = tail_start - head_end;
    std::borrow::Cow::Owned(format!(
        "{} … [{cut} bytes cut] … {}",
        &escaped[..head_end],
        &escaped[tail_start..]
    ))
}

/// Replace `text` with its bounded form (to `max` characters) when that differs.
fn bound(text: &mut String, max: usize) {
    if let std::borrow::Cow::Owned(b) = bounded_to(text, max) {
        *text = b;
    }
}

impl Evidence {
    /// Every field through [`bounded_text`] (the path to [`MAX_PATH_CHARS`]).
    pub fn bounded(mut self) -> Evidence {
        if let Some(path) = &mut self.path {
            bound(path, MAX_PATH_CHARS);
        }
        for field in [&mut self.found, &mut self.expected].into_iter().flatten() {
            bound(field, MAX_TEXT_CHARS);
        }
        bound(&mut self.message, MAX_TEXT_CHARS);
        self
    }
}

impl Outcome {
    /// Every text of the outcome through [`bounded_text`].
    pub fn bounded(self) -> Outcome {
        match self {
            Outcome::Pass { evidence } => Outcome::Pass {
                evidence: evidence.into_iter().map(Evidence::bounded).collect(),
            },
            Outcome::Fail { evidence } => Outcome::Fail {
                evidence: evidence.into_iter().map(Evidence::bounded).collect(),
            },
            Outcome::NotApplicable { mut reason } => {
                bound(&mut reason, MAX_TEXT_CHARS);
                Outcome::NotApplicable { reason }
            }
            Outcome::Error { mut cause } => {
                bound(&mut cause, MAX_TEXT_CHARS);
                Outcome::Error { cause }
            }
        }
    }
}

/// The outcome without its payload, for counting and sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Fail,
    Error,
    Pass,
    NotApplicable,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Fail,
        Status::Error,
        Status::Pass,
        Status::NotApplicable,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotApplicable => "not-applicable",
            Status::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_host_is_bounded_and_has_no_control_characters() {
        assert!(matches!(
            bounded_text("plain\ttext\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(bounded_text("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        let huge = "x".repeat(2 * 1024 * 1024);
        let b = bounded_text(&huge);
        assert!(b.len() < MAX_TEXT_CHARS + 40, "{}", b.len());
        assert!(
            b.contains(&format!(
                " … [{} bytes cut] … ",
                huge.len() - MAX_TEXT_CHARS
            )),
            "{b}"
        );
        // the end of a long message survives
        let long = format!("{} the reason", "p/".repeat(10_000));
        assert!(bounded_text(&long).ends_with("/ the reason"));
        let cause = format!("dpkg status: bad line `{}`", "\u{0}\u{7f}é".repeat(100_000));
        let Outcome::Error { cause } = Outcome::error(cause).bounded() else {
            unreachable!()
        };
        assert!(cause.chars().count() < MAX_TEXT_CHARS + 40);
        assert!(!cause.chars().any(|c| c.is_control()), "{cause}");
    }
}
