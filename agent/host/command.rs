//! Running a program of the scanning host (`nft`, `iptables-save`, `apt-get update`, ...) with a
//! timeout, its output collected without blocking on a full pipe. The one place the host layer
//! starts a process; the program gets `LC_ALL=C` and no standard input.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a program could not give its output.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {seconds} s")]
    Timeout { program: String, seconds: u64 },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

/// Run `program args` with a timeout; its stdout, or `None` when the program is not installed.
pub fn run_tool(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Option<String>, ToolError> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ToolError::Spawn {
                program: program.into(),
                source,
            })
        }
    };
    let mut out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.take(64 << 10).read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ToolError::Timeout {
                    program: program.into(),
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(ToolError::Spawn {
                    program: program.into(),
                    source,
                })
            }
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(ToolError::Failed {
            program: format!("{program} {}", args.join(" ")),
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        });
    }
    Ok(Some(String::from_utf8_lossy(&stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_missing_program_failure_and_timeout() {
        let out = run_tool("sh", &["-c", "echo hi"], Duration::from_secs(5)).unwrap();
        assert_eq!(out.as_deref(), Some("hi\n"));
        assert!(
            run_tool("ec2-harden-no-such-program", &[], Duration::from_secs(5))
                .unwrap()
                .is_none()
        );
        let failed = run_tool(
            "sh",
            &["-c", "echo oops >&2; exit 3"],
            Duration::from_secs(5),
        );
        assert!(
            matches!(&failed, Err(ToolError::Failed { stderr, .. }) if stderr == "oops"),
            "{failed:?}"
        );
        let slow = run_tool("sleep", &["5"], Duration::from_millis(100));
        assert!(matches!(slow, Err(ToolError::Timeout { .. })), "{slow:?}");
    }
}
