//! The EC2 Instance Metadata Service (IMDS) client. IMDS is plain HTTP on a link-local address, so
//! this is a small blocking `reqwest` client without TLS, HTTP/2 or proxies, following the AWS SDKs'
//! conventions: endpoint `http://169.254.169.254` (`http://[fd00:ec2::254]` with
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`), overridden by
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, switched off by `AWS_EC2_METADATA_DISABLED=true`; an IMDSv2
//! session token from `PUT /latest/api/token`, then GETs carrying it; 1 s to connect and 1 s to
//! wait for an answer, a few retries on 5xx and 401 (with a fresh token), none on 400/403/404.
//!
//! Every request also respects one overall deadline shared by the whole fact gathering
//! ([`facts::gather`]), so an IMDS that is missing, filtered or hanging after accept never holds a
//! boot up for more than about three seconds. Checks never call this module: they read the
//! [`facts::ImdsFacts`] gathered once before the run.

pub mod facts;

use std::time::{Duration, Instant};

pub use facts::{gather, ImdsFacts, ImdsState};

/// The IPv4 endpoint the SDKs use by default.
pub const ENDPOINT_IPV4: &str = "http://169.254.169.254";
/// The IPv6 endpoint (Nitro instances with IPv6 IMDS enabled).
pub const ENDPOINT_IPV6: &str = "http://[fd00:ec2::254]";
/// Environment variables, as the AWS SDKs and CLI name them.
pub const ENV_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
pub const ENV_ENDPOINT_MODE: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE";
pub const ENV_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";

/// The IMDSv2 token request and the headers IMDS defines.
pub const TOKEN_PATH: &str = "/latest/api/token";
pub const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// How IMDS is reached and how long the agent waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsSettings {
    /// Base URL without a trailing slash, e.g. `http://169.254.169.254`.
    pub endpoint: String,
    /// `AWS_EC2_METADATA_DISABLED=true`: no request at all.
    pub disabled: bool,
    /// Time to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Time to wait for an answer once connected (a request that stalls after the connection).
    pub read_timeout: Duration,
    /// Attempts per request when IMDS answers 5xx or 401 (the first one included).
    pub attempts: u32,
    /// All IMDS requests of one run together never take longer than this.
    pub deadline: Duration,
    /// Lifetime asked for the IMDSv2 session token (IMDS accepts 1..=21600 seconds). The agent only
    /// needs it for the few seconds of one run.
    pub token_ttl_seconds: u32,
}

impl Default for ImdsSettings {
    fn default() -> Self {
        ImdsSettings {
            endpoint: ENDPOINT_IPV4.to_string(),
            disabled: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            attempts: 3,
            deadline: Duration::from_secs(3),
            token_ttl_seconds: 60,
        }
    }
}

impl ImdsSettings {
    /// The settings the process environment asks for (see the module doc).
    pub fn from_env() -> Result<ImdsSettings, ImdsError> {
        ImdsSettings::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings for the given environment lookup. The endpoint override wins over the endpoint
    /// mode, as in the SDKs; an unknown mode or an endpoint that is not an `http://` URL is an error.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ImdsSettings, ImdsError> {
        let mut settings = ImdsSettings {
            disabled: var(ENV_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            ..ImdsSettings::default()
        };
        let mode = var(ENV_ENDPOINT_MODE).filter(|v| !v.trim().is_empty());
        let mode_endpoint = match mode.as_deref().map(str::trim) {
            None => ENDPOINT_IPV4,
            Some(m) if m.eq_ignore_ascii_case("ipv4") => ENDPOINT_IPV4,
            Some(m) if m.eq_ignore_ascii_case("ipv6") => ENDPOINT_IPV6,
            Some(m) => {
                return Err(ImdsError::Setting {
                    var: ENV_ENDPOINT_MODE,
                    value: m.to_string(),
                    why: "expected IPv4 or IPv6".into(),
                })
            }
        };
        settings.endpoint = match var(ENV_ENDPOINT).filter(|v| !v.trim().is_empty()) {
            Some(value) => parse_endpoint(value.trim()).map_err(|why| ImdsError::Setting {
                var: ENV_ENDPOINT,
                value: value.clone(),
                why,
            })?,
            None => mode_endpoint.to_string(),
        };
        Ok(settings)
    }
}

/// An endpoint override: an `http://host[:port]` URL (a path, if any, is ignored, as IMDS paths
/// are absolute); returned without the trailing slash.
fn parse_endpoint(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err("https is not supported: IMDS is plain HTTP on a link-local address".into())
        }
        other => return Err(format!("scheme `{other}` is not http")),
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "the URL has no host".to_string())?;
    Ok(match url.port() {
        Some(port) => format!("http://{host}:{port}"),
        None => format!("http://{host}"),
    })
}

/// Why an IMDS request did not give an answer. Every variant names the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImdsError {
    #[error("{var}={value:?}: {why}")]
    Setting {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error("IMDS at {endpoint} could not be reached ({method} {path}): {cause}")]
    Unreachable {
        endpoint: String,
        method: &'static str,
        path: String,
        cause: String,
    },
    #[error("IMDS at {endpoint} did not answer {method} {path} within {ms} ms")]
    Timeout {
        endpoint: String,
        method: &'static str,
        path: String,
        ms: u128,
    },
    #[error("IMDS at {endpoint} answered {method} {path} with HTTP {status}")]
    Status {
        endpoint: String,
        method: &'static str,
        path: String,
        status: u16,
    },
    #[error("IMDS at {endpoint}: the {ms} ms deadline for all IMDS requests passed before {method} {path}")]
    Deadline {
        endpoint: String,
        method: &'static str,
        path: String,
        ms: u128,
    },
    #[error("IMDS at {endpoint}: {path}: {why}")]
    Malformed {
        endpoint: String,
        path: String,
        why: String,
    },
    #[error("IMDS at {endpoint}: cannot build the HTTP client: {cause}")]
    Client { endpoint: String, cause: String },
}

impl ImdsError {
    /// Nothing answered at all (connection refused, no route, connect timeout): the endpoint is not
    /// there, and asking again only adds time.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ImdsError::Unreachable { .. })
    }
    /// The HTTP status IMDS answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ImdsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One answer from IMDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Whether a GET carries the session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// IMDSv2: with the session token (fetched on first use, refreshed after a 401).
    Token,
    /// IMDSv1: no token at all.
    None,
}

/// A client bound to one endpoint and one overall deadline.
#[derive(Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    settings: ImdsSettings,
    deadline: Instant,
    token: Option<String>,
    /// HTTP requests sent (attempts included), for the facts and the tests.
    pub requests: u32,
}

/// The pause before retry `n` (1-based): short, since everything shares the deadline.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(50 * u64::from(n))
}

impl Client {
    /// A client whose requests all end before `started + settings.deadline`.
    pub fn new(settings: &ImdsSettings, started: Instant) -> Result<Client, ImdsError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.read_timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| ImdsError::Client {
                endpoint: settings.endpoint.clone(),
                cause: error_chain(&e),
            })?;
        Ok(Client {
            http,
            settings: settings.clone(),
            deadline: started + settings.deadline,
            token: None,
            requests: 0,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// One HTTP exchange, bounded by the request timeout and what is left of the deadline.
    fn send(
        &mut self,
        method: &'static str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ImdsError> {
        let endpoint = self.settings.endpoint.clone();
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining < Duration::from_millis(20) {
            return Err(ImdsError::Deadline {
                endpoint,
                method,
                path: path.to_string(),
                ms: self.settings.deadline.as_millis(),
            });
        }
        // The endpoint accepted a connection (`connect_probe`), so the request's time is the wait
        // for its answer. (reqwest's per-read timeout needs the async runtime; the blocking client
        // bounds the whole exchange.)
        let timeout = remaining.min(self.settings.read_timeout);
        let url = format!("{endpoint}{path}");
        let mut request = match method {
            "PUT" => self.http.put(&url),
            _ => self.http.get(&url),
        }
        .timeout(timeout);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.requests += 1;
        let started = Instant::now();
        let result = request.send().and_then(|response| {
            let status = response.status().as_u16();
            response.text().map(|body| Answer { status, body })
        });
        match result {
            Ok(answer) => {
                tracing::debug!(
                    method,
                    path,
                    status = answer.status,
                    ms = started.elapsed().as_millis() as u64,
                    "imds answered"
                );
                Ok(answer)
            }
            Err(e) => {
                tracing::debug!(
                    method,
                    path,
                    ms = started.elapsed().as_millis() as u64,
                    "imds request failed: {}",
                    error_chain(&e)
                );
                if e.is_connect() {
                    Err(ImdsError::Unreachable {
                        endpoint,
                        method,
                        path: path.to_string(),
                        cause: error_chain(&e),
                    })
                } else if e.is_timeout() {
                    Err(ImdsError::Timeout {
                        endpoint,
                        method,
                        path: path.to_string(),
                        ms: started.elapsed().as_millis(),
                    })
                } else {
                    Err(ImdsError::Unreachable {
                        endpoint,
                        method,
                        path: path.to_string(),
                        cause: error_chain(&e),
                    })
                }
            }
        }
    }

    /// Open (and close) a TCP connection to the endpoint within the connect timeout. Refused, no
    /// route or no answer in time is [`ImdsError::Unreachable`]: HTTP errors cannot tell a connect
    /// timeout from a stalled answer, and only the first means nothing is there.
    pub fn connect_probe(&mut self) -> Result<(), ImdsError> {
        let unreachable = |cause: String| ImdsError::Unreachable {
            endpoint: self.settings.endpoint.clone(),
            method: "TCP",
            path: "connect".into(),
            cause,
        };
        let url = reqwest::Url::parse(&self.settings.endpoint)
            .map_err(|e| unreachable(format!("not a URL: {e}")))?;
        let addrs = url
            .socket_addrs(|| Some(80))
            .map_err(|e| unreachable(format!("cannot resolve the host: {e}")))?;
        let mut last = String::from("the host resolves to no address");
        for addr in addrs {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let timeout = remaining.min(self.settings.connect_timeout);
            if timeout < Duration::from_millis(20) {
                break;
            }
            let started = Instant::now();
            match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = format!("{addr}: {e} (after {} ms)", started.elapsed().as_millis());
                }
            }
        }
        Err(unreachable(last))
    }

    /// `PUT /latest/api/token`: get an IMDSv2 session token (retried on 5xx only).
    pub fn fetch_token(&mut self) -> Result<(), ImdsError> {
        let ttl = self.settings.token_ttl_seconds.to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self.send("PUT", TOKEN_PATH, &[(TOKEN_TTL_HEADER, ttl.as_str())])?;
            match answer.status {
                200 => {
                    let token = answer.body.trim().to_string();
                    if token.is_empty() {
                        return Err(ImdsError::Malformed {
                            endpoint: self.settings.endpoint.clone(),
                            path: TOKEN_PATH.into(),
                            why: "the token is empty".into(),
                        });
                    }
                    self.token = Some(token);
                    return Ok(());
                }
                s if s >= 500 && attempt < self.settings.attempts => {
                    std::thread::sleep(backoff(attempt));
                }
                status => {
                    return Err(ImdsError::Status {
                        endpoint: self.settings.endpoint.clone(),
                        method: "PUT",
                        path: TOKEN_PATH.into(),
                        status,
                    })
                }
            }
        }
    }

    /// GET `path` with or without the session token. `Ok(None)` is 404 (IMDS has no such item);
    /// 5xx is retried, and 401 with a token is retried after fetching a new one (the old one
    /// expired); 400, 403 and other statuses are returned at once.
    pub fn get(&mut self, path: &str, auth: Auth) -> Result<Option<String>, ImdsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if auth == Auth::Token && self.token.is_none() {
                self.fetch_token()?;
            }
            let token = self.token.clone().unwrap_or_default();
            let headers: &[(&str, &str)] = match auth {
                Auth::Token => &[(TOKEN_HEADER, token.as_str())],
                Auth::None => &[],
            };
            let answer = self.send("GET", path, headers)?;
            let retry = attempt < self.settings.attempts;
            match answer.status {
                200 => return Ok(Some(answer.body)),
                404 => return Ok(None),
                401 if retry && auth == Auth::Token => {
                    self.token = None;
                }
                s if s >= 500 && retry => std::thread::sleep(backoff(attempt)),
                status => {
                    return Err(ImdsError::Status {
                        endpoint: self.settings.endpoint.clone(),
                        method: "GET",
                        path: path.to_string(),
                        status,
                    })
                }
            }
        }
    }

    /// A tokenless GET of `path`, returning the status whatever it is (the IMDSv1 probe): 200 means
    /// IMDSv1 is allowed, 401 that a token is required. 5xx is retried.
    pub fn probe_without_token(&mut self, path: &str) -> Result<u16, ImdsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self.send("GET", path, &[])?;
            if answer.status >= 500 && attempt < self.settings.attempts {
                std::thread::sleep(backoff(attempt));
                continue;
            }
            return Ok(answer.status);
        }
    }
}

/// An error and its sources on one line (`error sending request: connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !text.ends_with(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<ImdsSettings, ImdsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ImdsSettings::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_sdk() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.endpoint, "http://169.254.169.254");
        assert!(!s.disabled);
        assert_eq!(s.connect_timeout, Duration::from_secs(1));
        assert_eq!(s.read_timeout, Duration::from_secs(1));
        assert_eq!(s.deadline, Duration::from_secs(3));
        assert!((1..=21600).contains(&s.token_ttl_seconds));
    }

    #[test]
    fn endpoint_mode_and_override() {
        assert_eq!(
            settings(&[(ENV_ENDPOINT_MODE, "IPv6")]).unwrap().endpoint,
            "http://[fd00:ec2::254]"
        );
        assert_eq!(
            settings(&[(ENV_ENDPOINT_MODE, "ipv4")]).unwrap().endpoint,
            "http://169.254.169.254"
        );
        // the explicit endpoint wins over the mode; a trailing slash or path is dropped
        assert_eq!(
            settings(&[
                (ENV_ENDPOINT_MODE, "IPv6"),
                (ENV_ENDPOINT, "http://127.0.0.1:1338/")
            ])
            .unwrap()
            .endpoint,
            "http://127.0.0.1:1338"
        );
        assert_eq!(
            settings(&[(ENV_ENDPOINT, "http://[::1]:8080/latest")])
                .unwrap()
                .endpoint,
            "http://[::1]:8080"
        );
        let err = settings(&[(ENV_ENDPOINT_MODE, "dual")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=\"dual\": expected IPv4 or IPv6"
        );
        let err = settings(&[(ENV_ENDPOINT, "https://169.254.169.254")]).unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
        let err = settings(&[(ENV_ENDPOINT, "169.254.169.254")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AWS_EC2_METADATA_SERVICE_ENDPOINT=\"169.254.169.254\": not a URL"),
            "{err}"
        );
    }

    #[test]
    fn disabled_only_by_true() {
        assert!(settings(&[(ENV_DISABLED, "true")]).unwrap().disabled);
        assert!(settings(&[(ENV_DISABLED, "TRUE")]).unwrap().disabled);
        assert!(!settings(&[(ENV_DISABLED, "false")]).unwrap().disabled);
        assert!(!settings(&[(ENV_DISABLED, "1")]).unwrap().disabled);
    }

    #[test]
    fn a_closed_port_is_unreachable_at_once_and_names_the_endpoint() {
        // bind and drop: nothing listens on that port any more
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = ImdsSettings {
            endpoint: format!("http://127.0.0.1:{port}"),
            ..ImdsSettings::default()
        };
        let started = Instant::now();
        let mut client = Client::new(&s, started).unwrap();
        let err = client.fetch_token().unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "IMDS at http://127.0.0.1:{port} could not be reached (PUT /latest/api/token)"
            )),
            "{err}"
        );
        assert_eq!(client.requests, 1, "no retry when nothing listens");
        assert!(started.elapsed() < Duration::from_millis(900));
    }

    #[test]
    fn the_deadline_stops_requests_before_they_start() {
        let s = ImdsSettings {
            endpoint: "http://127.0.0.1:9".into(),
            deadline: Duration::ZERO,
            ..ImdsSettings::default()
        };
        let mut client = Client::new(&s, Instant::now()).unwrap();
        let err = client
            .get("/latest/meta-data/instance-id", Auth::None)
            .unwrap_err();
        assert!(matches!(err, ImdsError::Deadline { .. }), "{err:?}");
        assert_eq!(client.requests, 0);
    }
}
