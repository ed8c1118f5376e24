//! `ec2-harden check`: turn the flags into a [`CheckPlan`], run it, render the report to stdout
//! (or to `--output` with the text summary on stdout), then publish the FIM digest and deliver to
//! SSM when asked. The exit code is the report's gate.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use ec2_harden::fim;
use ec2_harden::report::{output, FailOn, Format};
use ec2_harden::rule::{Outcome, Status};
use ec2_harden::run::{self, CheckPlan, RunError};

use super::ssm::{parameter_digest, publish_digest, report_ssm, SsmArgs};
use ec2_harden::host::imds;

use super::{
    digest_arg, out, refs, stdout_was_closed, CliResult, Exit, Failure, ProfileArg, StageArg,
};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The moment in the host's life: bake (AMI build), boot (first boot), run (any time).
    #[arg(long, value_enum, default_value = "run")]
    pub stage: StageArg,
    /// ec2 (every rule of the baseline: CIS, EC2-native families and beyond; settings judged by
    /// their effect),
    /// cis-level1-server or cis-level2-server (the benchmark's recommendations of that level,
    /// judged by the letter of its audit procedure).
    #[arg(long, value_enum, default_value = "ec2")]
    pub profile: ProfileArg,
    /// An embedded baseline NAME or a baseline FILE; repeatable. Files layer on top of the
    /// auto-selected (or named) baseline.
    #[arg(long = "baseline", value_name = "FILE|NAME")]
    pub baselines: Vec<String>,
    /// Audit the tree at DIR (a chroot, a mounted AMI volume) instead of this host.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to FILE (atomically) and print the text summary to stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding has at least this severity: critical, high, medium, low or never.
    #[arg(long, value_name = "SEVERITY", default_value = "high", value_parser = parse_fail_on)]
    pub fail_on: FailOn,
    /// Run only these families (comma-separated), e.g. files,kernel.
    #[arg(long, value_name = "FAMILY,...", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Leave these families out (comma-separated), e.g. fim for a quick scheduled audit.
    #[arg(long, value_name = "FAMILY,...", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Run only this rule (its id); repeatable. Other selections still apply: a rule outside the
    /// profile or stage does not run.
    #[arg(long = "rule", value_name = "ID")]
    pub rules: Vec<String>,
    /// Also deliver the report through SSM (Compliance and Inventory).
    #[arg(long, value_enum, value_name = "TARGET")]
    pub report: Option<ReportTarget>,
    /// No network probes (IMDS, SSM, package metadata refresh).
    #[arg(long)]
    pub offline: bool,
    /// Prove what the firewall rules only suggest on this live host: connect to IMDS as root and
    /// as an unprivileged uid (rule firewall-imds-probe; needs root).
    #[arg(long, conflicts_with = "offline")]
    pub active_probes: bool,
    /// Refresh the package manager's metadata for --root (apt-get update, dnf/yum makecache)
    /// before the patch rules read it; a failure is a warning. Useful at bake with network.
    #[arg(long, conflicts_with = "offline")]
    pub refresh_metadata: bool,
    /// The file-integrity manifest (a host path) that stage bake writes and boot/run verify;
    /// default /var/lib/ec2-harden/manifest inside --root.
    #[arg(long, value_name = "FILE")]
    pub fim_manifest: Option<PathBuf>,
    /// boot/run: refuse a manifest whose digest is not HEX (as printed at bake).
    #[arg(long, value_name = "HEX", env = "EC2_HARDEN_FIM_DIGEST")]
    pub fim_expect_digest: Option<String>,
    /// boot/run: read the pinned manifest digest from this SSM parameter (GetParameter).
    #[arg(long, value_name = "NAME", conflicts_with = "fim_expect_digest")]
    pub fim_expect_digest_parameter: Option<String>,
    /// bake: publish the sealed manifest's digest to this SSM parameter (PutParameter, String,
    /// overwrite), for boot/run to verify against with --fim-expect-digest-parameter.
    #[arg(long, value_name = "NAME")]
    pub publish_digest_parameter: Option<String>,
    /// --report ssm: the managed node (i-… or mi-…); default AWS_SSM_INSTANCE_ID, else IMDS.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    #[command(flatten)]
    pub ssm: SsmArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportTarget {
    Ssm,
}

/// `ec2-harden check`.
pub fn check(args: CheckArgs) -> CliResult {
    if args.publish_digest_parameter.is_some() && args.stage != StageArg::Bake {
        return Err(Failure::config(anyhow::anyhow!(
            "--publish-digest-parameter: only `--stage bake` seals a manifest to publish"
        )));
    }
    if args.offline
        && (args.report.is_some()
            || args.publish_digest_parameter.is_some()
            || args.fim_expect_digest_parameter.is_some())
    {
        return Err(Failure::config(anyhow::anyhow!(
            "--offline forbids network calls: it cannot be combined with --report ssm or the digest parameters"
        )));
    }
    if args.output.is_none() && args.report.is_none() && stdout_was_closed() {
        return Err(Failure::internal(anyhow::anyhow!(
            "stdout is closed: the report has nowhere to go (give --output FILE, or --report ssm)"
        )));
    }
    let expect_digest = match &args.fim_expect_digest_parameter {
        Some(name) => Some(parameter_digest(name, args.ssm.region.as_deref())?),
        None => digest_arg("--fim-expect-digest", args.fim_expect_digest.as_deref())?,
    };
    let plan = CheckPlan {
        stage: args.stage.into(),
        profile: args.profile.into(),
        baselines: refs(&args.baselines),
        only: args.only.clone(),
        skip: args.skip.clone(),
        rules: args.rules.clone(),
        offline: args.offline,
        refresh_metadata: args.refresh_metadata,
        fail_on: args.fail_on,
        fim: fim::FimSettings {
            manifest: args.fim_manifest.clone(),
            expect_digest,
            ..fim::FimSettings::default()
        },
        probes: probe_settings(args.active_probes)?,
        ..CheckPlan::new(&args.root)
    };
    // every reason a run cannot start is a configuration error; a baseline's own error is kept
    // as it is, so its FILE:LINE:COL diagnostics print unprefixed
    let report = run::check(&plan).map_err(|e| match e {
        RunError::Baseline(e) => Failure::config(e),
        other => Failure::config(other),
    })?;
    for r in &report.results {
        if let (Status::Error, Outcome::Error { cause }) = (r.status(), &r.outcome) {
            tracing::warn!(rule = %r.id, "could not evaluate: {cause}");
        }
    }
    let rendered = report.render(args.format);
    match &args.output {
        Some(path) => {
            output::write_atomic(path, rendered.as_bytes())
                .with_context(|| format!("writing the report to {}", path.display()))
                .map_err(Failure::internal)?;
            // the report is safe in the file; the summary on stdout is a courtesy
            if let Err(f) = out(&report.render(Format::Text)) {
                tracing::warn!("{:#}", f.error);
            }
        }
        None => out(&rendered)?,
    }
    tracing::info!(
        total_ms = report.timings.total_ms,
        rules = report.totals.rules,
        "check finished"
    );
    if let Some(name) = &args.publish_digest_parameter {
        publish_digest(&report, name, args.ssm.region.as_deref())?;
    }
    if args.report == Some(ReportTarget::Ssm) {
        report_ssm(&report, args.instance_id.as_deref(), &args.ssm)?;
    }
    Ok(if report.gate.passed {
        Exit::Clean
    } else {
        Exit::Findings
    })
}

fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    s.parse()
}

/// The IMDS endpoint the firewall rules and probes use: the SDK variables when they are valid
/// (a bad value is a configuration error only when probes will use it).
fn probe_settings(active: bool) -> Result<ec2_harden::host::probe::ProbeSettings, Failure> {
    let endpoint = match imds::ImdsSettings::from_env() {
        Ok(s) => s.endpoint,
        Err(e) if active => return Err(Failure::config(e)),
        Err(_) => imds::ImdsSettings::default().endpoint,
    };
    let exe = if active {
        Some(
            std::env::current_exe()
                .context("finding the agent's own executable for --active-probes")
                .map_err(Failure::internal)?,
        )
    } else {
        None
    };
    Ok(ec2_harden::host::probe::ProbeSettings::new(
        active, exe, endpoint,
    ))
}
