//! The `check` pipeline as one library call: open the sysroot, gather the host facts, resolve the
//! baseline, validate the families asked for, refresh package metadata and ask the instance
//! metadata service when (and only when) a selected rule needs them, and evaluate the rules into
//! one [`Report`]. The command line, tests and any later front end call [`check`] with a
//! [`CheckPlan`]; rendering the report and delivering it (SSM) are the caller's next steps.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::baseline::{Baseline, BaselineError, BaselineRef};
use crate::engine::{self, RunOptions};
use crate::fim::FimSettings;
use crate::host::imds::{self, ImdsError, ImdsFacts, ImdsSettings, ImdsState};
use crate::host::packages::refresh;
use crate::host::probe::ProbeSettings;
use crate::host::HostFacts;
use crate::report::{FailOn, Report};
use crate::rule::{Profile, Severity, Stage};
use crate::sysroot::{Sysroot, SysrootError};

/// Everything a `check` run is asked to do.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The tree to audit (`/` for this host).
    pub root: PathBuf,
    pub stage: Stage,
    /// `--profile`: the EC2 profile (default) or a CIS server level.
    pub profile: Profile,
    /// Embedded baseline names or files, layered on the baseline auto-selected for the root.
    pub baselines: Vec<BaselineRef>,
    /// Families to run (empty: all) and to leave out.
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// Rule ids to run (empty: every rule the profile, stage and families select).
    pub rules: Vec<String>,
    /// No network at all: IMDS is not asked and package metadata is not refreshed.
    pub offline: bool,
    /// Refresh the package manager's metadata before the rules that read it.
    pub refresh_metadata: bool,
    pub fail_on: FailOn,
    /// Manifest location and pinned digest for the `fim` family (its policy comes from the baseline).
    pub fim: FimSettings,
    /// Active probes and the IMDS endpoint the firewall rules use.
    pub probes: ProbeSettings,
    /// The IMDS client's settings; `None` reads them from the SDK's environment variables
    /// (`AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE]`) when IMDS is needed.
    pub imds: Option<ImdsSettings>,
    /// "Today" for waiver expiry (UTC).
    pub today: jiff::civil::Date,
}

impl CheckPlan {
    /// A plan with the command line's defaults: stage `run`, every family, `--fail-on high`.
    pub fn new(root: impl Into<PathBuf>) -> CheckPlan {
        CheckPlan {
            root: root.into(),
            stage: Stage::Run,
            profile: Profile::Ec2,
            baselines: Vec::new(),
            only: Vec::new(),
            skip: Vec::new(),
            rules: Vec::new(),
            offline: false,
            refresh_metadata: false,
            fail_on: FailOn::AtOrAbove(Severity::High),
            fim: FimSettings::default(),
            probes: ProbeSettings::default(),
            imds: None,
            today: jiff::Zoned::now()
                .with_time_zone(jiff::tz::TimeZone::UTC)
                .date(),
        }
    }
}

/// Why a run could not start; each names what to fix (all are configuration errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--root: {0}")]
    Root(#[source] SysrootError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error("{flag}: unknown famil{} {}; baseline `{baseline}` has: {}",
        if .unknown.len() == 1 { "y" } else { "ies" },
        .unknown.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
        .known.iter().cloned().collect::<Vec<_>>().join(", "))]
    UnknownFamily {
        flag: &'static str,
        unknown: Vec<String>,
        baseline: String,
        known: BTreeSet<String>,
    },
    #[error("--rule: {} not in baseline `{baseline}` (`ec2-harden baseline show {baseline}` lists its rules)",
        .unknown.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))]
    UnknownRule {
        unknown: Vec<String>,
        baseline: String,
    },
    #[error("no rule of baseline `{baseline}` is selected for profile {profile}, stage {stage}{filters}: a run that checks nothing cannot pass")]
    NothingSelected {
        baseline: String,
        profile: Profile,
        stage: Stage,
        filters: String,
    },
    #[error("--profile {profile}: baseline `{baseline}` has no CIS benchmark to take levels from; use a distribution baseline ({}) or --profile ec2", crate::baseline::benchmark::EMBEDDED.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "))]
    NoBenchmark { profile: Profile, baseline: String },
    #[error(transparent)]
    Imds(#[from] ImdsError),
}

/// Run the plan into a report. Rule outcomes (pass, fail, error) are in the report; an `Err` means
/// the run itself could not be made.
pub fn check(plan: &CheckPlan) -> Result<Report, RunError> {
    let start = Instant::now();
    let sysroot = Sysroot::open(&plan.root).map_err(RunError::Root)?;
    let mut facts = HostFacts::gather(&sysroot);
    let mut facts_ms = ms(start.elapsed());
    tracing::debug!(root = %sysroot.root().display(), os = %facts.os.id, version = %facts.os.version_id, live = facts.live, "host facts gathered");

    let t = Instant::now();
    let baseline = Baseline::resolve(&plan.baselines, &facts.os)?;
    let baseline_ms = ms(t.elapsed());
    for w in &baseline.warnings {
        tracing::warn!("{w}");
    }
    validate_families(&baseline, plan)?;
    if plan.profile.is_cis() && baseline.benchmark.is_none() {
        return Err(RunError::NoBenchmark {
            profile: plan.profile,
            baseline: baseline.name.clone(),
        });
    }
    let opts = RunOptions {
        stage: plan.stage,
        profile: plan.profile,
        only: plan.only.clone(),
        skip: plan.skip.clone(),
        rules: plan.rules.clone(),
        offline: plan.offline,
        fail_on: plan.fail_on,
        today: plan.today,
        fim: plan.fim.clone(),
        probes: plan.probes.clone(),
    };
    let selected = engine::select(&baseline, &opts);
    if selected.is_empty() {
        let flags: Vec<String> = [
            ("--only", &plan.only),
            ("--skip", &plan.skip),
            ("--rule", &plan.rules),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(flag, values)| format!("{flag} {}", values.join(",")))
        .collect();
        let filters = if flags.is_empty() {
            String::new()
        } else {
            format!(" with {}", flags.join(" "))
        };
        return Err(RunError::NothingSelected {
            baseline: baseline.name.clone(),
            profile: plan.profile,
            stage: plan.stage,
            filters,
        });
    }
    if plan.refresh_metadata
        && !plan.offline
        && selected.iter().any(|r| r.check.reads_package_metadata())
    {
        let t = Instant::now();
        let refreshed = refresh::run(&plan.root, &sysroot, refresh::TIMEOUT);
        facts.package_refresh = Some(refreshed.map(|r| r.describe()).unwrap_or_else(|| {
            "package metadata not refreshed: no dpkg or rpm database to refresh for".into()
        }));
        facts_ms += ms(t.elapsed());
    }
    if selected.iter().any(|r| r.check.uses_imds()) {
        let t = Instant::now();
        facts.imds = Some(imds_facts(&sysroot, plan)?);
        facts_ms += ms(t.elapsed());
    }
    Ok(engine::run(
        &baseline,
        &sysroot,
        facts,
        facts_ms,
        baseline_ms,
        &opts,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `--only` and `--skip` may name only families the baseline has, and `--rule` only its rules: a
/// typo must not silently run (or skip) nothing.
fn validate_families(baseline: &Baseline, plan: &CheckPlan) -> Result<(), RunError> {
    let unknown: Vec<String> = plan
        .rules
        .iter()
        .filter(|id| !baseline.rules.iter().any(|r| &r.meta.id == *id))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(RunError::UnknownRule {
            unknown,
            baseline: baseline.name.clone(),
        });
    }
    let known = engine::families(baseline);
    for (flag, families) in [("--only", &plan.only), ("--skip", &plan.skip)] {
        let unknown: Vec<String> = families
            .iter()
            .filter(|f| !known.contains(*f))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(RunError::UnknownFamily {
                flag,
                unknown,
                baseline: baseline.name.clone(),
                known,
            });
        }
    }
    Ok(())
}

/// Ask IMDS, within its deadline, unless the run is offline or audits an image (a root other than
/// this host's `/`): IMDS describes the machine running the scan, not a mounted volume.
fn imds_facts(sysroot: &Sysroot, plan: &CheckPlan) -> Result<ImdsFacts, RunError> {
    let default = ImdsSettings::default().endpoint;
    if plan.offline {
        return Ok(ImdsFacts::not_asked(
            &default,
            ImdsState::Skipped,
            imds::facts::OFFLINE_REASON,
        ));
    }
    if !sysroot.is_host_root() {
        return Ok(ImdsFacts::not_asked(
            &default,
            ImdsState::Skipped,
            imds::facts::IMAGE_REASON,
        ));
    }
    let settings = match &plan.imds {
        Some(s) => s.clone(),
        None => ImdsSettings::from_env()?,
    };
    let facts = imds::gather(&settings);
    tracing::debug!(endpoint = %facts.endpoint, state = ?facts.state, ms = facts.elapsed_ms, "imds asked");
    Ok(facts)
}
