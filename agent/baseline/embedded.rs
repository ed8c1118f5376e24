//! The baselines shipped in `baseline/`, compiled into the binary so the agent needs no files beside
//! it. Adding a shipped baseline is one line in [`EMBEDDED`]; a test checks every entry parses, its
//! `[baseline] name` equals its file stem, and its `extends` resolve.

use super::layer::Layer;
use super::BaselineError;
use crate::diag::SourceFile;
use crate::host::OsRelease;

/// (file stem, TOML text). `common` applies to every Linux; distro layers extend it.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("common", include_str!("../../baseline/common.toml")),
    ("debian-12", include_str!("../../baseline/debian-12.toml")),
    (
        "ubuntu-22.04",
        include_str!("../../baseline/ubuntu-22.04.toml"),
    ),
    (
        "ubuntu-24.04",
        include_str!("../../baseline/ubuntu-24.04.toml"),
    ),
    ("rhel-9", include_str!("../../baseline/rhel-9.toml")),
    (
        "amazon-linux-2",
        include_str!("../../baseline/amazon-linux-2.toml"),
    ),
    (
        "amazon-linux-2023",
        include_str!("../../baseline/amazon-linux-2023.toml"),
    ),
];

/// The name used when no distro layer matches the sysroot's os-release.
pub const FALLBACK: &str = "common";

pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, _)| *name).collect()
}

/// Parse one embedded baseline by name; `Ok(None)` when there is no such name.
pub fn load(name: &str) -> Result<Option<Layer>, BaselineError> {
    let Some((stem, text)) = EMBEDDED.iter().find(|(stem, _)| *stem == name) else {
        return Ok(None);
    };
    parse(stem, text).map(Some)
}

fn parse(stem: &str, text: &str) -> Result<Layer, BaselineError> {
    let source = SourceFile::new(format!("baseline/{stem}.toml"), text.to_string());
    Layer::parse(source, format!("embedded:{stem}")).map_err(BaselineError::Invalid)
}

/// Every embedded baseline, parsed, in table order.
pub fn all() -> Result<Vec<Layer>, BaselineError> {
    EMBEDDED
        .iter()
        .map(|(stem, text)| parse(stem, text))
        .collect()
}

/// Just the `[baseline]` table of a file: enough to choose, without compiling any rule.
#[derive(serde::Deserialize)]
struct HeaderOnly {
    baseline: super::file::Header,
}

/// The embedded baseline for this OS: the one whose `[baseline.match]` names its ID and version
/// (a version-specific match beats an ID-only one), else [`FALLBACK`]. Only the headers are read
/// to choose; only the chosen baseline (and what it extends) is compiled.
pub fn select(os: &OsRelease) -> Result<Layer, BaselineError> {
    let mut best: Option<(u8, &str)> = None;
    for (stem, text) in EMBEDDED {
        let Ok(head) = toml::from_str::<HeaderOnly>(text) else {
            // a broken embedded baseline is reported by the full parse below if it is chosen,
            // and by the test that loads every embedded baseline
            continue;
        };
        let Some(m) = head
            .baseline
            .distro
            .as_ref()
            .filter(|m| super::layer::distro_matches(m, os))
        else {
            continue;
        };
        let score = if m.version_id.is_empty() { 1 } else { 2 };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, stem));
        }
    }
    let name = best.map_or(FALLBACK, |(_, stem)| stem);
    tracing::debug!(baseline = %name, os = %os.id, version = %os.version_id, "baseline auto-selected");
    load(name)?.ok_or_else(|| BaselineError::UnknownName {
        name: name.to_string(),
    })
}
