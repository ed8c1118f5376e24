//! Active probes (`check --active-probes`): prove on a live host what a ruleset only suggests, by
//! trying it. The one probe today is a TCP connection to the instance metadata service made *as
//! another user*: the agent re-executes its own binary through a hidden subcommand
//! ([`PROBE_SUBCOMMAND`]) with `std::process::Command`'s `uid`/`gid` set (the crate has no unsafe
//! code and the agent is multi-threaded, so there is no bare `fork`), the child connects with a
//! short timeout and prints one JSON line saying whether the connection was established. Only the
//! TCP handshake is attempted; nothing is sent, so no credentials are ever read.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The hidden subcommand the child runs: `ec2-harden __probe-connect ADDR --timeout-ms N`.
pub const PROBE_SUBCOMMAND: &str = "__probe-connect";

/// How a run may probe: set by the CLI from `--active-probes`, the binary's own path and the IMDS
/// endpoint the SDK conventions give (`AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSettings {
    /// `--active-probes` was given (and `--offline` was not).
    pub active: bool,
    /// The agent's own executable, re-executed for each probe.
    pub exe: Option<PathBuf>,
    /// The IMDS endpoint URL (`http://169.254.169.254`, `http://[fd00:ec2::254]`, an override).
    pub imds_endpoint: String,
    /// Connect timeout of one probe.
    pub timeout: Duration,
}

impl ProbeSettings {
    pub fn new(active: bool, exe: Option<PathBuf>, imds_endpoint: String) -> ProbeSettings {
        ProbeSettings {
            active,
            exe,
            imds_endpoint,
            timeout: Duration::from_millis(1500),
        }
    }
}

/// What one connection attempt gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Connect {
    /// The TCP handshake completed: the packets got through.
    Connected,
    /// Refused (a TCP reset or an ICMP unreachable, as a firewall `reject` sends).
    Refused { detail: String },
    /// No answer within the timeout (a `drop`, or nothing there).
    TimedOut { ms: u64 },
    /// Any other error (`EPERM` when a local output hook drops the SYN, no route, ...).
    Failed { detail: String },
}

impl Connect {
    pub fn got_through(&self) -> bool {
        matches!(self, Connect::Connected)
    }
    pub fn describe(&self) -> String {
        match self {
            Connect::Connected => "connected".into(),
            Connect::Refused { detail } => format!("refused ({detail})"),
            Connect::TimedOut { ms } => format!("no answer within {ms} ms"),
            Connect::Failed { detail } => format!("failed ({detail})"),
        }
    }
}

/// One probe's report, as the child prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub uid: u32,
    pub gid: u32,
    pub target: String,
    #[serde(flatten)]
    pub connect: Connect,
}

/// Why a probe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("IMDS endpoint `{endpoint}`: {why}")]
    Endpoint { endpoint: String, why: String },
    #[error("no path to the agent's own executable to re-run as uid {uid}")]
    NoExe { uid: u32 },
    #[error("running {exe} as uid {uid}: {source}")]
    Spawn {
        exe: String,
        uid: u32,
        source: std::io::Error,
    },
    #[error("the probe as uid {uid} did not finish within {ms} ms")]
    Timeout { uid: u32, ms: u128 },
    #[error("the probe as uid {uid} failed ({status}): {stderr}")]
    Child {
        uid: u32,
        status: String,
        stderr: String,
    },
    #[error("the probe as uid {uid} printed `{output}`, not its JSON report: {source}")]
    Output {
        uid: u32,
        output: String,
        source: serde_json::Error,
    },
}

/// The socket address of an `http://host[:port]` endpoint (port 80 by default).
pub fn endpoint_addr(endpoint: &str) -> Result<SocketAddr, ProbeError> {
    let err = |why: String| ProbeError::Endpoint {
        endpoint: endpoint.to_string(),
        why,
    };
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| err("not an http:// URL".into()))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| err("unbalanced `[`".into()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| err(format!("bad port `{p}`")))?,
            None => 80,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| err(format!("bad port `{p}`")))?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("the host name has no address".into()))
}

/// The child's side: try one TCP connection and say how it went.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Connect {
    let start = Instant::now();
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Connect::Connected,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Connect::TimedOut {
            ms: start.elapsed().as_millis() as u64,
        },
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Connect::Refused {
            detail: e.to_string(),
        },
        Err(e) => Connect::Failed {
            detail: e.to_string(),
        },
    }
}

/// The parent's side: re-run `exe` as `uid`/`gid` to connect to `addr`, and read its report.
/// Running as the current user (no privilege change) leaves `uid`/`gid` unset on the command.
pub fn run_as(
    exe: &Path,
    uid: u32,
    gid: u32,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<ProbeReport, ProbeError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.arg(PROBE_SUBCOMMAND)
        .arg(addr.to_string())
        .arg("--timeout-ms")
        .arg(timeout.as_millis().to_string())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if nix::unistd::geteuid().as_raw() != uid || nix::unistd::getegid().as_raw() != gid {
        // std drops supplementary groups (setgroups) before setgid/setuid when run as root
        cmd.uid(uid).gid(gid);
    }
    let spawn_err = |source| ProbeError::Spawn {
        exe: exe.display().to_string(),
        uid,
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut out).take(64 << 10).read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut err).take(64 << 10).read_to_end(&mut s);
        s
    });
    let limit = timeout + Duration::from_secs(3);
    let start = Instant::now();
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout {
                    uid,
                    ms: limit.as_millis(),
                });
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let stdout = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(ProbeError::Child {
            uid,
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    serde_json::from_str(stdout.trim()).map_err(|source| ProbeError::Output {
        uid,
        output: stdout.trim().chars().take(200).collect(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_to_addresses() {
        assert_eq!(
            endpoint_addr("http://169.254.169.254").unwrap(),
            "169.254.169.254:80".parse().unwrap()
        );
        assert_eq!(
            endpoint_addr("http://[fd00:ec2::254]").unwrap(),
            "[fd00:ec2::254]:80".parse().unwrap()
        );
        assert_eq!(
            endpoint_addr("http://127.0.0.1:1338/").unwrap(),
            "127.0.0.1:1338".parse().unwrap()
        );
        assert!(endpoint_addr("https://169.254.169.254").is_err());
        assert!(endpoint_addr("http://[fd00:ec2::254:80").is_err());
    }

    #[test]
    fn connect_reports_connected_and_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            connect(addr, Duration::from_secs(2)),
            Connect::Connected,
            "a listening socket accepts"
        );
        drop(listener);
        assert!(matches!(
            connect(addr, Duration::from_secs(2)),
            Connect::Refused { .. }
        ));
    }

    #[test]
    fn report_round_trips_as_one_json_line() {
        let r = ProbeReport {
            uid: 65534,
            gid: 65534,
            target: "169.254.169.254:80".into(),
            connect: Connect::TimedOut { ms: 1500 },
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"result\":\"timed-out\""), "{line}");
        assert_eq!(serde_json::from_str::<ProbeReport>(&line).unwrap(), r);
    }
}
