//! The local SSM endpoint for the tests: `tests/ssm/endpoint.py` (Compliance and Inventory served
//! from memory, every request held to botocore's SSM model and SigV4-checked, fault injection and a
//! request log), with a moto server behind it for every other operation (Parameter Store).
//!
//! [`SsmEndpoint::start`] runs both on free loopback ports for one test and stops them when dropped;
//! [`SsmEndpoint::env`] is the environment that points an AWS SDK or the AWS CLI at it with the
//! credentials whose signatures the endpoint verifies; [`SsmEndpoint::aws`] runs the real AWS CLI
//! from the venv `tests/run.sh` builds (`target/venv`); [`SsmEndpoint::send_raw`] sends requests
//! exactly as written (signed with botocore, `tests/ssm/send.py`), past the client-side checks of
//! the CLI and SDKs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The region requests must be signed for.
pub const REGION: &str = "us-east-1";
/// The throwaway credentials the endpoint verifies signatures with.
pub const ACCESS_KEY_ID: &str = "AKIDSSMTESTENDPOINT";
pub const SECRET_ACCESS_KEY: &str = "ssm-test-endpoint-secret";

/// What an injected fault does to the next request of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 `InternalServerError`.
    Http500,
    /// 400 `ThrottlingException` ("Rate exceeded").
    Throttle,
    /// The request is read, then the connection is reset (TCP RST).
    Reset,
    /// The request is read and never answered, until the client gives up.
    Hang,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Http500 => "http500",
            Fault::Throttle => "throttle",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program from the venv `tests/run.sh` creates under `target/venv`.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo().join("target/venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh creates the venv (awscli, moto, PyYAML, cfn-lint)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct SsmEndpoint {
    url: String,
    moto_url: Option<String>,
    endpoint: Child,
    moto: Option<Child>,
    dir: tempfile::TempDir,
}

impl SsmEndpoint {
    /// The endpoint with a moto server behind it, verifying signatures made with
    /// [`SECRET_ACCESS_KEY`].
    pub fn start() -> SsmEndpoint {
        SsmEndpoint::start_with(true, true)
    }

    /// `moto`: start a moto server for the operations not served here (else they are refused);
    /// `verify_signatures`: recompute SigV4 signatures (else only their form is checked).
    pub fn start_with(moto: bool, verify_signatures: bool) -> SsmEndpoint {
        SsmEndpoint::spawn(moto, verify_signatures, false)
    }

    /// The endpoint over HTTPS (no moto, signatures verified), its server certificate issued by a
    /// private CA made for it ([`SsmEndpoint::ca_pem`]). The AWS CLI helpers trust that CA; the
    /// control API (log, faults, reset) is plain HTTP only and not available here.
    pub fn start_tls() -> SsmEndpoint {
        SsmEndpoint::spawn(false, true, true)
    }

    fn spawn(moto: bool, verify_signatures: bool, tls: bool) -> SsmEndpoint {
        let dir = tempfile::Builder::new()
            .prefix("ec2h-ssm-")
            .tempdir()
            .unwrap();
        let (moto, moto_url) = if moto {
            let port = free_port();
            let child = Command::new(venv_bin("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap())
                .spawn()
                .expect("start moto_server");
            let deadline = Instant::now() + Duration::from_secs(60);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "moto_server did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            (Some(child), Some(format!("http://127.0.0.1:{port}")))
        } else {
            (None, None)
        };
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(repo().join("tests/ssm/endpoint.py"))
            .args(["--port", "0", "--region", REGION]);
        if let Some(url) = &moto_url {
            cmd.args(["--moto-url", url]);
        }
        if verify_signatures {
            cmd.args(["--secret-key", SECRET_ACCESS_KEY]);
        }
        if tls {
            cmd.arg("--tls-dir").arg(dir.path().join("tls"));
        }
        let mut endpoint = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("endpoint.log")).unwrap())
            .spawn()
            .expect("start tests/ssm/endpoint.py");
        let stdout = endpoint.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut started = SsmEndpoint {
            url: String::new(),
            moto_url,
            endpoint,
            moto,
            dir,
        };
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        started.url = match line.trim().strip_prefix("listening ") {
            Some(url) => url.to_string(),
            None => panic!(
                "tests/ssm/endpoint.py did not start (stdout {line:?}); stderr:\n{}",
                started.stderr()
            ),
        };
        started
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The moto server behind the endpoint, if one was started.
    pub fn moto_url(&self) -> Option<&str> {
        self.moto_url.as_deref()
    }

    /// The PEM file of the CA that issued an HTTPS endpoint's certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// What the endpoint logged (to show when a test fails).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("endpoint.log")).unwrap_or_default()
    }

    /// The environment of an AWS SDK or CLI client of this endpoint: its credentials and region,
    /// `AWS_ENDPOINT_URL_SSM`, and nothing from the host's AWS configuration or IMDS.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL_SSM", self.url.clone()),
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Apply [`SsmEndpoint::env`] to `cmd`, removing the host's profile and session token.
    pub fn apply_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .envs(self.env())
    }

    /// The real AWS CLI against this endpoint (`aws ssm ...` is `args`), with extra environment.
    pub fn aws_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(venv_bin("aws"));
        if self.url.starts_with("https:") {
            cmd.env("AWS_CA_BUNDLE", self.ca_pem());
        }
        self.apply_env(&mut cmd)
            .args(["--endpoint-url", &self.url, "--output", "json"])
            .args(args)
            .envs(env.iter().copied());
        cmd.output().expect("run the AWS CLI")
    }

    pub fn aws(&self, args: &[&str]) -> Output {
        self.aws_with(args, &[])
    }

    /// The AWS CLI's JSON answer; panics (with the endpoint's log) when the command fails.
    pub fn aws_json(&self, args: &[&str]) -> Value {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}\nendpoint log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.stderr()
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "aws {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Send `requests` (a JSON list, see `tests/ssm/send.py`) exactly as written, signed with
    /// botocore unless a request says `"sign": false`; one result per request, in order.
    pub fn send_raw(&self, requests: &Value) -> Vec<Value> {
        let mut child = Command::new(venv_bin("python"))
            .arg(repo().join("tests/ssm/send.py"))
            .args(["--url", &self.url, "--access-key", ACCESS_KEY_ID])
            .args(["--secret-key", SECRET_ACCESS_KEY, "--region", REGION])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tests/ssm/send.py");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(requests.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "send.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("send.py prints a JSON list")
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Value {
        let addr = self
            .url
            .strip_prefix("http://")
            .expect("the control API is served over plain HTTP only");
        let mut stream = TcpStream::connect(addr).expect("connect to the endpoint");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{method} {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap()
    }

    /// Every AWS request received so far, in arrival order (`seq`, `operation`, `body`, `outcome`,
    /// `status`, `message`).
    pub fn log(&self) -> Vec<Value> {
        match self.control("GET", "/__log", "") {
            Value::Array(entries) => entries,
            other => panic!("/__log: {other}"),
        }
    }

    /// The logged requests of one operation, in arrival order.
    pub fn requests(&self, operation: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|e| e["operation"] == operation)
            .collect()
    }

    /// Queue `count` faults of `kind` for the next requests of `operation`.
    pub fn fault(&self, operation: &str, kind: Fault, count: u32) {
        let ask =
            serde_json::json!({"operation": operation, "kind": kind.as_str(), "count": count});
        self.control("POST", "/__faults", &ask.to_string());
    }

    /// The faults still queued, per operation.
    pub fn queued_faults(&self) -> Value {
        self.control("GET", "/__faults", "")
    }

    /// Forget everything stored, logged and queued.
    pub fn reset(&self) {
        self.control("POST", "/__reset", "");
    }
}

impl Drop for SsmEndpoint {
    fn drop(&mut self) {
        for child in [Some(&mut self.endpoint), self.moto.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
