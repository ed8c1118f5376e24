//! What one report becomes in Systems Manager: the `PutComplianceItems` upload (one item per rule,
//! the whole set every time) and the `PutInventory` summary item, built from a finished `Report`
//! without touching the host, validated against the SSM model's limits before anything is sent
//! (the Rust SDK does not enforce them), and hashed so an unchanged report is a no-op upstream.
//!
//! Mapping (docs/ssm.md): `pass` -> COMPLIANT; `fail` and `error` ->
//! NON_COMPLIANT (an error is never a pass; its cause is in `Details.Cause`); `not-applicable` ->
//! COMPLIANT with `Details.Result = not-applicable` and the reason, so the item count in SSM equals
//! the report's rule count; a failure covered by a valid waiver -> COMPLIANT with the waiver in
//! `Details`, exactly as the exit-code gate treats it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::report::{Report, RuleResult};
use crate::rule::{Outcome, Severity, Status};

/// `Custom:` + `[A-Za-z0-9_]` only (the model's pattern is `Custom:[a-zA-Z0-9_\-]\w+`).
pub const COMPLIANCE_TYPE: &str = "Custom:Ec2Harden";
pub const RESOURCE_TYPE: &str = "ManagedInstance";
pub const INVENTORY_TYPE: &str = "Custom:Ec2HardenSummary";
pub const INVENTORY_SCHEMA_VERSION: &str = "1.0";

/// The model's limits (botocore `ssm/2014-11-06/service-2.json`).
pub mod limits {
    pub const RESOURCE_ID_MAX: usize = 100;
    pub const COMPLIANCE_TYPE_MAX: usize = 100;
    pub const EXECUTION_ID_MAX: usize = 100;
    pub const EXECUTION_TYPE_MAX: usize = 50;
    pub const ITEMS_MAX: usize = 10_000;
    pub const TITLE_MAX: usize = 500;
    pub const ATTRIBUTE_NAME_MAX: usize = 64;
    pub const ATTRIBUTE_VALUE_MAX: usize = 4096;
    pub const CONTENT_HASH_MAX: usize = 256;
    pub const INVENTORY_ATTRIBUTES_MAX: usize = 50;
    pub const TYPE_NAME_MAX: usize = 100;
    /// Not in the model: our own ceiling for all `Details` values of one upload, so a baseline of
    /// thousands of rules with long evidence stays a modest request (evidence is shortened first).
    pub const DETAILS_BUDGET: usize = 512 * 1024;
}

/// The `PutComplianceItems` request, as spooled and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceUpload {
    pub resource_id: String,
    pub resource_type: String,
    pub compliance_type: String,
    /// Seconds since the epoch (the report's start time).
    pub execution_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_type: Option<String>,
    pub items: Vec<ComplianceItem>,
    pub item_content_hash: String,
    /// Always `COMPLETE`: each call replaces every item of the type.
    pub upload_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceItem {
    pub id: String,
    pub title: String,
    /// CRITICAL, HIGH, MEDIUM, LOW or INFORMATIONAL.
    pub severity: String,
    /// COMPLIANT or NON_COMPLIANT.
    pub status: String,
    pub details: BTreeMap<String, String>,
}

/// The `PutInventory` request (one item, one content entry), as spooled and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryUpload {
    pub instance_id: String,
    pub type_name: String,
    pub schema_version: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`, no fractions (the model's pattern).
    pub capture_time: String,
    pub content_hash: String,
    pub content: BTreeMap<String, String>,
}

/// Who the report is about and what ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// `i-…` (EC2) or `mi-…` (hybrid managed node).
    pub instance_id: String,
    /// `SSM_COMMAND_ID` when run by Run Command.
    pub command_id: Option<String>,
}

/// A payload that breaks the SSM model: always our bug, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSM {operation} payload breaks the service model: {member}: {problem}")]
pub struct ModelViolation {
    pub operation: &'static str,
    pub member: String,
    pub problem: String,
}

/// Lengths as the service counts them (UTF-16 code units, never fewer than characters).
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `s` cut to at most `max` UTF-16 units, ending with a marker saying how much was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    let total = s.chars().count();
    // The marker with the largest count it can carry bounds the room left for the text.
    let room = max.saturating_sub(units(&format!(" …[truncated {total} chars]")));
    let mut out = String::new();
    let mut used = 0;
    let mut kept = 0;
    for c in s.chars() {
        if used + c.len_utf16() > room {
            break;
        }
        used += c.len_utf16();
        kept += 1;
        out.push(c);
    }
    out.push_str(&format!(" …[truncated {} chars]", total - kept));
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
        Severity::Info => "INFORMATIONAL",
    }
}

fn evidence_text(r: &RuleResult) -> Option<String> {
    let evidence = match &r.outcome {
        Outcome::Pass { evidence } | Outcome::Fail { evidence } => evidence,
        _ => return None,
    };
    let lines: Vec<String> = evidence
        .iter()
        .map(|e| {
            let mut line = String::new();
            if let Some(p) = &e.path {
                line.push_str(p);
                if let Some(n) = e.line {
                    line.push_str(&format!(":{n}"));
                }
                line.push_str(": ");
            }
            line.push_str(&e.message);
            if let Some(f) = &e.found {
                line.push_str(&format!(" (found {f}"));
                if let Some(x) = &e.expected {
                    line.push_str(&format!(", expected {x}"));
                }
                line.push(')');
            } else if let Some(x) = &e.expected {
                line.push_str(&format!(" (expected {x})"));
            }
            line
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn item(r: &RuleResult, evidence_max: usize) -> ComplianceItem {
    let mut details = BTreeMap::new();
    details.insert("Result".to_string(), r.status().as_str().to_string());
    details.insert("Family".to_string(), r.family.clone());
    if !r.cis.is_empty() {
        let numbers: Vec<&str> = r.cis.iter().map(|c| c.number.as_str()).collect();
        details.insert(
            "CIS".to_string(),
            truncate(&numbers.join(","), limits::ATTRIBUTE_VALUE_MAX),
        );
    }
    let compliant = match &r.outcome {
        Outcome::Pass { .. } => true,
        Outcome::Fail { .. } => r.waiver.is_some(),
        Outcome::NotApplicable { reason } => {
            details.insert("Reason".into(), truncate(reason, evidence_max));
            true
        }
        Outcome::Error { cause } => {
            details.insert("Cause".into(), truncate(cause, evidence_max));
            false
        }
    };
    if let Some(text) = evidence_text(r) {
        details.insert("Evidence".into(), truncate(&text, evidence_max));
    }
    if let Some(w) = &r.waiver {
        details.insert(
            "Waiver".into(),
            truncate(&w.reason, limits::ATTRIBUTE_VALUE_MAX),
        );
        details.insert("WaiverExpires".into(), w.expires.clone());
    }
    ComplianceItem {
        id: r.id.clone(),
        title: truncate(&r.title, limits::TITLE_MAX),
        severity: severity(r.severity).to_string(),
        status: if compliant {
            "COMPLIANT"
        } else {
            "NON_COMPLIANT"
        }
        .to_string(),
        details,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The RFC 3339 start time of the report as epoch seconds and as the inventory's capture time.
fn report_time(report: &Report) -> (i64, String) {
    match report.generated_at.parse::<jiff::Timestamp>() {
        Ok(ts) => (ts.as_second(), capture_time(ts)),
        Err(_) => {
            let now = jiff::Timestamp::now();
            (now.as_second(), capture_time(now))
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds.
pub fn capture_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Items for every rule, worst first when the model's 10,000-item ceiling forces a cut (then the
/// compliant items go first; the inventory says how many were left out).
fn items(report: &Report) -> (Vec<ComplianceItem>, usize) {
    let mut order: Vec<&RuleResult> = report.results.iter().collect();
    let omitted = order.len().saturating_sub(limits::ITEMS_MAX);
    if omitted > 0 {
        // Keep findings (fail/error, unwaived) and the most severe first; stable within a rank.
        order.sort_by_key(|r| (!r.is_finding(), std::cmp::Reverse(r.severity)));
        order.truncate(limits::ITEMS_MAX);
    }
    // Evidence gets an equal share of the details budget, never more than the model allows.
    let share =
        (limits::DETAILS_BUDGET / order.len().max(1)).clamp(256, limits::ATTRIBUTE_VALUE_MAX);
    (order.into_iter().map(|r| item(r, share)).collect(), omitted)
}

/// The compliance upload for `report` about `exec.instance_id`.
pub fn compliance(report: &Report, exec: &Execution) -> ComplianceUpload {
    let (items, _) = items(report);
    let (time, _) = report_time(report);
    // The hash covers exactly what SSM would store per item: same items => no-op upstream.
    let item_content_hash =
        sha256_hex(&serde_json::to_vec(&items).expect("compliance items serialize"));
    ComplianceUpload {
        resource_id: exec.instance_id.clone(),
        resource_type: RESOURCE_TYPE.into(),
        compliance_type: COMPLIANCE_TYPE.into(),
        execution_time: time,
        execution_id: exec
            .command_id
            .as_deref()
            .map(|id| truncate(id, limits::EXECUTION_ID_MAX)),
        execution_type: exec.command_id.as_ref().map(|_| "Command".to_string()),
        items,
        item_content_hash,
        upload_type: "COMPLETE".into(),
    }
}

/// The first `sha256:` digest a passing `fim` rule reports (sealed at bake, verified later).
pub fn fim_manifest_digest(report: &Report) -> Option<String> {
    report
        .results
        .iter()
        .filter(|r| r.family == "fim" && r.status() == Status::Pass)
        .find_map(|r| match &r.outcome {
            Outcome::Pass { evidence } => evidence.iter().find_map(|e| {
                e.found
                    .as_deref()
                    .filter(|f| f.starts_with("sha256:"))
                    .map(str::to_string)
            }),
            _ => None,
        })
}

/// The summary attributes (string values, at most 50) of the inventory item.
pub fn summary(report: &Report) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        c.insert(k.to_string(), truncate(&v, limits::ATTRIBUTE_VALUE_MAX));
    };
    put("AgentVersion", report.agent.version.clone());
    put("BaselineName", report.baseline.name.clone());
    put("BaselineDigest", report.baseline.digest.clone());
    put("Profile", report.profile.as_str().to_string());
    if let Some(b) = &report.benchmark {
        put("Benchmark", b.name.clone());
        put("BenchmarkVersion", b.version.clone());
    }
    put("Stage", report.stage.as_str().to_string());
    put("Rules", report.totals.rules.to_string());
    for (status, key) in [
        ("pass", "Pass"),
        ("fail", "Fail"),
        ("error", "Error"),
        ("not-applicable", "NotApplicable"),
    ] {
        put(
            key,
            report
                .totals
                .by_status
                .get(status)
                .copied()
                .unwrap_or(0)
                .to_string(),
        );
    }
    put("Waived", report.totals.waived.to_string());
    for s in Severity::ALL {
        let key = match s {
            Severity::Critical => "FindingsCritical",
            Severity::High => "FindingsHigh",
            Severity::Medium => "FindingsMedium",
            Severity::Low => "FindingsLow",
            Severity::Info => "FindingsInformational",
        };
        put(
            key,
            report
                .totals
                .findings_by_severity
                .get(s.as_str())
                .copied()
                .unwrap_or(0)
                .to_string(),
        );
    }
    put("FailOn", report.gate.fail_on.clone());
    put("GatePassed", report.gate.passed.to_string());
    put(
        "FimManifestDigest",
        fim_manifest_digest(report).unwrap_or_else(|| "none".into()),
    );
    let patch: Vec<&RuleResult> = report
        .results
        .iter()
        .filter(|r| r.family == "patch")
        .collect();
    let failing: Vec<&str> = patch
        .iter()
        .filter(|r| r.is_finding())
        .map(|r| r.id.as_str())
        .collect();
    put(
        "PatchSummary",
        if patch.is_empty() {
            "not evaluated".to_string()
        } else if failing.is_empty() {
            format!("{} rules, no findings", patch.len())
        } else {
            format!("{} rules, findings: {}", patch.len(), failing.join(", "))
        },
    );
    put(
        "Os",
        format!("{} {}", report.host.os.id, report.host.os.version_id),
    );
    put("Families", {
        let mut f: Vec<&str> = report.results.iter().map(|r| r.family.as_str()).collect();
        f.sort_unstable();
        f.dedup();
        f.join(",")
    });
    let omitted = report.results.len().saturating_sub(limits::ITEMS_MAX);
    put("ComplianceItemsOmitted", omitted.to_string());
    c
}

/// The inventory upload for `report` about `instance_id`.
pub fn inventory(report: &Report, instance_id: &str) -> InventoryUpload {
    let content = summary(report);
    let (_, capture_time) = report_time(report);
    InventoryUpload {
        instance_id: instance_id.to_string(),
        type_name: INVENTORY_TYPE.into(),
        schema_version: INVENTORY_SCHEMA_VERSION.into(),
        capture_time,
        content_hash: sha256_hex(&serde_json::to_vec(&content).expect("summary serializes")),
        content,
    }
}

fn violation(
    operation: &'static str,
    member: impl Into<String>,
    problem: String,
) -> ModelViolation {
    ModelViolation {
        operation,
        member: member.into(),
        problem,
    }
}

fn max_len(
    op: &'static str,
    member: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ModelViolation> {
    let n = units(value);
    if n < min || n > max {
        return Err(violation(
            op,
            member,
            format!("length {n}, the model allows {min}..={max}"),
        ));
    }
    Ok(())
}

/// `Custom:` followed by `[A-Za-z0-9_-]` and then word characters, at least two in all.
fn valid_custom_name(name: &str) -> bool {
    name.strip_prefix("Custom:").is_some_and(|rest| {
        let mut chars = rest.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && rest.chars().count() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `i-` + 8 or 17 word characters, or `mi-` + 17 (the model's `InstanceId` pattern).
pub fn valid_instance_id(id: &str) -> bool {
    let word = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if let Some(rest) = id.strip_prefix("mi-") {
        return rest.len() == 17 && word(rest);
    }
    id.strip_prefix("i-")
        .is_some_and(|rest| (rest.len() == 8 || rest.len() == 17) && word(rest))
}

fn valid_capture_time(t: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SSZ with the model's ranges (20xx, month 01-12, day 01-31, hour 00-23).
    let b = t.as_bytes();
    if b.len() != 20 || !t.starts_with("20") || b[19] != b'Z' || b[10] != b'T' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<u32>().ok());
    let sep = b[4] == b'-' && b[7] == b'-' && b[13] == b':' && b[16] == b':';
    sep && t[..4].bytes().all(|c| c.is_ascii_digit())
        && matches!(num(5..7), Some(1..=12))
        && matches!(num(8..10), Some(1..=31))
        && matches!(num(11..13), Some(0..=23))
        && matches!(num(14..16), Some(0..=59))
        && matches!(num(17..19), Some(0..=59))
}

impl ComplianceUpload {
    /// Every limit of `PutComplianceItemsRequest` the model states.
    pub fn validate(&self) -> Result<(), ModelViolation> {
        const OP: &str = "PutComplianceItems";
        max_len(
            OP,
            "ResourceId",
            &self.resource_id,
            1,
            limits::RESOURCE_ID_MAX,
        )?;
        max_len(OP, "ResourceType", &self.resource_type, 1, 50)?;
        max_len(
            OP,
            "ComplianceType",
            &self.compliance_type,
            1,
            limits::COMPLIANCE_TYPE_MAX,
        )?;
        if !valid_custom_name(&self.compliance_type) {
            return Err(violation(
                OP,
                "ComplianceType",
                format!("`{}` is not Custom:[A-Za-z0-9_]+", self.compliance_type),
            ));
        }
        if let Some(id) = &self.execution_id {
            max_len(
                OP,
                "ExecutionSummary.ExecutionId",
                id,
                0,
                limits::EXECUTION_ID_MAX,
            )?;
        }
        if let Some(t) = &self.execution_type {
            max_len(
                OP,
                "ExecutionSummary.ExecutionType",
                t,
                0,
                limits::EXECUTION_TYPE_MAX,
            )?;
        }
        if self.items.len() > limits::ITEMS_MAX {
            return Err(violation(
                OP,
                "Items",
                format!(
                    "{} items, the model allows {}",
                    self.items.len(),
                    limits::ITEMS_MAX
                ),
            ));
        }
        max_len(
            OP,
            "ItemContentHash",
            &self.item_content_hash,
            0,
            limits::CONTENT_HASH_MAX,
        )?;
        if !matches!(self.upload_type.as_str(), "COMPLETE" | "PARTIAL") {
            return Err(violation(
                OP,
                "UploadType",
                format!("`{}`", self.upload_type),
            ));
        }
        for (i, item) in self.items.iter().enumerate() {
            let at = |m: &str| format!("Items[{i}] ({}).{m}", item.id);
            max_len(OP, &at("Title"), &item.title, 0, limits::TITLE_MAX)?;
            if !matches!(
                item.severity.as_str(),
                "CRITICAL" | "HIGH" | "MEDIUM" | "LOW" | "INFORMATIONAL" | "UNSPECIFIED"
            ) {
                return Err(violation(
                    OP,
                    at("Severity"),
                    format!("`{}`", item.severity),
                ));
            }
            if !matches!(item.status.as_str(), "COMPLIANT" | "NON_COMPLIANT") {
                return Err(violation(OP, at("Status"), format!("`{}`", item.status)));
            }
            for (k, v) in &item.details {
                max_len(OP, &at("Details key"), k, 1, limits::ATTRIBUTE_NAME_MAX)?;
                max_len(
                    OP,
                    &at(&format!("Details.{k}")),
                    v,
                    0,
                    limits::ATTRIBUTE_VALUE_MAX,
                )?;
            }
        }
        Ok(())
    }
}

impl InventoryUpload {
    /// Every limit of `PutInventoryRequest` the model states, for our one item.
    pub fn validate(&self) -> Result<(), ModelViolation> {
        const OP: &str = "PutInventory";
        if !valid_instance_id(&self.instance_id) {
            return Err(violation(
                OP,
                "InstanceId",
                format!(
                    "`{}` is not i-XXXXXXXX(XXXXXXXXX) or mi-XXXXXXXXXXXXXXXXX",
                    self.instance_id
                ),
            ));
        }
        max_len(
            OP,
            "Items[0].TypeName",
            &self.type_name,
            1,
            limits::TYPE_NAME_MAX,
        )?;
        if !valid_custom_name(&self.type_name) {
            return Err(violation(
                OP,
                "Items[0].TypeName",
                format!("`{}` is not Custom:[A-Za-z0-9_]+", self.type_name),
            ));
        }
        let v: Vec<&str> = self.schema_version.split('.').collect();
        if v.len() != 2
            || v.iter()
                .any(|p| p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(violation(
                OP,
                "Items[0].SchemaVersion",
                format!("`{}` is not N.N", self.schema_version),
            ));
        }
        if !valid_capture_time(&self.capture_time) {
            return Err(violation(
                OP,
                "Items[0].CaptureTime",
                format!("`{}` is not YYYY-MM-DDTHH:MM:SSZ", self.capture_time),
            ));
        }
        max_len(
            OP,
            "Items[0].ContentHash",
            &self.content_hash,
            0,
            limits::CONTENT_HASH_MAX,
        )?;
        if self.content.len() > limits::INVENTORY_ATTRIBUTES_MAX {
            return Err(violation(
                OP,
                "Items[0].Content[0]",
                format!(
                    "{} attributes, the model allows {}",
                    self.content.len(),
                    limits::INVENTORY_ATTRIBUTES_MAX
                ),
            ));
        }
        for (k, v) in &self.content {
            max_len(
                OP,
                "Items[0].Content[0] key",
                k,
                1,
                limits::ATTRIBUTE_NAME_MAX,
            )?;
            max_len(
                OP,
                &format!("Items[0].Content[0].{k}"),
                v,
                0,
                limits::ATTRIBUTE_VALUE_MAX,
            )?;
        }
        Ok(())
    }

    /// The custom inventory file the SSM agent collects (`AWS-GatherSoftwareInventory`):
    /// `{"SchemaVersion","TypeName","Content"}` with string values only.
    pub fn agent_file(&self) -> String {
        let doc = serde_json::json!({
            "SchemaVersion": self.schema_version,
            "TypeName": self.type_name,
            "Content": self.content,
        });
        serde_json::to_string_pretty(&doc).expect("inventory serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{report_with_findings_of, sample_report};

    fn exec() -> Execution {
        Execution {
            instance_id: "i-0123456789abcdef0".into(),
            command_id: Some("0b9d1c2e-3f4a-4b5c-8d6e-7f8091a2b3c4".into()),
        }
    }

    #[test]
    fn every_rule_is_one_item_with_its_status_mapped() {
        let report = sample_report();
        let up = compliance(&report, &exec());
        up.validate().unwrap();
        assert_eq!(up.items.len(), report.results.len());
        assert_eq!(up.compliance_type, "Custom:Ec2Harden");
        assert_eq!(up.upload_type, "COMPLETE");
        assert_eq!(up.execution_type.as_deref(), Some("Command"));
        for (item, r) in up.items.iter().zip(&report.results) {
            assert_eq!(item.id, r.id);
            assert_eq!(item.details["Result"], r.status().as_str());
            let expected = match r.status() {
                Status::Pass | Status::NotApplicable => "COMPLIANT",
                Status::Fail if r.waiver.is_some() => "COMPLIANT",
                Status::Fail | Status::Error => "NON_COMPLIANT",
            };
            assert_eq!(item.status, expected, "{}", r.id);
            match &r.outcome {
                Outcome::Error { cause } => assert_eq!(&item.details["Cause"], cause),
                Outcome::NotApplicable { reason } => assert_eq!(&item.details["Reason"], reason),
                _ => {}
            }
            if r.waiver.is_some() {
                assert!(item.details.contains_key("Waiver"));
            }
        }
        let severities: Vec<&str> = up.items.iter().map(|i| i.severity.as_str()).collect();
        assert!(severities
            .iter()
            .all(|s| ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"].contains(s)));
    }

    #[test]
    fn the_hash_changes_with_the_items_and_not_with_the_time() {
        let a = sample_report();
        let mut b = a.clone();
        b.generated_at = "2031-01-01T00:00:00Z".into();
        assert_eq!(
            compliance(&a, &exec()).item_content_hash,
            compliance(&b, &exec()).item_content_hash
        );
        assert_eq!(
            inventory(&a, "i-0123456789abcdef0").content_hash,
            inventory(&b, "i-0123456789abcdef0").content_hash
        );
        b.results[0].title.push('!');
        assert_ne!(
            compliance(&a, &exec()).item_content_hash,
            compliance(&b, &exec()).item_content_hash
        );
    }

    #[test]
    fn long_evidence_and_titles_are_cut_with_a_marker_within_the_model() {
        let mut report = report_with_findings_of(40, 5_000, 'é');
        report.results[0].title = "t".repeat(900);
        // Characters outside the BMP count twice for the service (UTF-16).
        report.results[1].title = "🔒".repeat(400);
        let up = compliance(&report, &exec());
        up.validate().unwrap();
        assert!(
            up.items[0].title.ends_with("chars]"),
            "{}",
            up.items[0].title
        );
        let evidence = &up.items[2].details["Evidence"];
        assert!(evidence.contains("…[truncated"), "{evidence}");
        assert!(evidence.encode_utf16().count() <= limits::ATTRIBUTE_VALUE_MAX);
    }

    #[test]
    fn ten_thousand_and_more_rules_never_break_the_item_limit() {
        let report = report_with_findings_of(10_250, 5_000, 'x');
        let up = compliance(&report, &exec());
        up.validate().unwrap();
        assert_eq!(up.items.len(), limits::ITEMS_MAX);
        let details: usize = up
            .items
            .iter()
            .flat_map(|i| i.details.values())
            .map(|v| v.len())
            .sum();
        assert!(
            details <= limits::DETAILS_BUDGET + up.items.len() * 300,
            "{details}"
        );
        let inv = inventory(&report, "i-0123456789abcdef0");
        inv.validate().unwrap();
        assert_eq!(inv.content["ComplianceItemsOmitted"], "250");
    }

    #[test]
    fn truncate_keeps_short_text_and_bounds_long_text() {
        assert_eq!(truncate("short", 10), "short");
        for max in [30, 64, 100, 4096] {
            let cut = truncate(&"a".repeat(10_000), max);
            assert!(cut.encode_utf16().count() <= max, "{max}: {cut}");
            assert!(cut.ends_with("chars]"));
        }
    }

    #[test]
    fn inventory_is_a_flat_string_summary_within_the_model() {
        let report = sample_report();
        let inv = inventory(&report, "mi-0123456789abcdef0");
        inv.validate().unwrap();
        assert_eq!(inv.type_name, "Custom:Ec2HardenSummary");
        assert!(inv.content.len() <= limits::INVENTORY_ATTRIBUTES_MAX);
        assert_eq!(inv.content["Rules"], report.totals.rules.to_string());
        assert_eq!(inv.content["BaselineDigest"], report.baseline.digest);
        assert_eq!(inv.capture_time.len(), 20);
        let file: serde_json::Value = serde_json::from_str(&inv.agent_file()).unwrap();
        assert_eq!(file["TypeName"], "Custom:Ec2HardenSummary");
        assert!(file["Content"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string()));
    }

    #[test]
    fn validation_catches_what_the_sdk_would_let_through() {
        let report = sample_report();
        let mut up = compliance(&report, &exec());
        up.compliance_type = "Custom:bad-name!".into();
        assert!(up
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ComplianceType"));
        let mut up = compliance(&report, &exec());
        up.items[0].title = "x".repeat(501);
        assert!(up.validate().unwrap_err().to_string().contains("Title"));
        let mut up = compliance(&report, &exec());
        up.items[0].severity = "SEVERE".into();
        assert!(up.validate().unwrap_err().to_string().contains("Severity"));
        let mut inv = inventory(&report, "i-0123456789abcdef0");
        inv.capture_time = "2026-11-29T10:00:00.123Z".into();
        assert!(inv
            .validate()
            .unwrap_err()
            .to_string()
            .contains("CaptureTime"));
        for bad in ["i-123", "mi-0123", "x-0123456789abcdef0", ""] {
            assert!(inventory(&report, bad).validate().is_err(), "{bad}");
        }
        for good in ["i-01234567", "i-0123456789abcdef0", "mi-0123456789abcdef0"] {
            assert!(valid_instance_id(good), "{good}");
        }
    }
}
