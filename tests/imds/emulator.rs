//! An IMDS emulator for the tests: a small HTTP/1.1 server on the loopback that behaves as the EC2
//! User Guide documents the instance metadata service, so the agent's client is tested against
//! IMDS's rules rather than against itself.
//!
//! * `PUT /latest/api/token` issues a session token for `X-aws-ec2-metadata-token-ttl-seconds`
//!   seconds; a missing or non-numeric TTL, or one outside 1..=21600, is 400; a PUT carrying
//!   `X-Forwarded-For` is 403 (IMDS refuses tokens to anything that looks like a proxy).
//! * GETs with `X-aws-ec2-metadata-token`: an unknown or expired token is 401 whatever the mode; no
//!   token is 401 when tokens are required (IMDSv2 only) and accepted when they are optional
//!   (IMDSv1 allowed). Other methods are 405; absent paths are 404.
//! * Content: the instance identity document, `iam/info` and `iam/security-credentials/ROLE` (with
//!   a fake secret key and token the tests look for in the agent's output: they must never appear),
//!   and instance tags under `tags/instance` (404 when tags in metadata are off).
//! * Faults: slow answers, accepting connections and never answering, 403 to everything, failing
//!   the first GETs with 503, expiring the first token at once; and a "down" endpoint where nothing
//!   listens.
//!
//! Every request is logged (method, path, headers) for the tests to assert on. Connections are
//! served by one thread each and everything stops when the emulator is dropped.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The fake secrets the emulator hands out; the agent must never print or store them.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEMULATORKEY";
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEMULATOR-SESSION-TOKEN-DO-NOT-PRINT";
pub const ACCESS_KEY_ID: &str = "ASIAIOSFODNN7EXAMPLE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// `HttpTokens=required`: IMDSv2 only.
    Required,
    /// `HttpTokens=optional`: IMDSv1 allowed.
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Every answer is delayed this long.
    Slow(Duration),
    /// Connections are accepted and read, and never answered.
    HangAfterAccept,
    /// Every request is answered 403: what an instance with the metadata endpoint turned off, or
    /// a proxy or firewall answering for the address off EC2, looks like.
    Forbidden,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub profile_arn: String,
    pub name: String,
    pub code: String,
    /// RFC 3339.
    pub expiration: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tokens: Tokens,
    pub mode: Mode,
    pub account_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub role: Option<Role>,
    /// `None`: tags in instance metadata are disabled (404).
    pub tags: Option<BTreeMap<String, String>>,
    /// The first this many GETs answer 503.
    pub fail_first_gets: u32,
    /// The first token issued is already expired when it is used.
    pub expire_first_token: bool,
}

/// Credentials valid for six hours from now.
pub fn valid_role() -> Role {
    let expiration = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(6);
    Role {
        profile_arn: "arn:aws:iam::123456789012:instance-profile/web-server".into(),
        name: "web-server-role".into(),
        code: "Success".into(),
        expiration: expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

impl Config {
    /// An instance in eu-west-1 with a role, IMDSv2 only, tags enabled with Owner and Environment.
    pub fn v2_only() -> Config {
        Config {
            tokens: Tokens::Required,
            mode: Mode::Normal,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            availability_zone: "eu-west-1a".into(),
            instance_id: "i-0123456789abcdef0".into(),
            image_id: "ami-0abcdef1234567890".into(),
            instance_type: "t3.micro".into(),
            role: Some(valid_role()),
            tags: Some(
                [("Owner", "platform-team"), ("Environment", "prod")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            fail_first_gets: 0,
            expire_first_token: false,
        }
    }

    /// The same instance with `HttpTokens=optional`.
    pub fn v1_allowed() -> Config {
        Config {
            tokens: Tokens::Optional,
            ..Config::v2_only()
        }
    }

    fn identity_document(&self) -> String {
        format!(
            r#"{{
  "accountId" : "{}",
  "architecture" : "x86_64",
  "availabilityZone" : "{}",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "{}",
  "instanceId" : "{}",
  "instanceType" : "{}",
  "kernelId" : null,
  "pendingTime" : "2024-11-05T09:30:00Z",
  "privateIp" : "10.0.1.23",
  "ramdiskId" : null,
  "region" : "{}",
  "version" : "2017-09-30"
}}"#,
            self.account_id,
            self.availability_zone,
            self.image_id,
            self.instance_id,
            self.instance_type,
            self.region
        )
    }
}

/// One request as the emulator received it; header names lowercased.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

struct State {
    config: Config,
    tokens: Mutex<HashMap<String, Instant>>,
    issued: AtomicU32,
    gets: AtomicU32,
    log: Mutex<Vec<Logged>>,
    stop: AtomicBool,
}

pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// An endpoint where nothing listens (a port bound and released): connections are refused.
pub fn down_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

impl Emulator {
    pub fn start(config: Config) -> Emulator {
        Emulator::start_on("127.0.0.1:0", config)
    }

    pub fn start_on(bind: &str, config: Config) -> Emulator {
        let listener = TcpListener::bind(bind).expect("bind the emulator");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            config,
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicU32::new(0),
            gets: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let acceptor = thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(stream, &st));
            }
        });
        Emulator {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` (or `http://[::1]:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // wake the acceptor
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

/// Read one request (headers only; IMDS requests have no body worth reading). `None` at EOF.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    let mut total = line.len();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        total += h.len();
        if total > 16 * 1024 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let body_len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if body_len > 0 {
        let mut body = vec![0; body_len.min(64 * 1024)];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

fn serve(stream: TcpStream, st: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    // a connection lives at most this long: the tests' runs take seconds
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && !st.stop.load(Ordering::SeqCst) {
        let Some(req) = read_request(&mut reader) else {
            // a read timeout with nothing read: keep waiting for the next request, until EOF
            if reader.buffer().is_empty() && peer_open(reader.get_ref()) {
                continue;
            }
            return;
        };
        st.log.lock().unwrap().push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
        });
        match st.config.mode {
            Mode::HangAfterAccept => {
                // accepted and read: never answer, hold the connection until stopped
                while Instant::now() < until && !st.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Mode::Slow(delay) => thread::sleep(delay),
            Mode::Normal | Mode::Forbidden => {}
        }
        let (status, body) = if st.config.mode == Mode::Forbidden {
            (403, "Forbidden".to_string())
        } else {
            answer(&req, st)
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Service Unavailable",
        };
        let mut head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nServer: EC2ws\r\nConnection: keep-alive\r\n",
            body.len()
        );
        if req.path == "/latest/api/token" && status == 200 {
            let ttl = req
                .headers
                .get("x-aws-ec2-metadata-token-ttl-seconds")
                .cloned()
                .unwrap_or_default();
            head.push_str(&format!("X-Aws-Ec2-Metadata-Token-Ttl-Seconds: {ttl}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err()
        {
            return;
        }
    }
}

/// True while the peer has not closed the connection (a read timeout, not EOF).
fn peer_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match stream.peek(&mut buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn new_token(st: &State, ttl: u64) -> String {
    let n = st.issued.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("AQAEAEmu{n:04}{nanos:x}==");
    let expires = if n == 0 && st.config.expire_first_token {
        Instant::now()
    } else {
        Instant::now() + Duration::from_secs(ttl)
    };
    st.tokens.lock().unwrap().insert(token.clone(), expires);
    token
}

fn answer(req: &Request, st: &State) -> (u16, String) {
    let cfg = &st.config;
    if req.path == "/latest/api/token" {
        if req.method != "PUT" {
            return (405, String::new());
        }
        if req.headers.contains_key("x-forwarded-for") {
            return (403, String::new());
        }
        let ttl = req
            .headers
            .get("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok());
        return match ttl {
            Some(ttl) if (1..=21600).contains(&ttl) => (200, new_token(st, ttl)),
            _ => (400, String::new()),
        };
    }
    if req.method != "GET" {
        return (405, String::new());
    }
    match req.headers.get("x-aws-ec2-metadata-token") {
        Some(token) => {
            let valid = st
                .tokens
                .lock()
                .unwrap()
                .get(token)
                .is_some_and(|expires| Instant::now() < *expires);
            if !valid {
                return (401, String::new());
            }
        }
        None if cfg.tokens == Tokens::Required => return (401, String::new()),
        None => {}
    }
    if st.gets.fetch_add(1, Ordering::SeqCst) < cfg.fail_first_gets {
        return (503, String::new());
    }
    let not_found = (404, "404 - Not Found".to_string());
    let path = req.path.as_str();
    let body = match path {
        "/latest/meta-data/instance-id" => cfg.instance_id.clone(),
        "/latest/meta-data/ami-id" => cfg.image_id.clone(),
        "/latest/meta-data/instance-type" => cfg.instance_type.clone(),
        "/latest/meta-data/placement/availability-zone" => cfg.availability_zone.clone(),
        "/latest/meta-data/placement/region" => cfg.region.clone(),
        "/latest/dynamic/instance-identity/document" => cfg.identity_document(),
        "/latest/meta-data/iam/info" => match &cfg.role {
            Some(r) => format!(
                "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2024-11-05T09:31:00Z\",\n  \"InstanceProfileArn\" : \"{}\",\n  \"InstanceProfileId\" : \"AIPAEXAMPLEPROFILEID\"\n}}",
                r.profile_arn
            ),
            None => return not_found,
        },
        "/latest/meta-data/iam/security-credentials/" => match &cfg.role {
            Some(r) => r.name.clone(),
            None => return not_found,
        },
        "/latest/meta-data/tags/instance" | "/latest/meta-data/tags/instance/" => match &cfg.tags {
            Some(tags) => tags.keys().cloned().collect::<Vec<_>>().join("\n"),
            None => return not_found,
        },
        _ => {
            if let (Some(role), Some(name)) = (
                &cfg.role,
                path.strip_prefix("/latest/meta-data/iam/security-credentials/"),
            ) {
                if name != role.name {
                    return not_found;
                }
                format!(
                    "{{\n  \"Code\" : \"{}\",\n  \"LastUpdated\" : \"2024-11-05T09:31:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"{ACCESS_KEY_ID}\",\n  \"SecretAccessKey\" : \"{SECRET_ACCESS_KEY}\",\n  \"Token\" : \"{SESSION_TOKEN}\",\n  \"Expiration\" : \"{}\"\n}}",
                    role.code, role.expiration
                )
            } else if let (Some(tags), Some(key)) =
                (&cfg.tags, path.strip_prefix("/latest/meta-data/tags/instance/"))
            {
                match tags.get(key) {
                    Some(v) => v.clone(),
                    None => return not_found,
                }
            } else {
                return not_found;
            }
        }
    };
    (200, body)
}

/// A raw HTTP exchange with the emulator, for testing its own rules: returns the status and body.
pub fn raw(endpoint: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the emulator");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length: ") {
            len = v.parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    text.push_str(&String::from_utf8_lossy(&body));
    (status, text)
}
