//! `[[imds]]`: the `imds` family, judged on what the instance metadata service said before the run
//! ([`crate::host::imds::ImdsFacts`] in `cx.facts.imds`; checks never send a request themselves). One
//! named `check` per rule:
//!
//! * `endpoint`: IMDS answers, i.e. this is an EC2 instance. Off EC2 (or with IMDS turned off) it
//!   is not applicable, unless `require_ec2 = true` makes it a failure;
//! * `v2-required`: a request without a session token is refused (401): IMDSv1 is off;
//! * `instance-profile`: an instance profile is attached (`iam/info`);
//! * `credentials`: the role's credentials were issued (`Code` `Success`) and have not expired;
//! * `account`, `region`, `role`: the identity document's account or region, or the role name /
//!   instance profile ARN, matches one of the `allow` globs (a pattern starting with `arn:` is
//!   matched against the profile ARN, anything else against the role name);
//! * `tags`: the `required` instance tags exist (and those in `values` have an allowed value);
//!   tags in instance metadata not being enabled is a failure, since nothing can be verified.
//!
//! Everything except `endpoint` is not applicable when IMDS was not asked (`--offline`, an image
//! root, `AWS_EC2_METADATA_DISABLED`) or did not answer; an allow-list left empty is not
//! applicable too, with the reason, so the shipped rules only judge once a site layer fills them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::imds::facts::{
    Fetched, ImdsFacts, ImdsState, IAM_INFO_PATH, INSTANCE_ID_PATH, TAGS_PATH,
};
use crate::rule::{Evidence, Outcome};

/// What an `[[imds]]` rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImdsCheckKind {
    Endpoint,
    V2Required,
    InstanceProfile,
    Credentials,
    Account,
    Region,
    Role,
    Tags,
}

impl ImdsCheckKind {
    fn as_str(self) -> &'static str {
        match self {
            ImdsCheckKind::Endpoint => "endpoint",
            ImdsCheckKind::V2Required => "v2-required",
            ImdsCheckKind::InstanceProfile => "instance-profile",
            ImdsCheckKind::Credentials => "credentials",
            ImdsCheckKind::Account => "account",
            ImdsCheckKind::Region => "region",
            ImdsCheckKind::Role => "role",
            ImdsCheckKind::Tags => "tags",
        }
    }
}

rule_params! {
    /// TOML parameters of `[[imds]]`.
    pub struct Imds {
        pub check: ImdsCheckKind,
        /// `endpoint` only: the host must be an EC2 instance, so an unreachable IMDS fails.
        #[serde(default)]
        pub require_ec2: Option<Spanned<bool>>,
        /// `account`, `region`, `role`: allowed values (globs). Empty: not applicable.
        #[serde(default)]
        pub allow: Option<Spanned<Vec<Spanned<String>>>>,
        /// `tags`: tag keys that must exist.
        #[serde(default)]
        pub required: Option<Spanned<Vec<Spanned<String>>>>,
        /// `tags`: allowed values (globs) per tag key; such a tag must exist too.
        #[serde(default)]
        pub values: Option<Spanned<BTreeMap<String, Vec<Spanned<String>>>>>,
    }
}

#[derive(Debug)]
pub struct ImdsCheck {
    check: ImdsCheckKind,
    require_ec2: bool,
    allow: Vec<glob::Pattern>,
    required: Vec<String>,
    values: BTreeMap<String, Vec<glob::Pattern>>,
}

fn compile_globs(diags: &mut Diagnostics<'_>, list: &[Spanned<String>]) -> Vec<glob::Pattern> {
    list.iter()
        .filter_map(|p| match glob::Pattern::new(p.get_ref()) {
            Ok(g) => Some(g),
            Err(e) => {
                diags.error(
                    p.span(),
                    format!("`{}` is not a valid glob: {e}", p.get_ref()),
                );
                None
            }
        })
        .collect()
}

impl CompileCheck for Imds {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        use ImdsCheckKind::*;
        let mark = diags.mark();
        let kind = self.check;
        let only = |diags: &mut Diagnostics<'_>,
                    key: &str,
                    span: std::ops::Range<usize>,
                    ok: &[ImdsCheckKind]| {
            if !ok.contains(&kind) {
                let names: Vec<&str> = ok.iter().map(|k| k.as_str()).collect();
                diags.error(
                    span,
                    format!(
                        "`{key}` does not apply to check `{}` (only to {})",
                        kind.as_str(),
                        names.join(", ")
                    ),
                );
            }
        };
        if let Some(r) = &self.require_ec2 {
            only(diags, "require_ec2", r.span(), &[Endpoint]);
        }
        let mut allow = Vec::new();
        if let Some(a) = &self.allow {
            only(diags, "allow", a.span(), &[Account, Region, Role]);
            allow = compile_globs(diags, a.get_ref());
        }
        let mut required = Vec::new();
        if let Some(r) = &self.required {
            only(diags, "required", r.span(), &[Tags]);
            for key in r.get_ref() {
                if key.get_ref().trim().is_empty() {
                    diags.error(key.span(), "a required tag key must not be empty");
                }
                required.push(key.get_ref().clone());
            }
        }
        let mut values = BTreeMap::new();
        if let Some(v) = &self.values {
            only(diags, "values", v.span(), &[Tags]);
            for (key, globs) in v.get_ref() {
                if globs.is_empty() {
                    diags.error(
                        v.span(),
                        format!("`values.{key}` must list at least one value"),
                    );
                }
                values.insert(key.clone(), compile_globs(diags, globs));
            }
        }
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(ImdsCheck {
            check: kind,
            require_ec2: self.require_ec2.as_ref().is_some_and(|r| *r.get_ref()),
            allow,
            required,
            values,
        }))
    }
}

impl Check for ImdsCheck {
    fn uses_imds(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let Some(facts) = cx.facts.imds.as_ref() else {
            return Outcome::not_applicable("IMDS was not asked in this run");
        };
        let reason = facts.reason.as_deref().unwrap_or("no reason recorded");
        let endpoint = self.check == ImdsCheckKind::Endpoint;
        match facts.state {
            ImdsState::Skipped => Outcome::not_applicable(reason),
            ImdsState::Disabled if endpoint && self.require_ec2 => Outcome::error(format!(
                "IMDS queries are disabled ({reason}), so whether this host is an EC2 instance cannot be known"
            )),
            ImdsState::Disabled => {
                Outcome::not_applicable(format!("IMDS queries are disabled ({reason})"))
            }
            ImdsState::Unreachable if endpoint && self.require_ec2 => Outcome::fail(
                Evidence::new(format!("IMDS did not answer: {reason}"))
                    .found(format!("no answer from {}", facts.endpoint))
                    .expected("an EC2 instance whose IMDS answers"),
            ),
            ImdsState::Unreachable => {
                Outcome::not_applicable(format!("not on EC2 / IMDS unreachable: {reason}"))
            }
            ImdsState::Reachable => self.judge(facts),
        }
    }
}

/// The outcome for an item that could not be had.
fn unavailable<T>(item: &Fetched<T>, what: &str) -> Outcome {
    match item {
        Fetched::Error { cause } => Outcome::error(cause),
        Fetched::Absent => Outcome::error(format!("IMDS has no {what} (404)")),
        Fetched::NotRead | Fetched::Found(_) => {
            Outcome::error(format!("the {what} was not read from IMDS"))
        }
    }
}

fn list(patterns: &[glob::Pattern]) -> String {
    patterns
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

const NO_ALLOW_LIST: &str =
    "no allow-list in the baseline: a site layer sets `allow` on this rule to judge it";

impl ImdsCheck {
    fn judge(&self, f: &ImdsFacts) -> Outcome {
        match self.check {
            ImdsCheckKind::Endpoint => {
                let mut ev = Evidence::new(format!("IMDS at {} answered", f.endpoint));
                if let Some(id) = f.identity.found() {
                    ev = ev.found(format!(
                        "instance {} ({}) in {}, account {}",
                        id.instance_id, id.instance_type, id.availability_zone, id.account_id
                    ));
                }
                Outcome::pass(ev)
            }
            ImdsCheckKind::V2Required => match &f.imdsv1 {
                Fetched::Found(p) if p.v1_allowed => Outcome::fail(
                    Evidence::new(format!(
                        "a GET {INSTANCE_ID_PATH} without a session token was answered: IMDSv1 is enabled"
                    ))
                    .found("HTTP 200 (HttpTokens optional)")
                    .expected("HTTP 401 (HttpTokens required)"),
                ),
                Fetched::Found(p) if p.http_status == 401 => Outcome::pass(
                    Evidence::new(format!(
                        "a GET {INSTANCE_ID_PATH} without a session token was refused: only IMDSv2 is served"
                    ))
                    .found("HTTP 401"),
                ),
                Fetched::Found(p) => Outcome::error(format!(
                    "IMDS at {} answered a tokenless GET {INSTANCE_ID_PATH} with HTTP {}, neither 200 nor 401",
                    f.endpoint, p.http_status
                )),
                other => unavailable(other, "answer to the tokenless probe"),
            },
            ImdsCheckKind::InstanceProfile => match &f.instance_profile {
                Fetched::Found(p) => Outcome::pass(
                    Evidence::new("an instance profile is attached").found(p.arn.clone()),
                ),
                Fetched::Absent => Outcome::fail(
                    Evidence::new(format!(
                        "no instance profile is attached ({IAM_INFO_PATH} answered 404)"
                    ))
                    .expected("an instance profile whose role grants what the host needs"),
                ),
                other => unavailable(other, "instance profile"),
            },
            ImdsCheckKind::Credentials => self.credentials(f),
            ImdsCheckKind::Account | ImdsCheckKind::Region => {
                if self.allow.is_empty() {
                    return Outcome::not_applicable(NO_ALLOW_LIST);
                }
                let Some(id) = f.identity.found() else {
                    return unavailable(&f.identity, "instance identity document");
                };
                let (what, value) = if self.check == ImdsCheckKind::Account {
                    ("account", &id.account_id)
                } else {
                    ("region", &id.region)
                };
                let ev = Evidence::new(format!(
                    "the instance identity document gives {what} {value}"
                ))
                .found(value.clone())
                .expected(format!("one of {}", list(&self.allow)));
                if self.allow.iter().any(|p| p.matches(value)) {
                    Outcome::pass(ev)
                } else {
                    Outcome::fail(ev)
                }
            }
            ImdsCheckKind::Role => self.role(f),
            ImdsCheckKind::Tags => self.tags(f),
        }
    }

    fn credentials(&self, f: &ImdsFacts) -> Outcome {
        if matches!(f.instance_profile, Fetched::Absent) {
            return Outcome::not_applicable(
                "no instance profile is attached: there are no role credentials to check",
            );
        }
        let c = match &f.credentials {
            Fetched::Found(c) => c,
            Fetched::Absent => {
                return Outcome::fail(
                    Evidence::new(
                        "an instance profile is attached but IMDS lists no role credentials (the profile has no role)",
                    )
                    .expected("a role in the instance profile"),
                )
            }
            other => return unavailable(other, "role credentials"),
        };
        let key = if c.access_key_id.is_empty() {
            String::new()
        } else {
            format!(", access key {}", c.access_key_id)
        };
        if c.code != "Success" {
            return Outcome::fail(
                Evidence::new(format!(
                    "IMDS could not get credentials for role {}",
                    c.role
                ))
                .found(format!("Code {}", c.code))
                .expected("Code Success"),
            );
        }
        let expiration: jiff::Timestamp = match c.expiration.parse() {
            Ok(t) => t,
            Err(e) => {
                return Outcome::error(format!(
                    "role {}: Expiration {:?} is not an RFC 3339 time: {e}",
                    c.role, c.expiration
                ))
            }
        };
        let now = jiff::Timestamp::now();
        if expiration <= now {
            Outcome::fail(
                Evidence::new(format!(
                    "the credentials of role {} have expired{key}",
                    c.role
                ))
                .found(format!("Expiration {}", c.expiration))
                .expected(format!(
                    "an expiration after {}",
                    now.strftime("%Y-%m-%dT%H:%M:%SZ")
                )),
            )
        } else {
            Outcome::pass(
                Evidence::new(format!(
                    "role {}: credentials issued (Code Success){key}",
                    c.role
                ))
                .found(format!("valid until {}", c.expiration)),
            )
        }
    }

    fn role(&self, f: &ImdsFacts) -> Outcome {
        if self.allow.is_empty() {
            return Outcome::not_applicable(NO_ALLOW_LIST);
        }
        let arn = match &f.instance_profile {
            Fetched::Absent => {
                return Outcome::not_applicable("no instance profile is attached: no role to judge")
            }
            Fetched::Found(p) => Some(p.arn.as_str()),
            _ => None,
        };
        let role = f.credentials.found().map(|c| c.role.as_str());
        let (arn_patterns, name_patterns): (Vec<&glob::Pattern>, Vec<&glob::Pattern>) = self
            .allow
            .iter()
            .partition(|p| p.as_str().starts_with("arn:"));
        let matched = arn.is_some_and(|a| arn_patterns.iter().any(|p| p.matches(a)))
            || role.is_some_and(|r| name_patterns.iter().any(|p| p.matches(r)));
        let found = format!(
            "role {}, instance profile {}",
            role.unwrap_or("(unknown)"),
            arn.unwrap_or("(unknown)")
        );
        let ev = Evidence::new("the instance's role and instance profile")
            .found(found)
            .expected(format!("one of {}", list(&self.allow)));
        if matched {
            return Outcome::pass(ev);
        }
        // A pattern that could not be tried is not a verdict.
        if arn.is_none() && !arn_patterns.is_empty() {
            return unavailable(&f.instance_profile, "instance profile");
        }
        if role.is_none() && !name_patterns.is_empty() {
            return unavailable(&f.credentials, "role name");
        }
        Outcome::fail(ev)
    }

    fn tags(&self, f: &ImdsFacts) -> Outcome {
        let mut wanted: Vec<&str> = self.required.iter().map(String::as_str).collect();
        for key in self.values.keys() {
            if !wanted.contains(&key.as_str()) {
                wanted.push(key);
            }
        }
        if wanted.is_empty() {
            return Outcome::not_applicable(
                "no required tags in the baseline: a site layer sets `required` on this rule to judge it",
            );
        }
        let tags = match &f.tags {
            Fetched::Found(t) => &t.tags,
            Fetched::Absent => {
                return Outcome::fail(
                    Evidence::new(format!(
                        "instance tags are not in instance metadata ({TAGS_PATH} answered 404: InstanceMetadataTags is disabled), so the required tags cannot be verified"
                    ))
                    .expected(format!("tags {}", wanted.join(", "))),
                )
            }
            other => return unavailable(other, "instance tag list"),
        };
        let mut failures = Vec::new();
        for key in &wanted {
            match tags.get(*key) {
                None => failures.push(
                    Evidence::new(format!("instance tag {key} is missing"))
                        .expected(format!("a tag {key}")),
                ),
                Some(value) => {
                    if let Some(allowed) = self.values.get(*key) {
                        if !allowed.iter().any(|p| p.matches(value)) {
                            failures.push(
                                Evidence::new(format!(
                                    "instance tag {key} has a value not allowed"
                                ))
                                .found(value.clone())
                                .expected(format!("one of {}", list(allowed))),
                            );
                        }
                    }
                }
            }
        }
        if failures.is_empty() {
            let shown: Vec<String> = wanted
                .iter()
                .map(|k| format!("{k}={}", tags.get(*k).map(String::as_str).unwrap_or("")))
                .collect();
            Outcome::pass(
                Evidence::new("required instance tags are present").found(shown.join(", ")),
            )
        } else {
            Outcome::Fail { evidence: failures }
        }
    }
}
