//! Reporting through AWS Systems Manager: a finished `Report` becomes one `PutComplianceItems`
//! upload (`Custom:Ec2Harden`, every rule, COMPLETE) and one `PutInventory` summary
//! (`Custom:Ec2HardenSummary`), validated against the model, spooled, then delivered with retries
//! inside a deadline (see [`deliver`]); `report flush` delivers what earlier runs left. The summary
//! is also dropped as a custom inventory file for the SSM agent when its folder is there. Parameter
//! Store pins the FIM manifest digest ([`pin`]). Renderers never call AWS; this module takes a
//! `Report` and never reads the audited host.

pub mod client;
pub mod deliver;
pub mod payload;
pub mod pin;
pub mod spool;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::imds::ImdsFacts;
use crate::report::{output, Report};
use client::{ApiError, SsmApi};
use deliver::{Backoff, Delivery};
use payload::{Execution, ModelViolation};
use spool::{Envelope, Spool, SpoolError, ENVELOPE_FORMAT};

/// Set by SSM Run Command (and on hybrid nodes): the managed node's id and region.
pub const ENV_INSTANCE_ID: &str = "AWS_SSM_INSTANCE_ID";
pub const ENV_REGION: &str = "AWS_SSM_REGION_NAME";
/// Set by Run Command: the command id, recorded as the compliance execution id.
pub const ENV_COMMAND_ID: &str = "SSM_COMMAND_ID";
/// Where the SSM agent keeps per-instance state (custom inventory under `<id>/inventory/custom`).
pub const DEFAULT_AGENT_DIR: &str = "/var/lib/amazon/ssm";
/// Default overall delivery deadline: well inside Run Command's shortest sensible timeout.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    #[error("SSM reporting: no managed-node id: {tried}")]
    NoInstanceId { tried: String },
    #[error(
        "SSM reporting: `{id}` is not an EC2 instance id (i-…) or a hybrid managed-node id (mi-…)"
    )]
    BadInstanceId { id: String },
    #[error("{source} (this is a bug in ec2-harden; the payload was kept in {kept})")]
    Model {
        source: ModelViolation,
        kept: String,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("SSM at {endpoint}: {source}")]
    Api { endpoint: String, source: ApiError },
}

/// Which managed node and region a report is for, and what ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance_id: String,
    /// None: the SDK's region chain decides.
    pub region: Option<String>,
    pub command_id: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The region: `--region`, else `AWS_SSM_REGION_NAME`, else `fallback` (IMDS, a spooled
/// report's), else None (the SDK's chain: `AWS_REGION`, the profile, IMDS).
pub fn region(flag: Option<&str>, fallback: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| env(ENV_REGION))
        .or_else(|| fallback.map(str::to_string))
}

/// Resolve the target: `--instance-id` / `--region`, else the Run Command variables, else the
/// IMDS identity document (`imds`, asked with `ask_imds` when the checks did not need it).
pub fn target(
    instance_flag: Option<&str>,
    region_flag: Option<&str>,
    imds: Option<&ImdsFacts>,
    ask_imds: impl FnOnce() -> ImdsFacts,
) -> Result<Target, SsmError> {
    let (instance_id, imds_region) = match instance_flag
        .map(str::to_string)
        .or_else(|| env(ENV_INSTANCE_ID))
    {
        Some(id) => (id, None),
        None => {
            let asked;
            let facts = match imds {
                Some(f) if f.identity.found().is_some() => f,
                _ => {
                    asked = ask_imds();
                    &asked
                }
            };
            match facts.identity.found() {
                Some(id) => (id.instance_id.clone(), Some(id.region.clone())),
                None => {
                    return Err(SsmError::NoInstanceId {
                        tried: format!(
                            "no --instance-id, no {ENV_INSTANCE_ID}, and IMDS at {} gave no identity document ({})",
                            facts.endpoint,
                            facts.reason.clone().unwrap_or_else(|| format!("{:?}", facts.state).to_lowercase())
                        ),
                    })
                }
            }
        }
    };
    if !payload::valid_instance_id(&instance_id) {
        return Err(SsmError::BadInstanceId { id: instance_id });
    }
    Ok(Target {
        instance_id,
        region: region(region_flag, imds_region.as_deref()),
        command_id: env(ENV_COMMAND_ID),
    })
}

/// Where spooled reports and the agent's inventory file go, and how long delivery may take.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spool_dir: PathBuf,
    pub agent_dir: PathBuf,
    pub deadline: Duration,
    pub backoff: Backoff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            spool_dir: PathBuf::from(spool::DEFAULT_DIR),
            agent_dir: PathBuf::from(DEFAULT_AGENT_DIR),
            deadline: DEFAULT_DEADLINE,
            backoff: Backoff::default(),
        }
    }
}

/// The payloads of one report, validated.
pub fn envelope(report: &Report, target: &Target) -> (Envelope, Result<(), ModelViolation>) {
    let exec = Execution {
        instance_id: target.instance_id.clone(),
        command_id: target.command_id.clone(),
    };
    let env = Envelope {
        format: ENVELOPE_FORMAT,
        key: Envelope::key_for(&report.generated_at),
        generated_at: report.generated_at.clone(),
        region: target.region.clone(),
        compliance: payload::compliance(report, &exec),
        inventory: payload::inventory(report, &target.instance_id),
        compliance_delivered: false,
        inventory_delivered: false,
    };
    let valid = env
        .compliance
        .validate()
        .and_then(|()| env.inventory.validate());
    (env, valid)
}

/// Drop the summary where the SSM agent's inventory plugin collects custom inventory, when the
/// agent keeps state for this node. Returns the file written.
pub fn write_agent_inventory(
    agent_dir: &Path,
    env: &Envelope,
) -> Result<Option<PathBuf>, SpoolError> {
    let node = agent_dir.join(&env.inventory.instance_id);
    if !node.is_dir() {
        return Ok(None);
    }
    let dir = node.join("inventory").join("custom");
    std::fs::create_dir_all(&dir).map_err(|source| SpoolError::Io {
        path: dir.clone(),
        doing: "creating",
        source,
    })?;
    let path = dir.join("Ec2HardenSummary.json");
    output::write_atomic_mode(&path, env.inventory.agent_file().as_bytes(), 0o644).map_err(
        |source| SpoolError::Io {
            path: path.clone(),
            doing: "writing",
            source,
        },
    )?;
    Ok(Some(path))
}

/// Spool `report` for `target` and deliver everything pending. `api` builds the client for a
/// region (called once, after the report is safely spooled).
pub fn report(
    report: &Report,
    target: &Target,
    settings: &Settings,
    api: impl FnOnce(Option<&str>) -> Result<Box<dyn SsmApi>, ApiError>,
) -> Result<Delivery, SsmError> {
    let started = Instant::now();
    let deadline = started + settings.deadline;
    let spool = Spool::open(&settings.spool_dir)?;
    let (env, valid) = envelope(report, target);
    if let Err(source) = valid {
        let kept = spool.reject_new(&env, &source.to_string())?;
        return Err(SsmError::Model {
            source,
            kept: kept.display().to_string(),
        });
    }
    let _lock = spool.lock(deadline)?;
    let path = spool.put(&env)?;
    tracing::debug!(path = %path.display(), "report spooled");
    for key in spool.trim(Some(&env.key))? {
        tracing::warn!(
            key,
            "spool over {} reports: oldest undelivered report dropped",
            spool::MAX_PENDING
        );
    }
    match write_agent_inventory(&settings.agent_dir, &env) {
        Ok(Some(p)) => {
            tracing::info!(path = %p.display(), "custom inventory written for the SSM agent")
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    deliver_through(
        &spool,
        api(target.region.as_deref()),
        deadline,
        settings,
        Some(&env.key),
    )
}

/// Deliver the spool through the client just built, or, when it could not be built, deliver
/// nothing and say why (everything stays spooled).
fn deliver_through(
    spool: &Spool,
    api: Result<Box<dyn SsmApi>, ApiError>,
    deadline: Instant,
    settings: &Settings,
    fresh: Option<&str>,
) -> Result<Delivery, SsmError> {
    match api {
        Ok(mut api) => Ok(deliver::deliver_with(
            spool,
            api.as_mut(),
            deadline,
            settings.backoff,
            fresh,
        )?),
        Err(e) => Ok(Delivery {
            pending: spool.pending()?.len(),
            stopped: Some(e.to_string()),
            ..Delivery::default()
        }),
    }
}

/// `report flush`: deliver what earlier runs spooled.
pub fn flush(
    settings: &Settings,
    region_flag: Option<&str>,
    api: impl FnOnce(Option<&str>) -> Result<Box<dyn SsmApi>, ApiError>,
) -> Result<Delivery, SsmError> {
    let deadline = Instant::now() + settings.deadline;
    let spool = Spool::open(&settings.spool_dir)?;
    let _lock = spool.lock(deadline)?;
    for key in spool.trim(None)? {
        tracing::warn!(
            key,
            "spool over {} reports: oldest undelivered report dropped",
            spool::MAX_PENDING
        );
    }
    let pending = spool.pending()?;
    if pending.is_empty() {
        let rejected = spool.sweep()?;
        return Ok(Delivery {
            rejected,
            ..Delivery::default()
        });
    }
    // The newest spooled report knows which region it was for (entries read one at a time).
    let spooled_region = pending
        .iter()
        .rev()
        .find_map(|e| spool.load(e).ok().and_then(|env| env.region));
    let region = region(region_flag, spooled_region.as_deref());
    deliver_through(&spool, api(region.as_deref()), deadline, settings, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_trims_an_overfull_spool_and_reads_entries_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            spool_dir: dir.path().join("spool"),
            agent_dir: dir.path().join("agent"),
            ..Settings::default()
        };
        let spool = Spool::open(&settings.spool_dir).unwrap();
        let target = Target {
            instance_id: "i-0123456789abcdef0".into(),
            region: Some("eu-west-1".into()),
            command_id: None,
        };
        let (env, _) = envelope(&crate::report::testutil::sample_report(), &target);
        let body = serde_json::to_vec(&env).unwrap();
        for i in 0..(spool::MAX_PENDING + 150) {
            std::fs::write(
                settings
                    .spool_dir
                    .join(format!("{:020}-0000000001.json", i + 1)),
                &body,
            )
            .unwrap();
        }
        // no client can be built: nothing is sent, the spool is trimmed to its cap and kept
        let d = flush(&settings, None, |_| {
            Err(ApiError::Blocked {
                code: "NoCredentials".into(),
                message: "none here".into(),
            })
        })
        .unwrap();
        assert_eq!(d.pending, spool::MAX_PENDING, "{d:?}");
        assert_eq!(spool.pending().unwrap().len(), spool::MAX_PENDING);
        // the newest are kept
        assert_eq!(
            spool.pending().unwrap().last().unwrap().key,
            format!("{:020}-0000000001", spool::MAX_PENDING + 150)
        );
    }
}
