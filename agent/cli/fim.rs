//! `ec2-harden fim init` and `fim verify`: seal the integrity manifest of a root at bake and
//! compare the root against it later; the policy comes from `--path`, the `[fim]` section of the
//! baselines, or (verify) the manifest itself.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use ec2_harden::baseline::Baseline;
use ec2_harden::fim;
use ec2_harden::host::HostFacts;
use ec2_harden::sysroot::Sysroot;

use super::ssm::parameter_digest;
use super::{digest_arg, open_root, out, refs, CliResult, Exit, Failure};

#[derive(Debug, Subcommand)]
pub enum FimCommand {
    /// Write the integrity manifest of the root (at bake).
    Init(FimArgs),
    /// Compare the root against its manifest (at boot / run).
    Verify(FimArgs),
}

#[derive(Debug, Args)]
pub struct FimArgs {
    /// The tree to seal or verify (a chroot, a mounted AMI volume); default this host.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The manifest (a host path); default /var/lib/ec2-harden/manifest inside --root.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Walk only DIR (an in-root path; repeatable) instead of the default include list
    /// (/usr/bin /usr/sbin /usr/lib /usr/lib64 /usr/libexec /etc /boot). The default
    /// exclusions still apply. For verify, the default is the manifest's own list.
    #[arg(long = "path", value_name = "DIR")]
    pub paths: Vec<String>,
    /// verify: refuse a manifest whose digest is not HEX (as printed by init; `sha256:` optional).
    #[arg(long, value_name = "HEX")]
    pub expect_digest: Option<String>,
    /// verify: read that digest from this SSM parameter (GetParameter), as published at bake.
    #[arg(long, value_name = "NAME", conflicts_with = "expect_digest")]
    pub expect_digest_parameter: Option<String>,
    /// The AWS region for --expect-digest-parameter (default AWS_SSM_REGION_NAME, else the
    /// SDK's chain: AWS_REGION, profile, IMDS).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Take the `[fim]` paths from this baseline NAME or FILE (repeatable, layered as for
    /// `check`); default the baseline auto-selected from the root's /etc/os-release. For
    /// verify, a baseline (like --path) replaces the policy recorded in the manifest.
    #[arg(long = "baseline", value_name = "FILE|NAME")]
    pub baselines: Vec<String>,
}

/// Most of `fim verify`'s text output, like the text report (SSM shows 24,000 characters).
const FIM_TEXT_MAX: usize = 24_000;

fn fim_failure(e: fim::FimError) -> Failure {
    match e {
        // a manifest that is not intact, or not the pinned one, is a finding of `fim verify`
        // (exit 1), not a usage error: the host's integrity cannot be shown
        fim::FimError::Manifest { .. } | fim::FimError::DigestMismatch { .. } => Failure {
            exit: Exit::Findings,
            error: e.into(),
        },
        e if e.is_config() => Failure::config(e),
        e => Failure::internal(e),
    }
}

/// The policy `fim init` seals with / `fim verify` compares with, and the baseline it came
/// from: `--path` (with the default exclusions), else the `[fim]` section of the `--baseline`s
/// (or of the baseline auto-selected for the root). For verify, `None` (no --path, no
/// --baseline) means the policy recorded in the manifest.
fn fim_policy(
    args: &FimArgs,
    sysroot: &Sysroot,
    for_verify: bool,
) -> Result<(Option<fim::FimPolicy>, Option<String>), Failure> {
    if !args.paths.is_empty() {
        if !args.baselines.is_empty() {
            return Err(Failure::config(anyhow::anyhow!(
                "--path and --baseline both choose what to cover; give one"
            )));
        }
        return Ok((Some(fim::FimPolicy::with_includes(&args.paths)), None));
    }
    if for_verify && args.baselines.is_empty() {
        return Ok((None, None));
    }
    let facts = HostFacts::gather(sysroot);
    let baseline = Baseline::resolve(&refs(&args.baselines), &facts.os).map_err(Failure::config)?;
    Ok((Some(baseline.fim), Some(baseline.name)))
}

pub fn fim_init(args: FimArgs) -> CliResult {
    if args.expect_digest.is_some() || args.expect_digest_parameter.is_some() {
        return Err(Failure::config(anyhow::anyhow!(
            "--expect-digest and --expect-digest-parameter only apply to `fim verify`"
        )));
    }
    let sysroot = open_root(&args.root)?;
    let (policy, baseline) = fim_policy(&args, &sysroot, false)?;
    let policy = policy.unwrap_or_default();
    let summary = fim::init(
        &sysroot,
        &fim::InitOptions {
            manifest: args.manifest.as_deref(),
            baseline: baseline.as_deref(),
            policy: &policy,
        },
    )
    .map_err(fim_failure)?;
    out(&format!(
        "sha256:{}\nfim init: {} entries, {} files hashed, {} bytes hashed, {} unreadable, {:.2} s -> {}\n",
        fim::entry::hex(&summary.digest),
        summary.entries,
        summary.files_hashed,
        summary.bytes_hashed,
        summary.errors,
        summary.seconds,
        summary.manifest.display()
    ))?;
    Ok(Exit::Clean)
}

pub fn fim_verify(args: FimArgs) -> CliResult {
    let expect_digest = match &args.expect_digest_parameter {
        Some(name) => Some(parameter_digest(name, args.region.as_deref())?),
        None => digest_arg("--expect-digest", args.expect_digest.as_deref())?,
    };
    let sysroot = open_root(&args.root)?;
    let (policy, _) = fim_policy(&args, &sysroot, true)?;
    let report = fim::verify(
        &sysroot,
        &fim::VerifyOptions {
            manifest: args.manifest.as_deref(),
            expect_digest,
            policy,
        },
    )
    .map_err(fim_failure)?;
    out(&report.render_text(FIM_TEXT_MAX))?;
    tracing::info!(
        seconds = report.seconds,
        entries = report.entries_checked,
        changes = report.changes.len(),
        "fim verify finished"
    );
    Ok(if report.is_clean() {
        Exit::Clean
    } else {
        Exit::Findings
    })
}
