//! Hidden subcommands: the child side of an active probe (`__probe-connect`, run by
//! `check --active-probes` as another uid) and the packages' generated files (`__dist-assets`).

use std::path::Path;

use clap::Args;

use super::{out, Cli, CliResult, Exit, Failure};

#[derive(Debug, Args)]
pub struct ProbeConnectArgs {
    /// The address to connect to (`169.254.169.254:80`, `[fd00:ec2::254]:80`).
    pub addr: std::net::SocketAddr,
    #[arg(long, default_value = "1500")]
    pub timeout_ms: u64,
}

/// The packages' generated files (scripts/dist.sh): one man page per visible command
/// (`ec2-harden.1`, `ec2-harden-check.1`, ...) and the bash, zsh and fish completions, so they
/// can never drift from the options the binary really takes.
pub fn dist_assets(dir: &Path) -> CliResult {
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
pub fn probe_connect(args: ProbeConnectArgs) -> CliResult {
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
