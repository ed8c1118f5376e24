//! `[[static_credentials]]`: static AWS access keys left on disk, the `credentials` family.
//!
//! An instance gets short-lived credentials from its IAM role through IMDS; a key pasted into a
//! file is copied into every AMI and snapshot, never rotates, and outlives the person who put it
//! there. The scan of the places keys end up is [`crate::host::credentials`] (one per run, shared by
//! every rule of the kind through the run cache); this kind judges its hits. A file that exists
//! and cannot be read, or one cut at the scan limit, is an error naming it; evidence is always
//! redacted (`AKIA****MPLE`, the file and the line; never a secret).
//!
//! Severity: a long-term (`AKIA`) key is `high` everywhere; the same finding is `critical` on a host
//! that has an instance role (the key is not even needed there). Rules with
//! `instance_role = "attached"` evaluate only when the host is known to have a role: from this
//! run's IMDS answer (`iam/info`), else cloud-init's `/run/cloud-init/instance-data.json` (its
//! crawl of IMDS at boot, `ds.meta_data.iam`), on a live sysroot; hosts where neither says
//! anything stay at `high` through the plain rule.

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::credentials::{instance_role, CredentialScan, HitKind, InstanceRole};
use crate::host::systemd::UnitIndex;
use crate::rule::{Evidence, Outcome};

/// What a rule of the kind looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialFind {
    /// `AKIA...` access key ids: an IAM user's long-term key.
    LongTermKeys,
    /// `ASIA...` access key ids: temporary (STS) credentials copied onto disk.
    TemporaryKeys,
    /// `aws_secret_access_key` assignments with a value.
    SecretKeys,
    /// Credential files (`~/.aws/credentials`, and any scanned file holding a key id or secret)
    /// that every local user can read.
    WorldReadableFiles,
}

/// When a rule of the kind applies, by what is known about the host's instance role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleCondition {
    /// Always.
    #[default]
    Any,
    /// Only when the host is known to have an instance role; not applicable otherwise.
    Attached,
}

rule_params! {
    /// TOML parameters of `[[static_credentials]]`.
    pub struct StaticCredentials {
        pub find: CredentialFind,
        #[serde(default)]
        pub instance_role: RoleCondition,
        /// More in-root globs to scan (Docker Compose `.env` files, application configs).
        #[serde(default)]
        pub extra_paths: Vec<Spanned<String>>,
    }
}

#[derive(Debug)]
pub struct StaticCredentialsCheck {
    find: CredentialFind,
    instance_role: RoleCondition,
    extra_paths: Vec<String>,
}

impl CompileCheck for StaticCredentials {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        for p in &self.extra_paths {
            super::validate_path(diags, p);
        }
        if diags.errors_since(mark) {
            return None;
        }
        let mut extra_paths: Vec<String> = self
            .extra_paths
            .iter()
            .map(|p| p.get_ref().clone())
            .collect();
        extra_paths.sort();
        Some(Box::new(StaticCredentialsCheck {
            find: self.find,
            instance_role: self.instance_role,
            extra_paths,
        }))
    }
}

impl StaticCredentialsCheck {
    fn evidence(&self, scan: &CredentialScan) -> Vec<Evidence> {
        let mut out = Vec::new();
        for f in &scan.files {
            match self.find {
                CredentialFind::WorldReadableFiles => {
                    let holds = f.aws_credentials_file || !f.hits.is_empty();
                    if holds && f.world_readable {
                        out.push(
                            Evidence::new(format!(
                                "{} readable by every local user{}",
                                f.why,
                                if f.hits.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({} AWS credential match(es))", f.hits.len())
                                }
                            ))
                            .path(f.path.clone())
                            .found(format!("{:04o}", f.mode))
                            .expected("no read access for others (chmod 0600)"),
                        );
                    }
                }
                find => {
                    let kind = match find {
                        CredentialFind::LongTermKeys => HitKind::LongTermKeyId,
                        CredentialFind::TemporaryKeys => HitKind::TemporaryKeyId,
                        _ => HitKind::SecretKey,
                    };
                    for h in f.hits.iter().filter(|h| h.kind == kind) {
                        let what = match kind {
                            HitKind::LongTermKeyId => {
                                format!("long-term access key id {} in {}", h.shown, f.why)
                            }
                            HitKind::TemporaryKeyId => {
                                format!("temporary access key id {} in {}", h.shown, f.why)
                            }
                            HitKind::SecretKey => format!(
                                "aws_secret_access_key assignment in {} (value not shown)",
                                f.why
                            ),
                        };
                        let mut e = Evidence::new(what).path(f.path.clone()).line(h.line);
                        if kind != HitKind::SecretKey {
                            e = e.found(h.shown.clone());
                        }
                        out.push(e.expected("no static AWS keys on disk; use the instance role"));
                    }
                }
            }
        }
        out
    }
}

impl Check for StaticCredentialsCheck {
    /// The role-conditioned rules ask IMDS whether an instance profile is attached.
    fn uses_imds(&self) -> bool {
        self.instance_role == RoleCondition::Attached
    }

    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let mut role_note = None;
        if self.instance_role == RoleCondition::Attached {
            match instance_role(cx.sysroot, cx.is_live(), cx.facts.imds.as_ref()) {
                InstanceRole::Attached(arn) => role_note = Some(arn),
                InstanceRole::None(why) | InstanceRole::Unknown(why) => {
                    return Outcome::not_applicable(format!("no known instance role: {why}"))
                }
            }
        }
        let scan = if self.extra_paths.is_empty() {
            cx.cache.get(|| {
                let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
                CredentialScan::run(cx.sysroot, &units, &[])
            })
        } else {
            // Rules with their own extra paths scan on their own (rare; not shared).
            let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
            std::sync::Arc::new(CredentialScan::run(cx.sysroot, &units, &self.extra_paths))
        };
        let mut evidence = self.evidence(&scan);
        if !evidence.is_empty() {
            if let Some(arn) = role_note {
                evidence.push(Evidence::new(format!(
                    "the host has an instance role ({arn}): the static key is not needed"
                )));
            }
            evidence.extend(scan.errors.iter().map(|e| Evidence::new(e.clone())));
            return Outcome::Fail { evidence };
        }
        if !scan.errors.is_empty() {
            return Outcome::error(scan.errors.join("; "));
        }
        Outcome::pass(Evidence::new(format!(
            "{} file(s) scanned (AWS config and credentials of every home, environment files, \
             systemd units, container and cloud-init files): none {}",
            scan.files.len(),
            match self.find {
                CredentialFind::LongTermKeys => "holds a long-term (AKIA) access key id",
                CredentialFind::TemporaryKeys => "holds a temporary (ASIA) access key id",
                CredentialFind::SecretKeys => "assigns aws_secret_access_key",
                CredentialFind::WorldReadableFiles => "holding credentials is world-readable",
            }
        )))
    }
}
