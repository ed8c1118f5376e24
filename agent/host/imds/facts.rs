//! What IMDS says about this instance, read once before any check runs and carried in the report's
//! host facts (`host.imds`): whether IMDS answered at all, whether it still serves tokenless
//! (IMDSv1) requests, the instance identity document, the instance profile and its role's
//! credential status, and the instance tags when tags in metadata are enabled.
//!
//! Secrets never enter these types: the role credentials are deserialized into a struct that has
//! no field for `SecretAccessKey` or `Token`, and the access key id is kept only redacted
//! (`ASIA****WXYZ`). The order of requests is chosen so that a missing IMDS costs one connect
//! timeout at most (a plain TCP connect comes first) and one that hangs after accepting two read
//! timeouts, inside the deadline of [`super::ImdsSettings`].

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Auth, Client, ImdsError, ImdsSettings};

pub const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";
pub const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
pub const IAM_INFO_PATH: &str = "/latest/meta-data/iam/info";
pub const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
pub const TAGS_PATH: &str = "/latest/meta-data/tags/instance";
/// An instance carries at most 50 tags.
const MAX_TAGS: usize = 50;

/// Whether IMDS was asked, and whether it answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImdsState {
    /// IMDS answered: this is an EC2 instance (or something emulating one).
    Reachable,
    /// Nothing answered within the timeouts: not on EC2, or IMDS is turned off or filtered.
    Unreachable,
    /// `AWS_EC2_METADATA_DISABLED=true`: not asked.
    Disabled,
    /// Not asked: `--offline`, or the sysroot is an image rather than this instance.
    #[default]
    Skipped,
}

/// One IMDS item: read, absent (404), failed, or never asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Fetched<T> {
    /// Not requested (IMDS unreachable, or an earlier answer made it pointless).
    #[default]
    NotRead,
    /// IMDS answered 404: the instance has no such item.
    Absent,
    Found(T),
    Error {
        cause: String,
    },
}

impl<T> Fetched<T> {
    fn from_result(result: Result<Option<T>, ImdsError>) -> Fetched<T> {
        match result {
            Ok(Some(v)) => Fetched::Found(v),
            Ok(None) => Fetched::Absent,
            Err(e) => Fetched::Error {
                cause: e.to_string(),
            },
        }
    }
    pub fn found(&self) -> Option<&T> {
        match self {
            Fetched::Found(v) => Some(v),
            _ => None,
        }
    }
}

/// The tokenless probe: `GET /latest/meta-data/instance-id` without a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Probe {
    /// The HTTP status of the tokenless request: 200 when IMDSv1 is allowed, 401 when tokens are
    /// required.
    pub http_status: u16,
    /// True when IMDS answered a request without a token (`HttpTokens` is `optional`).
    pub v1_allowed: bool,
}

/// The instance identity document (`/latest/dynamic/instance-identity/document`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub account_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
}

/// `/latest/meta-data/iam/info`: the attached instance profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProfile {
    pub arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// The role's current credentials, without the secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleCredentials {
    /// The role name (`/latest/meta-data/iam/security-credentials/`).
    pub role: String,
    /// `Code`: `Success` when IMDS could get credentials for the role.
    pub code: String,
    /// `Expiration`, RFC 3339 (empty when IMDS gave none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_updated: String,
    /// The access key id, redacted to its first and last four characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key_id: String,
}

/// Instance tags from `/latest/meta-data/tags/instance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTags {
    pub tags: BTreeMap<String, String>,
}

/// Everything the run learned from IMDS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImdsFacts {
    /// The endpoint asked (or that would have been asked).
    pub endpoint: String,
    pub state: ImdsState,
    /// Why IMDS was not asked or did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time of all IMDS requests together.
    pub elapsed_ms: u64,
    /// HTTP requests sent, retries included.
    pub requests: u32,
    #[serde(default)]
    pub imdsv1: Fetched<V1Probe>,
    #[serde(default)]
    pub identity: Fetched<Identity>,
    #[serde(default)]
    pub instance_profile: Fetched<InstanceProfile>,
    #[serde(default)]
    pub credentials: Fetched<RoleCredentials>,
    #[serde(default)]
    pub tags: Fetched<InstanceTags>,
    /// Things worth knowing that are not failures (no IMDSv2 token, tags skipped, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ImdsFacts {
    /// IMDS was not asked, for `reason`.
    pub fn not_asked(endpoint: &str, state: ImdsState, reason: impl Into<String>) -> ImdsFacts {
        ImdsFacts {
            endpoint: endpoint.to_string(),
            state,
            reason: Some(reason.into()),
            ..ImdsFacts::default()
        }
    }
}

impl ImdsFacts {
    /// One line for the text report's header: what IMDS said, or why it was not asked.
    pub fn summary(&self) -> String {
        match self.state {
            ImdsState::Skipped | ImdsState::Disabled => format!(
                "imds: not asked ({})",
                self.reason.as_deref().unwrap_or("skipped")
            ),
            ImdsState::Unreachable => format!(
                "imds {}: unreachable, after {} ms (not on EC2?): {}",
                self.endpoint,
                self.elapsed_ms,
                self.reason.as_deref().unwrap_or("unreachable")
            ),
            ImdsState::Reachable => {
                let mut line = format!("imds {}:", self.endpoint);
                match self.identity.found() {
                    Some(id) => line.push_str(&format!(
                        " instance {} ({}, {}) in {}, account {};",
                        id.instance_id,
                        id.instance_type,
                        id.image_id,
                        id.availability_zone,
                        id.account_id
                    )),
                    None => line.push_str(" no identity document;"),
                }
                line.push_str(match self.imdsv1.found() {
                    Some(p) if p.v1_allowed => " IMDSv1 allowed;",
                    Some(p) if p.http_status == 401 => " IMDSv2 only;",
                    _ => " IMDSv1 unknown;",
                });
                match (&self.instance_profile, self.credentials.found()) {
                    (Fetched::Absent, _) => line.push_str(" no instance profile"),
                    (_, Some(c)) => line.push_str(&format!(" role {}", c.role)),
                    (Fetched::Found(p), None) => line.push_str(&format!(" profile {}", p.arn)),
                    _ => line.push_str(" instance profile unknown"),
                }
                line
            }
        }
    }
}

/// The reason given when the sysroot is not the running instance.
pub const IMAGE_REASON: &str =
    "the sysroot is not this instance (--root is not /): IMDS describes the machine running the scan, not the image";
/// The reason given under `--offline`.
pub const OFFLINE_REASON: &str = "--offline: network probes are off";

/// Ask IMDS everything the checks need, within `settings.deadline`.
pub fn gather(settings: &ImdsSettings) -> ImdsFacts {
    let started = Instant::now();
    let mut facts = ImdsFacts {
        endpoint: settings.endpoint.clone(),
        ..ImdsFacts::default()
    };
    if settings.disabled {
        facts.state = ImdsState::Disabled;
        facts.reason = Some(format!("{}=true", super::ENV_DISABLED));
        return facts;
    }
    let mut client = match Client::new(settings, started) {
        Ok(c) => c,
        Err(e) => {
            facts.state = ImdsState::Unreachable;
            facts.reason = Some(e.to_string());
            return facts;
        }
    };
    let _span = tracing::debug_span!("imds", endpoint = %settings.endpoint).entered();
    query(&mut client, &mut facts);
    facts.requests = client.requests;
    facts.elapsed_ms = started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
    tracing::debug!(state = ?facts.state, ms = facts.elapsed_ms, requests = facts.requests, "imds facts gathered");
    facts
}

fn query(client: &mut Client, facts: &mut ImdsFacts) {
    // 0. Is anything there? Connection refused, no route or a connect timeout: stop, having spent
    //    at most the connect timeout.
    if let Err(e) = client.connect_probe() {
        facts.state = ImdsState::Unreachable;
        facts.reason = Some(e.to_string());
        return;
    }
    // 1. An IMDSv2 session token. A timeout here may be a hop limit of 1 dropping the PUT's answer
    //    in a container, so the tokenless probe still gets its chance.
    let token_error = match client.fetch_token() {
        Ok(()) => None,
        Err(e) if e.is_unreachable() => {
            facts.state = ImdsState::Unreachable;
            facts.reason = Some(e.to_string());
            return;
        }
        Err(e) => Some(e),
    };
    // 2. The IMDSv1 probe.
    match client.probe_without_token(INSTANCE_ID_PATH) {
        Ok(status) => {
            facts.imdsv1 = Fetched::Found(V1Probe {
                http_status: status,
                v1_allowed: status == 200,
            });
        }
        Err(e) => {
            if token_error.is_some() {
                // neither request got an answer
                facts.state = ImdsState::Unreachable;
                facts.reason = token_error.map(|t| t.to_string());
                facts.notes.push(e.to_string());
                return;
            }
            facts.imdsv1 = Fetched::Error {
                cause: e.to_string(),
            };
        }
    }
    // 3. Only IMDS-shaped answers make this IMDS: a token, or 200/401 to the tokenless probe. A
    //    403 everywhere is an instance whose metadata endpoint is turned off, or not EC2 at all (a
    //    proxy or firewall answering for the address): either way there is nothing to judge.
    let probe_status = facts.imdsv1.found().map(|p| p.http_status);
    if !client.has_token() && !matches!(probe_status, Some(200 | 401)) {
        facts.state = ImdsState::Unreachable;
        facts.reason = Some(format!(
            "{} answered neither a token request nor a tokenless request as IMDS does ({}; {}): \
             IMDS is turned off for this instance, or this is not EC2 and something else answers there",
            client.endpoint(),
            token_error
                .as_ref()
                .map_or_else(|| "no token".to_string(), |e| e.to_string()),
            match (probe_status, &facts.imdsv1) {
                (Some(status), _) => format!("GET {INSTANCE_ID_PATH} without a token: HTTP {status}"),
                (None, Fetched::Error { cause }) => cause.clone(),
                (None, _) => "no answer to the tokenless probe".to_string(),
            }
        ));
        return;
    }
    facts.state = ImdsState::Reachable;
    if let Some(e) = &token_error {
        facts.notes.push(format!("no IMDSv2 token: {e}"));
    }
    let v1_allowed = facts.imdsv1.found().is_some_and(|p| p.v1_allowed);
    let auth = if client.has_token() {
        Auth::Token
    } else if v1_allowed {
        facts
            .notes
            .push("metadata read without a token (IMDSv1), as no token could be had".into());
        Auth::None
    } else {
        let cause = format!(
            "no IMDSv2 token ({}) and tokenless requests are refused",
            token_error
                .as_ref()
                .map_or_else(|| "unknown cause".to_string(), ToString::to_string)
        );
        facts.identity = Fetched::Error {
            cause: cause.clone(),
        };
        facts.instance_profile = Fetched::Error {
            cause: cause.clone(),
        };
        facts.credentials = Fetched::Error {
            cause: cause.clone(),
        };
        facts.tags = Fetched::Error { cause };
        return;
    };

    // 4. The identity document, the instance profile, the role's credentials, the tags.
    facts.identity = Fetched::from_result(client.get(IDENTITY_PATH, auth).and_then(|body| {
        body.map(|b| parse_identity(client.endpoint(), &b))
            .transpose()
    }));
    facts.instance_profile =
        Fetched::from_result(client.get(IAM_INFO_PATH, auth).and_then(|body| {
            body.map(|b| parse_profile(client.endpoint(), &b))
                .transpose()
        }));
    facts.credentials = match &facts.instance_profile {
        Fetched::Absent => Fetched::NotRead,
        _ => Fetched::from_result(credentials(client, auth)),
    };
    facts.tags = Fetched::from_result(tags(client, auth, &mut facts.notes));
}

fn malformed(endpoint: &str, path: &str, why: impl Into<String>) -> ImdsError {
    ImdsError::Malformed {
        endpoint: endpoint.to_string(),
        path: path.to_string(),
        why: why.into(),
    }
}

pub(crate) fn parse_identity(endpoint: &str, body: &str) -> Result<Identity, ImdsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        account_id: String,
        region: String,
        #[serde(default)]
        availability_zone: String,
        instance_id: String,
        #[serde(default)]
        image_id: String,
        #[serde(default)]
        instance_type: String,
        #[serde(default)]
        architecture: String,
    }
    let raw: Raw = serde_json::from_str(body).map_err(|e| {
        malformed(
            endpoint,
            IDENTITY_PATH,
            format!("not an identity document: {e}"),
        )
    })?;
    Ok(Identity {
        account_id: raw.account_id,
        region: raw.region,
        availability_zone: raw.availability_zone,
        instance_id: raw.instance_id,
        image_id: raw.image_id,
        instance_type: raw.instance_type,
        architecture: raw.architecture,
    })
}

pub(crate) fn parse_profile(endpoint: &str, body: &str) -> Result<InstanceProfile, ImdsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Raw {
        instance_profile_arn: String,
        #[serde(default)]
        instance_profile_id: String,
    }
    let raw: Raw = serde_json::from_str(body).map_err(|e| {
        malformed(
            endpoint,
            IAM_INFO_PATH,
            format!("not an iam/info document: {e}"),
        )
    })?;
    Ok(InstanceProfile {
        arn: raw.instance_profile_arn,
        id: raw.instance_profile_id,
    })
}

/// The role name, then its credentials document, keeping no secret.
fn credentials(client: &mut Client, auth: Auth) -> Result<Option<RoleCredentials>, ImdsError> {
    let Some(listing) = client.get(CREDENTIALS_PATH, auth)? else {
        return Ok(None);
    };
    let Some(role) = listing.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if role.contains('/') || role.contains("..") {
        return Err(malformed(
            client.endpoint(),
            CREDENTIALS_PATH,
            format!("{role:?} is not a role name"),
        ));
    }
    let role = role.to_string();
    let path = format!("{CREDENTIALS_PATH}{role}");
    /// Only the fields kept: `SecretAccessKey` and `Token` have nowhere to go.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Raw {
        code: String,
        #[serde(default)]
        expiration: String,
        #[serde(default)]
        last_updated: String,
        #[serde(default)]
        access_key_id: String,
    }
    let Some(body) = client.get(&path, auth)? else {
        return Err(malformed(
            client.endpoint(),
            &path,
            format!("role {role} is listed but its credentials are 404"),
        ));
    };
    let raw: Raw = serde_json::from_str(&body).map_err(|e| {
        malformed(
            client.endpoint(),
            &path,
            format!("not a credentials document: {e}"),
        )
    })?;
    drop(body);
    Ok(Some(RoleCredentials {
        role,
        code: raw.code,
        expiration: raw.expiration,
        last_updated: raw.last_updated,
        access_key_id: redact_key_id(&raw.access_key_id),
    }))
}

/// `ASIAIOSFODNN7EXAMPLE` -> `ASIA****MPLE`; anything short is hidden entirely.
pub fn redact_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.is_empty() {
        String::new()
    } else if chars.len() < 12 {
        "****".into()
    } else {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    }
}

/// A tag key as IMDS can serve it (letters, digits and `+ - = . , _ : @`).
fn servable_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-=.,_:@".contains(c))
}

/// The instance tags; `None` when IMDS answers 404 (tags in instance metadata are not enabled).
fn tags(
    client: &mut Client,
    auth: Auth,
    notes: &mut Vec<String>,
) -> Result<Option<InstanceTags>, ImdsError> {
    let Some(listing) = client.get(TAGS_PATH, auth)? else {
        return Ok(None);
    };
    let mut tags = BTreeMap::new();
    for key in listing
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .take(MAX_TAGS)
    {
        if !servable_tag_key(key) {
            notes.push(format!("tag key {key:?} skipped: not a key IMDS serves"));
            continue;
        }
        match client.get(&format!("{TAGS_PATH}/{key}"), auth)? {
            Some(value) => {
                tags.insert(key.to_string(), value);
            }
            None => notes.push(format!("tag {key} is listed but its value is 404")),
        }
    }
    Ok(Some(InstanceTags { tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_redacted() {
        assert_eq!(redact_key_id("ASIAIOSFODNN7EXAMPLE"), "ASIA****MPLE");
        assert_eq!(redact_key_id("short"), "****");
        assert_eq!(redact_key_id(""), "");
    }

    #[test]
    fn credentials_document_keeps_no_secret() {
        let facts = RoleCredentials {
            role: "web".into(),
            code: "Success".into(),
            expiration: "2030-01-01T00:00:00Z".into(),
            last_updated: String::new(),
            access_key_id: redact_key_id("ASIAIOSFODNN7EXAMPLE"),
        };
        let json = serde_json::to_string(&facts).unwrap();
        assert!(!json.to_lowercase().contains("secret"), "{json}");
        assert!(!json.contains("IOSFODNN7"), "{json}");
    }

    #[test]
    fn identity_document_is_parsed() {
        let doc = r#"{
          "accountId" : "123456789012", "architecture" : "x86_64",
          "availabilityZone" : "eu-west-1a", "billingProducts" : null,
          "imageId" : "ami-0abcdef1234567890", "instanceId" : "i-1234567890abcdef0",
          "instanceType" : "t3.micro", "pendingTime" : "2024-11-05T09:30:00Z",
          "privateIp" : "10.0.1.23", "region" : "eu-west-1", "version" : "2017-09-30"
        }"#;
        let id = parse_identity("http://x", doc).unwrap();
        assert_eq!(id.account_id, "123456789012");
        assert_eq!(id.region, "eu-west-1");
        assert_eq!(id.availability_zone, "eu-west-1a");
        assert_eq!(id.instance_type, "t3.micro");
        let err = parse_identity("http://x", "{}").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("IMDS at http://x: /latest/dynamic/instance-identity/document: not an identity document"));
    }

    #[test]
    fn summary_says_what_imds_said() {
        let skipped =
            ImdsFacts::not_asked("http://169.254.169.254", ImdsState::Skipped, OFFLINE_REASON);
        assert_eq!(
            skipped.summary(),
            "imds: not asked (--offline: network probes are off)"
        );
        let facts = ImdsFacts {
            endpoint: "http://169.254.169.254".into(),
            state: ImdsState::Reachable,
            imdsv1: Fetched::Found(V1Probe {
                http_status: 401,
                v1_allowed: false,
            }),
            identity: Fetched::Found(Identity {
                account_id: "123456789012".into(),
                region: "eu-west-1".into(),
                availability_zone: "eu-west-1a".into(),
                instance_id: "i-0123".into(),
                image_id: "ami-0abc".into(),
                instance_type: "t3.micro".into(),
                architecture: String::new(),
            }),
            instance_profile: Fetched::Absent,
            ..ImdsFacts::default()
        };
        assert_eq!(
            facts.summary(),
            "imds http://169.254.169.254: instance i-0123 (t3.micro, ami-0abc) in eu-west-1a, \
             account 123456789012; IMDSv2 only; no instance profile"
        );
        let down = ImdsFacts {
            endpoint: "http://169.254.169.254".into(),
            state: ImdsState::Unreachable,
            reason: Some("connect timed out".into()),
            elapsed_ms: 1001,
            ..ImdsFacts::default()
        };
        assert_eq!(
            down.summary(),
            "imds http://169.254.169.254: unreachable, after 1001 ms (not on EC2?): connect timed out"
        );
    }

    #[test]
    fn fetched_serializes_with_a_status() {
        let f: Fetched<InstanceProfile> = Fetched::Found(InstanceProfile {
            arn: "arn:aws:iam::1:instance-profile/web".into(),
            id: String::new(),
        });
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"status": "found", "arn": "arn:aws:iam::1:instance-profile/web"})
        );
        let a: Fetched<InstanceProfile> = Fetched::Absent;
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"status": "absent"})
        );
        let t: Fetched<InstanceTags> = Fetched::Found(InstanceTags {
            tags: [("Owner".to_string(), "web".to_string())].into(),
        });
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status": "found", "tags": {"Owner": "web"}})
        );
        assert_eq!(
            serde_json::from_value::<Fetched<InstanceTags>>(v).unwrap(),
            t
        );
    }
}
