//! `check --refresh-metadata`: before the patch rules read the cached package-manager metadata,
//! ask the package manager to refresh it for the sysroot — useful at bake, where the builder has
//! network and the image's lists may be weeks old. It runs with an argument vector (never a
//! shell) and a timeout: `apt-get update -o Dir=ROOT` on dpkg systems, `dnf makecache
//! --installroot ROOT --releasever R` (or yum's) on rpm systems. Never with `--offline`. A
//! refresh that fails or times out is a warning and a line in the report; the stale metadata it
//! leaves is then judged by `patch-metadata-fresh` as usual, never a crash.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sysroot::Sysroot;

/// How long a refresh may take before it is stopped.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// What a refresh did.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    /// The command run, for the report (`apt-get update -o Dir=/mnt/ami ...`).
    pub command: String,
    /// `Ok` with the seconds it took, or why it failed.
    pub result: Result<f64, String>,
}

impl Refresh {
    /// One line for the report.
    pub fn describe(&self) -> String {
        match &self.result {
            Ok(s) => format!(
                "package metadata refreshed by `{}` ({s:.1} s)",
                self.command
            ),
            Err(e) => format!(
                "package metadata refresh `{}` failed, the metadata judged is what was cached: {e}",
                self.command
            ),
        }
    }
}

/// The refresh command for the sysroot at `root` (a host path), or `None` when it has no
/// package database this knows how to refresh.
pub fn command(root: &Path, sysroot: &Sysroot) -> Option<(String, Vec<String>)> {
    let r = root.to_string_lossy();
    let r = r.trim_end_matches('/');
    if sysroot.exists("/var/lib/dpkg/status") {
        return Some((
            "apt-get".into(),
            vec![
                "-q".into(),
                "-o".into(),
                format!("Dir={r}/"),
                "-o".into(),
                format!("Dir::State::status={r}/var/lib/dpkg/status"),
                "update".into(),
            ],
        ));
    }
    let rpm = super::rpmdb::SQLITE_PATHS
        .iter()
        .chain([&super::rpmdb::BDB_PATH])
        .any(|p| sysroot.exists(p));
    if !rpm {
        return None;
    }
    let program = if which("dnf") { "dnf" } else { "yum" };
    let mut args = vec![
        "-q".to_string(),
        "makecache".into(),
        "--installroot".into(),
        format!("{r}/"),
    ];
    if !r.is_empty() {
        args.push(format!("--setopt=reposdir={r}/etc/yum.repos.d"));
    }
    if let Some(release) = super::repodata::releasever(sysroot) {
        args.push("--releasever".into());
        args.push(release);
    }
    Some((program.into(), args))
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Runs the refresh for the sysroot; `None` when there is nothing to refresh.
pub fn run(root: &Path, sysroot: &Sysroot, timeout: Duration) -> Option<Refresh> {
    let (program, args) = command(root, sysroot)?;
    let command = format!("{program} {}", args.join(" "));
    let _span = tracing::info_span!("package metadata refresh", %command).entered();
    let started = Instant::now();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match crate::host::command::run_tool(&program, &argv, timeout) {
        Ok(Some(_)) => Ok(started.elapsed().as_secs_f64()),
        Ok(None) => Err(format!("{program} is not installed")),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &result {
        tracing::warn!("package metadata refresh failed: {e}");
    }
    Some(Refresh { command, result })
}
