//! The command line: clap definitions, dispatch, and the mapping from outcomes to exit codes
//! (0 no finding at or above `--fail-on`, 1 findings, 2 usage/configuration/baseline error,
//! 3 the agent itself failed). Reports go to stdout; logs go to stderr via `tracing`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use ec2_harden::baseline::{embedded, Baseline, BaselineError, BaselineRef, Layer};
use ec2_harden::engine::{self, RunOptions};
use ec2_harden::fim;
use ec2_harden::host::imds;
use ec2_harden::host::HostFacts;
use ec2_harden::report::{output, FailOn, Format};
use ec2_harden::rule::{Stage, Status};
use ec2_harden::sysroot::Sysroot;

/// Exit codes of the CLI contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Clean = 0,
    Findings = 1,
    Config = 2,
    Internal = 3,
}

/// An error that ends the run, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    fn config(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit: Exit::Config,
            error: error.into(),
        }
    }
    fn internal(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit: Exit::Internal,
            error: error.into(),
        }
    }
}

type CliResult = Result<Exit, Failure>;

/// Hardening, patch, disk-encryption, file-integrity and IMDS checks for Linux EC2 hosts.
#[derive(Debug, Parser)]
#[command(name = "ec2-harden", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 no finding at or above --fail-on, 1 findings, 2 usage/configuration/baseline error, 3 the agent failed.\nLogs go to stderr; set EC2_HARDEN_LOG (e.g. debug, ec2_harden=trace)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit a host or image against a baseline and report the findings.
    Check(CheckArgs),
    /// File integrity: seal a manifest at bake, verify it at boot and on schedule.
    #[command(subcommand)]
    Fim(FimCommand),
    /// List, show and validate baselines.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Print a rule's rationale, remediation and references.
    Explain(ExplainArgs),
    /// Deliver spooled SSM reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Internal: one active-probe connection, run by `check --active-probes` as another uid.
    #[command(name = ec2_harden::host::probe::PROBE_SUBCOMMAND, hide = true)]
    ProbeConnect(ProbeConnectArgs),
    /// Internal (packaging): write the man pages and shell completions generated from this
    /// command-line definition into DIR/man and DIR/completions.
    #[command(name = "__dist-assets", hide = true)]
    DistAssets {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ProbeConnectArgs {
    /// The address to connect to (`169.254.169.254:80`, `[fd00:ec2::254]:80`).
    pub addr: std::net::SocketAddr,
    #[arg(long, default_value = "1500")]
    pub timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The moment in the host's life: bake (AMI build), boot (first boot), run (any time).
    #[arg(long, value_enum, default_value = "run")]
    pub stage: StageArg,
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

/// Where SSM requests go and how long delivery may take (check --report ssm, report flush,
/// Parameter Store pinning).
#[derive(Debug, Args)]
pub struct SsmArgs {
    /// The AWS region for SSM; default AWS_SSM_REGION_NAME, else IMDS, else the SDK's chain
    /// (AWS_REGION, profile). Endpoint overrides: AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Where undelivered SSM reports wait (mode 0700).
    #[arg(long, value_name = "DIR", env = "EC2_HARDEN_SPOOL_DIR", default_value = ec2_harden::ssm::spool::DEFAULT_DIR)]
    pub spool_dir: PathBuf,
    /// Give up delivering after this many seconds (what is left stays spooled). Keep it well
    /// under the Run Command / State Manager timeout, which SIGKILLs the whole process group.
    #[arg(long, value_name = "SECONDS", default_value = "60")]
    pub report_deadline: u64,
    /// The SSM agent's state directory (custom inventory goes to ID/inventory/custom).
    #[arg(long, value_name = "DIR", default_value = ec2_harden::ssm::DEFAULT_AGENT_DIR, hide = true)]
    pub ssm_agent_dir: PathBuf,
}

impl SsmArgs {
    fn settings(&self) -> ec2_harden::ssm::Settings {
        ec2_harden::ssm::Settings {
            spool_dir: self.spool_dir.clone(),
            agent_dir: self.ssm_agent_dir.clone(),
            deadline: std::time::Duration::from_secs(self.report_deadline),
            ..ec2_harden::ssm::Settings::default()
        }
    }
}

fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    s.parse()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageArg {
    Bake,
    Boot,
    Run,
}

impl From<StageArg> for Stage {
    fn from(s: StageArg) -> Stage {
        match s {
            StageArg::Bake => Stage::Bake,
            StageArg::Boot => Stage::Boot,
            StageArg::Run => Stage::Run,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportTarget {
    Ssm,
}

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

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// List the embedded baselines with their rule counts.
    List,
    /// Show a baseline's layers and rules (NAME or FILE); --raw prints its TOML source.
    Show {
        #[arg(value_name = "NAME|FILE")]
        name: String,
        #[arg(long)]
        raw: bool,
    },
    /// Validate a baseline file (and what it extends); exit 2 with FILE:LINE:COL errors.
    Validate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rule id, e.g. etc-shadow-permissions.
    pub rule_id: String,
    /// Look the rule up in these baselines (default: every embedded baseline).
    #[arg(long = "baseline", value_name = "FILE|NAME")]
    pub baselines: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Deliver reports spooled by earlier runs whose delivery failed, oldest first.
    Flush(FlushArgs),
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    #[command(flatten)]
    pub ssm: SsmArgs,
}

/// Write to stdout; a closed pipe (`| head`) is not an error worth a stack of messages.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::internal(
            anyhow::Error::new(e).context("writing to stdout"),
        )),
    }
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Check(args) => check(args),
        Command::Fim(FimCommand::Init(args)) => fim_init(args),
        Command::Fim(FimCommand::Verify(args)) => fim_verify(args),
        Command::Baseline(cmd) => baseline(cmd),
        Command::Explain(args) => explain(args),
        Command::ProbeConnect(args) => probe_connect(args),
        Command::Report(ReportCommand::Flush(args)) => report_flush(args),
        Command::DistAssets { dir } => dist_assets(&dir),
    }
}

/// The packages' generated files (scripts/dist.sh): one man page per visible command
/// (`ec2-harden.1`, `ec2-harden-check.1`, ...) and the bash, zsh and fish completions, so they
/// can never drift from the options the binary really takes.
fn dist_assets(dir: &Path) -> CliResult {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    // the user's command: the internal (hidden) subcommands left out, which the completion
    // generators would otherwise offer
    let full = Cli::command();
    let mut public = clap::Command::new("ec2-harden")
        .version(env!("CARGO_PKG_VERSION"))
        .about(env!("CARGO_PKG_DESCRIPTION"))
        .subcommand_required(true)
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    if let Some(after) = full.get_after_help() {
        public = public.after_help(after.clone());
    }
    let write = || -> std::io::Result<()> {
        let man = dir.join("man");
        let completions = dir.join("completions");
        std::fs::create_dir_all(&man)?;
        std::fs::create_dir_all(&completions)?;
        clap_mangen::generate_to(public.clone(), &man)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut public.clone(), "ec2-harden", &completions)?;
        }
        Ok(())
    };
    write().map_err(|e| {
        Failure::internal(anyhow::Error::new(e).context(format!("writing {}", dir.display())))
    })?;
    Ok(Exit::Clean)
}

/// The child side of an active probe: one TCP connection attempt, reported as one JSON line.
fn probe_connect(args: ProbeConnectArgs) -> CliResult {
    let connect = ec2_harden::host::probe::connect(
        args.addr,
        std::time::Duration::from_millis(args.timeout_ms),
    );
    let report = ec2_harden::host::probe::ProbeReport {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        target: args.addr.to_string(),
        connect,
    };
    let line = serde_json::to_string(&report).map_err(Failure::internal)?;
    out(&format!("{line}\n"))?;
    Ok(Exit::Clean)
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

/// Most of `fim verify`'s text output, like the text report (SSM shows 24,000 characters).
const FIM_TEXT_MAX: usize = 24_000;

/// A pinned manifest digest from a flag (`HEX` or `sha256:HEX`); a malformed one is a usage error
/// naming the flag.
fn digest_arg(flag: &str, value: Option<&str>) -> Result<Option<[u8; 32]>, Failure> {
    value
        .map(fim::parse_digest)
        .transpose()
        .map_err(|e| Failure::config(anyhow::Error::new(e).context(flag.to_string())))
}

fn fim_failure(e: fim::FimError) -> Failure {
    if e.is_config() {
        Failure::config(e)
    } else {
        Failure::internal(e)
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

fn fim_init(args: FimArgs) -> CliResult {
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

fn fim_verify(args: FimArgs) -> CliResult {
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

fn refs(values: &[String]) -> Vec<BaselineRef> {
    values.iter().map(|v| BaselineRef::parse(v)).collect()
}

fn open_root(root: &PathBuf) -> Result<Sysroot, Failure> {
    Sysroot::open(root).map_err(|e| Failure::config(anyhow::Error::new(e).context("--root")))
}

/// Ask IMDS, within its deadline, unless the run is `--offline` or audits an image (a `--root`
/// other than `/`): IMDS describes the machine running the scan, not a mounted volume. A bad
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE]` is a configuration error.
fn imds_facts(sysroot: &Sysroot, offline: bool) -> Result<imds::ImdsFacts, Failure> {
    let default = imds::ImdsSettings::default().endpoint;
    if offline {
        return Ok(imds::ImdsFacts::not_asked(
            &default,
            imds::ImdsState::Skipped,
            imds::facts::OFFLINE_REASON,
        ));
    }
    let this_host = std::fs::canonicalize(sysroot.root()).is_ok_and(|p| p == Path::new("/"));
    if !this_host {
        return Ok(imds::ImdsFacts::not_asked(
            &default,
            imds::ImdsState::Skipped,
            imds::facts::IMAGE_REASON,
        ));
    }
    let settings = imds::ImdsSettings::from_env().map_err(Failure::config)?;
    let facts = imds::gather(&settings);
    tracing::debug!(endpoint = %facts.endpoint, state = ?facts.state, ms = facts.elapsed_ms, "imds asked");
    Ok(facts)
}

fn check(args: CheckArgs) -> CliResult {
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
    let expect_digest = match &args.fim_expect_digest_parameter {
        Some(name) => Some(parameter_digest(name, args.ssm.region.as_deref())?),
        None => digest_arg("--fim-expect-digest", args.fim_expect_digest.as_deref())?,
    };
    let start = Instant::now();
    let sysroot = open_root(&args.root)?;
    let mut facts = HostFacts::gather(&sysroot);
    let mut facts_ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(root = %sysroot.root().display(), os = %facts.os.id, version = %facts.os.version_id, live = facts.live, "host facts gathered");

    let t = Instant::now();
    let baseline = Baseline::resolve(&refs(&args.baselines), &facts.os).map_err(Failure::config)?;
    let baseline_ms = t.elapsed().as_secs_f64() * 1000.0;
    for w in &baseline.warnings {
        tracing::warn!("{w}");
    }
    let known = engine::families(&baseline);
    for (flag, families) in [("--only", &args.only), ("--skip", &args.skip)] {
        let unknown: Vec<&String> = families.iter().filter(|f| !known.contains(*f)).collect();
        if !unknown.is_empty() {
            return Err(Failure::config(anyhow::anyhow!(
                "{flag}: unknown famil{} {}; baseline `{}` has: {}",
                if unknown.len() == 1 { "y" } else { "ies" },
                unknown
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                baseline.name,
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let opts = RunOptions {
        stage: args.stage.into(),
        only: args.only.clone(),
        skip: args.skip.clone(),
        offline: args.offline,
        fail_on: args.fail_on,
        today: jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .date(),
        fim: fim::FimSettings {
            manifest: args.fim_manifest.clone(),
            expect_digest,
            ..fim::FimSettings::default()
        },
        probes: probe_settings(args.active_probes)?,
    };
    if args.refresh_metadata
        && engine::select(&baseline, &opts)
            .iter()
            .any(|r| r.meta.family == "patch")
    {
        let t = Instant::now();
        let refresh = ec2_harden::host::packages::refresh::run(
            &args.root,
            &sysroot,
            ec2_harden::host::packages::refresh::TIMEOUT,
        );
        facts.package_refresh = Some(refresh.map(|r| r.describe()).unwrap_or_else(|| {
            "package metadata not refreshed: no dpkg or rpm database to refresh for".into()
        }));
        facts_ms += t.elapsed().as_secs_f64() * 1000.0;
    }
    if engine::needs_imds(&baseline, &opts) {
        let t = Instant::now();
        facts.imds = Some(imds_facts(&sysroot, args.offline)?);
        facts_ms += t.elapsed().as_secs_f64() * 1000.0;
    }
    let report = engine::run(&baseline, &sysroot, facts, facts_ms, baseline_ms, &opts);
    for r in report
        .results
        .iter()
        .filter(|r| r.status() == Status::Error)
    {
        tracing::warn!(rule = %r.id, "could not evaluate: {}", match &r.outcome {
            ec2_harden::rule::Outcome::Error { cause } => cause.as_str(),
            _ => "",
        });
    }
    let rendered = report.render(args.format);
    match &args.output {
        Some(path) => {
            output::write_atomic(path, rendered.as_bytes())
                .with_context(|| format!("writing the report to {}", path.display()))
                .map_err(Failure::internal)?;
            out(&report.render(Format::Text))?;
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
        report_ssm(&report, &args)?;
    }
    Ok(if report.gate.passed {
        Exit::Clean
    } else {
        Exit::Findings
    })
}

/// The real SSM client for a region, boxed for the delivery loop.
fn ssm_client(
    region: Option<&str>,
) -> Result<Box<dyn ec2_harden::ssm::client::SsmApi>, ec2_harden::ssm::client::ApiError> {
    Ok(Box::new(ec2_harden::ssm::client::SdkSsm::new(region)?))
}

fn ssm_failure(e: ec2_harden::ssm::SsmError) -> Failure {
    match e {
        ec2_harden::ssm::SsmError::NoInstanceId { .. }
        | ec2_harden::ssm::SsmError::BadInstanceId { .. } => Failure::config(e),
        _ => Failure::internal(e),
    }
}

/// What a delivery did, as a failure when something was left behind or refused.
fn delivery_result(
    d: &ec2_harden::ssm::deliver::Delivery,
    spool: &Path,
    verb: &str,
) -> Result<(), Failure> {
    tracing::info!(
        delivered = d.delivered.len(),
        stale = d.stale.len(),
        rejected = d.rejected.len(),
        pending = d.pending,
        "{verb}"
    );
    if let Some((key, why)) = d.rejected.first() {
        return Err(Failure::internal(anyhow::anyhow!(
            "SSM refused {} spooled report{} (first: {key}: {why}); kept in {}/rejected for inspection",
            d.rejected.len(),
            if d.rejected.len() == 1 { "" } else { "s" },
            spool.display()
        )));
    }
    if d.pending > 0 {
        return Err(Failure::internal(anyhow::anyhow!(
            "{} report{} not delivered yet, kept in {}: {}; `ec2-harden report flush` or the next run delivers {}",
            d.pending,
            if d.pending == 1 { "" } else { "s" },
            spool.display(),
            d.stopped.as_deref().unwrap_or("stopped"),
            if d.pending == 1 { "it" } else { "them" }
        )));
    }
    Ok(())
}

/// `check --report ssm`: spool the report, then deliver it and anything older.
fn report_ssm(report: &ec2_harden::report::Report, args: &CheckArgs) -> Result<(), Failure> {
    let target = ec2_harden::ssm::target(
        args.instance_id.as_deref(),
        args.ssm.region.as_deref(),
        report.host.imds.as_ref(),
        || {
            let settings = imds::ImdsSettings::from_env().unwrap_or_default();
            imds::gather(&settings)
        },
    )
    .map_err(ssm_failure)?;
    let settings = args.ssm.settings();
    let d = ec2_harden::ssm::report(report, &target, &settings, ssm_client).map_err(ssm_failure)?;
    delivery_result(&d, &settings.spool_dir, "ssm report delivered")
}

fn report_flush(args: FlushArgs) -> CliResult {
    let settings = args.ssm.settings();
    let d = ec2_harden::ssm::flush(&settings, args.ssm.region.as_deref(), ssm_client)
        .map_err(ssm_failure)?;
    out(&format!(
        "report flush: {} delivered, {} stale dropped, {} rejected, {} still spooled in {}\n",
        d.delivered.len(),
        d.stale.len(),
        d.rejected.len(),
        d.pending,
        settings.spool_dir.display()
    ))?;
    delivery_result(&d, &settings.spool_dir, "report flush finished")?;
    Ok(Exit::Clean)
}

/// The SSM client for Parameter Store, with errors that name the endpoint.
fn parameter_client(region: Option<&str>) -> Result<ec2_harden::ssm::client::SdkSsm, Failure> {
    ec2_harden::ssm::client::SdkSsm::new(region).map_err(|e| Failure::config(anyhow::Error::new(e)))
}

/// `--fim-expect-digest-parameter` / `--expect-digest-parameter`: the pinned digest from SSM.
fn parameter_digest(name: &str, region: Option<&str>) -> Result<[u8; 32], Failure> {
    use ec2_harden::ssm::client::{ApiError, SsmApi};
    let region = ec2_harden::ssm::region(region, None);
    let mut client = parameter_client(region.as_deref())?;
    let endpoint = client.endpoint();
    let value = ec2_harden::ssm::pin::read(&mut client, name).map_err(|e| {
        let blocked = matches!(e, ApiError::Blocked { .. } | ApiError::Rejected { .. });
        let err = anyhow::anyhow!(
            "reading the pinned FIM digest from SSM parameter {name} at {endpoint}: {e}"
        );
        if blocked {
            Failure::config(err)
        } else {
            Failure::internal(err)
        }
    })?;
    fim::parse_digest(&value).map_err(|e| {
        Failure::config(anyhow::Error::new(e).context(format!("SSM parameter {name}")))
    })
}

/// `--publish-digest-parameter`: write the digest the bake sealed.
fn publish_digest(
    report: &ec2_harden::report::Report,
    name: &str,
    region: Option<&str>,
) -> Result<(), Failure> {
    use ec2_harden::ssm::client::SsmApi;
    let Some(digest) = ec2_harden::ssm::payload::fim_manifest_digest(report) else {
        return Err(Failure::internal(anyhow::anyhow!(
            "--publish-digest-parameter {name}: this run sealed no FIM manifest (is the fim family skipped or failing?)"
        )));
    };
    let region = ec2_harden::ssm::region(region, None);
    let mut client = parameter_client(region.as_deref())?;
    let endpoint = client.endpoint();
    ec2_harden::ssm::pin::publish(&mut client, name, &digest, &report.baseline.name).map_err(
        |e| {
            Failure::internal(anyhow::anyhow!(
                "publishing the FIM digest to SSM parameter {name} at {endpoint}: {e}"
            ))
        },
    )?;
    tracing::info!(parameter = name, %digest, "FIM manifest digest published");
    Ok(())
}

fn baseline(cmd: BaselineCommand) -> CliResult {
    match cmd {
        BaselineCommand::List => {
            let mut text = format!(
                "{:<24} {:<9} {:>6}  {:<26} {}\n",
                "NAME", "VERSION", "RULES", "MATCH", "DESCRIPTION"
            );
            for layer in embedded::all().map_err(Failure::internal)? {
                let resolved = Baseline::embedded(&layer.name).map_err(Failure::internal)?;
                let matches = layer.distro.as_ref().map_or_else(
                    || "(any Linux)".to_string(),
                    |m| {
                        let v = if m.version_id.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", m.version_id.join("|"))
                        };
                        format!("{}{v}", m.id.join("|"))
                    },
                );
                text.push_str(&format!(
                    "{:<24} {:<9} {:>6}  {:<26} {}\n",
                    layer.name,
                    layer.version,
                    resolved.rules.len(),
                    matches,
                    layer.description
                ));
            }
            out(&text)?;
            Ok(Exit::Clean)
        }
        BaselineCommand::Show { name, raw } => {
            let r = BaselineRef::parse(&name);
            if raw {
                let text = match &r {
                    BaselineRef::Name(n) => embedded::EMBEDDED
                        .iter()
                        .find(|(stem, _)| stem == n)
                        .map(|(_, text)| text.to_string())
                        .ok_or_else(|| {
                            Failure::config(BaselineError::UnknownName { name: n.clone() })
                        })?,
                    BaselineRef::File(p) => std::fs::read_to_string(p).map_err(|source| {
                        Failure::config(BaselineError::Read {
                            path: p.clone(),
                            source,
                        })
                    })?,
                };
                out(&text)?;
                return Ok(Exit::Clean);
            }
            let b = Baseline::resolve_only(&[r]).map_err(Failure::config)?;
            let mut text = format!("baseline {} ({})\nlayers:", b.name, b.digest);
            for l in &b.layers {
                text.push_str(&format!(" {} {} [{}];", l.name, l.version, l.source));
            }
            text.push_str(&format!(
                "\n{} rules, {} waivers\n\n",
                b.rules.len(),
                b.waivers.len()
            ));
            for r in &b.rules {
                let stages: Vec<&str> = r.meta.stages.iter().map(|s| s.as_str()).collect();
                text.push_str(&format!(
                    "{:<44} {:<8} {:<14} {:<10} {}\n",
                    r.meta.id,
                    r.meta.severity,
                    stages.join(","),
                    r.meta.family,
                    r.meta.title
                ));
            }
            text.push_str("\nfile integrity (fim) paths, most specific wins:\n");
            for p in &b.fim.paths {
                text.push_str(&format!("  {:<9} {}\n", p.policy.as_str(), p.path));
            }
            out(&text)?;
            Ok(Exit::Clean)
        }
        BaselineCommand::Validate { file } => {
            let layer = Layer::load_file(&file).map_err(Failure::config)?;
            let own = layer.rules.len();
            let waivers = layer.waivers.len();
            let b = Baseline::resolve_only(&[BaselineRef::File(file.clone())])
                .map_err(Failure::config)?;
            for w in &b.warnings {
                tracing::warn!("{w}");
            }
            out(&format!(
                "ok: {}: {own} rules, {waivers} waivers; {} rules with what it extends ({} warning{})\n",
                file.display(),
                b.rules.len(),
                b.warnings.len(),
                if b.warnings.len() == 1 { "" } else { "s" }
            ))?;
            Ok(Exit::Clean)
        }
    }
}

fn explain(args: ExplainArgs) -> CliResult {
    let candidates: Vec<Baseline> = if args.baselines.is_empty() {
        embedded::names()
            .into_iter()
            .map(Baseline::embedded)
            .collect::<Result<_, _>>()
            .map_err(Failure::internal)?
    } else {
        vec![Baseline::resolve_only(&refs(&args.baselines)).map_err(Failure::config)?]
    };
    let Some(rule) = candidates.iter().rev().find_map(|b| b.rule(&args.rule_id)) else {
        let mut ids: Vec<&str> = candidates
            .iter()
            .flat_map(|b| b.rules.iter().map(|r| r.meta.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let near: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| {
                id.contains(args.rule_id.as_str())
                    || args
                        .rule_id
                        .split('-')
                        .filter(|w| w.len() > 2)
                        .any(|w| id.contains(w))
            })
            .take(8)
            .collect();
        return Err(Failure::config(anyhow::anyhow!(
            "no rule `{}` in the baselines searched{}",
            args.rule_id,
            if near.is_empty() {
                String::new()
            } else {
                format!("; similar: {}", near.join(", "))
            }
        )));
    };
    let m = &rule.meta;
    let stages: Vec<&str> = m.stages.iter().map(|s| s.as_str()).collect();
    let mut text = format!(
        "{}\n  {}\n\nseverity:    {}\nstages:      {}\nfamily:      {} (kind {})\ndefined at:  {}\n\nWhy:\n{}\n\nFix:\n{}\n",
        m.id,
        m.title,
        m.severity,
        stages.join(", "),
        m.family,
        m.kind,
        m.origin,
        indent(&m.rationale),
        indent(&m.remediation)
    );
    if !m.references.is_empty() {
        text.push_str("\nReferences:\n");
        for r in &m.references {
            text.push_str(&format!("  - {r}\n"));
        }
    }
    out(&text)?;
    Ok(Exit::Clean)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
