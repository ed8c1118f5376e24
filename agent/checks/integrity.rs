//! `[[integrity]]`: the `fim` family inside `check`. At stage bake a `seal` rule writes the
//! file-integrity manifest of the sysroot (the baseline's `[fim]` policy; by default
//! `/var/lib/ec2-harden/manifest` inside the root being baked). At boot and run, a `manifest`
//! rule says whether a trustworthy manifest is there (present, well-formed, its own digest
//! intact, and equal to `--fim-expect-digest` when one is pinned), and `changes` rules report
//! the added, removed and changed entries of one severity each, so `--fail-on` gates file
//! integrity like any other finding: a replaced binary in `/usr/sbin` is critical, a new file
//! under `/srv` low.
//!
//! All rules of a run share one seal and one verify (through the run cache): the tree is walked
//! and hashed once, however many rules read the result, on a pool of its own
//! ([`fim::isolated`]: hashing on the pool the rules run on could deadlock them).

use std::sync::Arc;

use serde::Deserialize;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::fim::{self, entry::hex, FimError, VerifyReport};
use crate::rule::{Evidence, Outcome, Severity};

/// How many changes a `changes` rule lists as evidence; the rest are counted.
pub const MAX_EVIDENCE: usize = 50;

/// What an `[[integrity]]` rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Write the manifest (stage bake).
    Seal,
    /// A trustworthy manifest is there (stages boot, run).
    Manifest,
    /// No changes of the listed severities since the manifest was sealed.
    Changes,
}

rule_params! {
    /// TOML parameters of `[[integrity]]`.
    pub struct Integrity {
        /// seal, manifest or changes.
        pub check: Action,
        /// For `changes`: which change severities this rule reports (default: the rule's own).
        #[serde(default)]
        pub changes: Option<toml::Spanned<Vec<Severity>>>,
    }
}

/// A compiled `[[integrity]]` rule.
#[derive(Debug)]
pub struct IntegrityCheck {
    action: Action,
    severities: Vec<Severity>,
}

impl CompileCheck for Integrity {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let severities = match (&self.changes, self.check) {
            (Some(list), Action::Changes) if list.get_ref().is_empty() => {
                diags.error(list.span(), "`changes` must list at least one severity");
                return None;
            }
            (Some(list), Action::Changes) => list.get_ref().clone(),
            (Some(list), _) => {
                diags.error(
                    list.span(),
                    "`changes` only applies to rules with `check = \"changes\"`",
                );
                return None;
            }
            (None, _) => vec![self.severity],
        };
        Some(Box::new(IntegrityCheck {
            action: self.check,
            severities,
        }))
    }
}

/// The one seal of a run.
struct Sealed(Result<fim::InitSummary, FimError>);

/// The one verify of a run.
struct Verified(Result<VerifyReport, FimError>);

fn seal(cx: &Context<'_>) -> Arc<Sealed> {
    cx.cache.get(|| {
        Sealed(fim::isolated(|| {
            fim::init(
                cx.sysroot,
                &fim::InitOptions {
                    manifest: cx.fim.manifest.as_deref(),
                    baseline: cx.fim.baseline.as_deref(),
                    policy: &cx.fim.policy,
                },
            )
        }))
    })
}

fn verified(cx: &Context<'_>) -> Arc<Verified> {
    cx.cache.get(|| {
        Verified(fim::isolated(|| {
            fim::verify(
                cx.sysroot,
                &fim::VerifyOptions {
                    manifest: cx.fim.manifest.as_deref(),
                    expect_digest: cx.fim.expect_digest,
                    policy: None,
                },
            )
        }))
    })
}

/// The manifest's path as the audited host sees it when it lies inside the sysroot (the usual
/// case), else its host path.
fn shown(cx: &Context<'_>, path: &std::path::Path) -> String {
    match path.strip_prefix(cx.sysroot.root()) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

/// True for errors that say the manifest cannot be trusted (as opposed to failing to read).
fn untrusted(e: &FimError) -> bool {
    matches!(
        e,
        FimError::ManifestMissing { .. }
            | FimError::Manifest { .. }
            | FimError::DigestMismatch { .. }
    )
}

impl Check for IntegrityCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        match self.action {
            Action::Seal => match &seal(cx).0 {
                Ok(s) => Outcome::pass(
                    Evidence::new(format!(
                        "sealed {} entries ({} files, {} bytes hashed, {} unreadable) in {:.2} s",
                        s.entries, s.files_hashed, s.bytes_hashed, s.errors, s.seconds
                    ))
                    .path(shown(cx, &s.manifest))
                    .found(format!("sha256:{}", hex(&s.digest))),
                ),
                Err(e) => Outcome::error(e),
            },
            Action::Manifest => match &verified(cx).0 {
                Ok(r) => {
                    let m = &r.manifest;
                    let pinned = if cx.fim.expect_digest.is_some() {
                        "matches the pinned digest"
                    } else {
                        "digest not pinned (--fim-expect-digest)"
                    };
                    Outcome::pass(
                        Evidence::new(format!(
                            "intact: sealed {} by {}, {} entries; {pinned}",
                            m.header.created, m.header.agent, m.entries
                        ))
                        .path(shown(cx, &m.path))
                        .found(format!("sha256:{}", hex(&m.digest))),
                    )
                }
                Err(e) if untrusted(e) => Outcome::fail(Evidence::new(e.to_string())),
                Err(e) => Outcome::error(e),
            },
            Action::Changes => match &verified(cx).0 {
                Ok(r) => self.judge(r),
                Err(e) if untrusted(e) => Outcome::not_applicable(format!(
                    "no trustworthy manifest to compare with (the `manifest` rule reports it): {e}"
                )),
                Err(e) => Outcome::error(e),
            },
        }
    }
}

impl IntegrityCheck {
    fn judge(&self, report: &VerifyReport) -> Outcome {
        let wanted = |s: Severity| self.severities.contains(&s);
        let selected: Vec<_> = report
            .changes
            .iter()
            .filter(|c| wanted(c.severity))
            .collect();
        let names: Vec<&str> = self.severities.iter().map(|s| s.as_str()).collect();
        if selected.is_empty() {
            return Outcome::pass(Evidence::new(format!(
                "no {} changes among {} entries checked against the manifest sealed {}",
                names.join("/"),
                report.entries_checked,
                report.manifest.header.created
            )));
        }
        let mut evidence: Vec<Evidence> = selected
            .iter()
            .take(MAX_EVIDENCE)
            .map(|c| {
                Evidence::new(c.kind.as_str())
                    .path(c.display_path())
                    .found(c.detail())
            })
            .collect();
        if selected.len() > MAX_EVIDENCE {
            evidence.push(Evidence::new(format!(
                "... and {} more (run `ec2-harden fim verify` for the full list)",
                selected.len() - MAX_EVIDENCE
            )));
        }
        Outcome::Fail { evidence }
    }
}
