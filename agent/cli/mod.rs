//! The command line: the clap definition of the commands, dispatch to one file per subcommand
//! (`check`, `fim`, `baseline` and `explain`, `report` with the rest of SSM, the hidden internal
//! ones), and the mapping from outcomes to exit codes (0 no finding at or above `--fail-on`,
//! 1 findings, 2 usage/configuration/baseline error, 3 the agent itself failed). The work itself
//! is the library's (`ec2_harden::run::check` for `check`); reports go to stdout, logs to stderr.

mod baseline;
mod check;
mod fim;
mod internal;
mod ssm;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use ec2_harden::baseline::BaselineRef;
use ec2_harden::rule::{Profile, Stage};
use ec2_harden::sysroot::Sysroot;

use baseline::{BaselineCommand, ExplainArgs};
use check::CheckArgs;
use fim::FimCommand;
use internal::ProbeConnectArgs;
use ssm::ReportCommand;

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

/// `--profile`: which rules run and how settings are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileArg {
    /// Every rule of the baseline (CIS rules, EC2-native families, hardening beyond CIS);
    /// settings judged by their effect.
    Ec2,
    /// The benchmark's Level 1 Server recommendations, judged as its audit procedure reads.
    #[value(name = "cis-level1-server")]
    CisLevel1Server,
    /// Level 1 and Level 2 Server recommendations, judged as the benchmark's audit reads.
    #[value(name = "cis-level2-server")]
    CisLevel2Server,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Profile {
        match p {
            ProfileArg::Ec2 => Profile::Ec2,
            ProfileArg::CisLevel1Server => Profile::CisLevel1Server,
            ProfileArg::CisLevel2Server => Profile::CisLevel2Server,
        }
    }
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

/// True when the process started with stdout closed (`>&-`): Rust's runtime then puts `/dev/null`
/// there, opened read-write, where a shell's `>/dev/null` opens it write-only. A report written
/// there would be lost without a word.
fn stdout_was_closed() -> bool {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::stat::{fstat, SFlag};
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let stdout = std::io::stdout();
    let (Ok(flags), Ok(st)) = (
        fcntl(stdout.as_fd(), FcntlArg::F_GETFL),
        fstat(stdout.as_fd()),
    ) else {
        return true;
    };
    let read_write = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_RDWR;
    let char_device = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    let dev_null = std::fs::metadata("/dev/null").map(|n| n.rdev()).ok();
    read_write && char_device && Some(st.st_rdev) == dev_null
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Check(args) => check::check(args),
        Command::Fim(FimCommand::Init(args)) => fim::fim_init(args),
        Command::Fim(FimCommand::Verify(args)) => fim::fim_verify(args),
        Command::Baseline(cmd) => baseline::baseline(cmd),
        Command::Explain(args) => baseline::explain(args),
        Command::ProbeConnect(args) => internal::probe_connect(args),
        Command::Report(ReportCommand::Flush(args)) => ssm::report_flush(args),
        Command::DistAssets { dir } => internal::dist_assets(&dir),
    }
}

/// A pinned manifest digest from a flag (`HEX` or `sha256:HEX`); a malformed one is a usage error
/// naming the flag.
fn digest_arg(flag: &str, value: Option<&str>) -> Result<Option<[u8; 32]>, Failure> {
    value
        .map(ec2_harden::fim::parse_digest)
        .transpose()
        .map_err(|e| Failure::config(anyhow::Error::new(e).context(flag.to_string())))
}

fn refs(values: &[String]) -> Vec<BaselineRef> {
    values.iter().map(|v| BaselineRef::parse(v)).collect()
}

fn open_root(root: &PathBuf) -> Result<Sysroot, Failure> {
    Sysroot::open(root).map_err(|e| Failure::config(anyhow::Error::new(e).context("--root")))
}
