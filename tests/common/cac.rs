//! What the suites that compare with ComplianceAsCode share (tests/openscap.rs, tests/scenarios.rs):
//! where the pinned reference content is, the mapping of CaC rules to ours, the CaC rules whose
//! ec2-harden rules are alternatives, the checks every entry of a differences file must pass, and
//! the one-line summary of a rule's evidence their messages print.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `../shared/reference/` beside the project (see its README): ComplianceAsCode's source tarball
/// and prebuilt data streams.
pub fn reference_dir() -> PathBuf {
    super::repo().join("../shared/reference")
}

/// A TOML file of the repository, parsed; a missing or malformed one names the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(rel: &str) -> T {
    let path = super::repo().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct Mapping {
    rules: BTreeMap<String, Vec<String>>,
}

/// `tests/cis/cac-rules.toml` [rules]: CaC rule id -> ec2-harden rule ids.
pub fn mapping() -> BTreeMap<String, Vec<String>> {
    read_toml::<Mapping>("tests/cis/cac-rules.toml").rules
}

/// CaC rules whose ec2-harden rules are alternatives, so the CaC rule passes when any of them
/// passes. `selinux_not_disabled` is met by SELinux enforcing or permissive; of its two rules
/// `selinux-not-disabled` is that check and `selinux-enforcing` the stricter one (see the rule's
/// note in the mapping). Every other mapping lists the parts of one state (the three login
/// records, the two sudoers paths, the grub.cfg of each layout), so the CaC rule passes when every
/// ec2-harden rule that decides passes.
pub const ANY_OF: &[&str] = &["selinux_not_disabled"];

/// The problems of one entry of a differences file: its CaC rule must be mapped, to exactly the
/// rules it lists; its category one of `categories`; its reason given; its occurrences not none.
pub fn entry_problems(
    mapping: &BTreeMap<String, Vec<String>>,
    cac: &str,
    ours: &[String],
    category: &str,
    categories: &[&str],
    reason: &str,
    occurrences: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    match mapping.get(cac) {
        None => problems.push(format!("{cac}: not a CaC rule of the mapping")),
        Some(mapped) if mapped != ours => problems.push(format!(
            "{cac}: ours = {ours:?}, the mapping says {mapped:?}"
        )),
        Some(_) => {}
    }
    if !categories.contains(&category) {
        problems.push(format!(
            "{cac}: category `{category}` is not one of {categories:?}"
        ));
    }
    if reason.trim().is_empty() {
        problems.push(format!("{cac}: no reason"));
    }
    if occurrences == 0 {
        problems.push(format!("{cac}: no occurrence listed"));
    }
    problems
}

/// A rule result's evidence on one line: the first `shown` items as `PATH:LINE: message (found
/// X, expected Y)`, then how many more there are.
pub fn evidence_line(result: &serde_json::Value, shown: usize) -> String {
    let items = result["evidence"].as_array().cloned().unwrap_or_default();
    let mut parts: Vec<String> = items
        .iter()
        .take(shown)
        .map(|e| {
            let mut s = String::new();
            if let Some(p) = e["path"].as_str() {
                s.push_str(p);
                if let Some(l) = e["line"].as_u64() {
                    s.push_str(&format!(":{l}"));
                }
                s.push_str(": ");
            }
            s.push_str(e["message"].as_str().unwrap_or_default());
            if let Some(f) = e["found"].as_str() {
                s.push_str(&format!(" (found {f:?}"));
                if let Some(x) = e["expected"].as_str() {
                    s.push_str(&format!(", expected {x}"));
                }
                s.push(')');
            }
            s
        })
        .collect();
    if items.len() > shown {
        parts.push(format!("... {} more", items.len() - shown));
    }
    parts.join("; ")
}
