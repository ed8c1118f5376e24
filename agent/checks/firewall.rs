//! `[[firewall]]`: the `firewall` family, judged on the host firewall as [`crate::host::netfilter`]
//! models it. One named `check` per rule:
//!
//! * `imds-restricted`: packets to the instance metadata service (169.254.169.254, and
//!   fd00:ec2::254 when IPv6 IMDS is in use) from every uid *not* in `allow` are dropped or
//!   rejected in an output hook (AWS's documented `-m owner ! --uid-owner` rule, or nftables
//!   `meta skuid`). Each uid of the root's `/etc/passwd` outside the allow-list, `nobody` (65534)
//!   and an unassigned uid are walked through the output chains;
//! * `imds-persistent`: the same restriction is in the configuration loaded at boot:
//!   nftables.service and the file its `ExecStart=` loads (with includes), netfilter-persistent's
//!   `/etc/iptables/rules.v4`/`rules.v6`, iptables-services' `/etc/sysconfig/iptables`/`ip6tables`,
//!   firewalld's direct rules, ufw's rules files;
//! * `imds-probe`: with `--active-probes` on a live host, the restriction is proved by connecting to
//!   the IMDS endpoint as root and as `probe_uid` ([`crate::host::probe`]);
//! * `input-default-deny`, `input-loopback`, `input-established`: an input chain drops or rejects
//!   by policy or by a final unconditional rule, loopback traffic is accepted, and packets of
//!   established/related connections are accepted.
//!
//! The live ruleset (`nft -j list ruleset`, `iptables-save`, `ip6tables-save`) is read only when
//! the sysroot is the scanning host's `/` and the stage is not `bake` (a build instance's ruleset is
//! not what the image carries); otherwise the boot-time configuration is judged, and the evidence
//! says so. A rule the model cannot judge never counts as proof of a drop.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::accounts::passwd_entries;
use crate::host::netfilter::{self, boot::BootFirewall, Fate, Packet, Ruleset, Uids, Verdict};
use crate::host::probe::{self, Connect, ProbeReport};
use crate::host::systemd::UnitIndex;
use crate::rule::{Evidence, Outcome, Stage};

/// The IMDS addresses.
pub const IMDS_V4: &str = "169.254.169.254";
pub const IMDS_V6: &str = "fd00:ec2::254";
/// A documentation address (TEST-NET-2) standing for "anywhere on the internet".
const WORLD: &str = "198.51.100.7";
const WORLD_V6: &str = "2001:db8::7";
/// The unprivileged user probed by default.
pub const NOBODY: u32 = 65534;
/// A uid no account has, standing for "any other uid".
const UNASSIGNED_UID: u32 = 59999;

const OUTSIDE_VIEW: &str = "whether SSH (or any port) is open to the world is decided by the instance's security groups and network ACLs, which are outside the host's view: review them in EC2";

/// What a `[[firewall]]` rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirewallCheckKind {
    ImdsRestricted,
    ImdsPersistent,
    ImdsProbe,
    InputDefaultDeny,
    InputLoopback,
    InputEstablished,
}

impl FirewallCheckKind {
    fn as_str(self) -> &'static str {
        match self {
            FirewallCheckKind::ImdsRestricted => "imds-restricted",
            FirewallCheckKind::ImdsPersistent => "imds-persistent",
            FirewallCheckKind::ImdsProbe => "imds-probe",
            FirewallCheckKind::InputDefaultDeny => "input-default-deny",
            FirewallCheckKind::InputLoopback => "input-loopback",
            FirewallCheckKind::InputEstablished => "input-established",
        }
    }
    fn is_imds(self) -> bool {
        matches!(
            self,
            FirewallCheckKind::ImdsRestricted
                | FirewallCheckKind::ImdsPersistent
                | FirewallCheckKind::ImdsProbe
        )
    }
}

/// Whether the IPv6 IMDS address is judged too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    /// When the agent's IMDS endpoint is the IPv6 one (`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`
    /// or the endpoint IMDS was asked on).
    #[default]
    Auto,
    Always,
    Never,
}

rule_params! {
    /// TOML parameters of `[[firewall]]`.
    pub struct Firewall {
        pub check: FirewallCheckKind,
        /// `imds-*`: users (names in the root's /etc/passwd, or numeric uids) allowed to reach IMDS.
        /// Default: root only.
        #[serde(default)]
        pub allow: Option<Spanned<Vec<Spanned<String>>>>,
        /// `imds-*`: whether fd00:ec2::254 is judged too.
        #[serde(default)]
        pub ipv6: Option<Spanned<Ipv6Mode>>,
        /// `imds-probe`: the uid that must not get through (default 65534, nobody).
        #[serde(default)]
        pub probe_uid: Option<Spanned<u32>>,
    }
}

#[derive(Debug)]
pub struct FirewallCheck {
    check: FirewallCheckKind,
    allow: Vec<String>,
    ipv6: Ipv6Mode,
    probe_uid: u32,
}

impl CompileCheck for Firewall {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let kind = self.check;
        let only_imds = |diags: &mut Diagnostics<'_>, key: &str, span| {
            if !kind.is_imds() {
                diags.error(
                    span,
                    format!(
                        "`{key}` does not apply to check `{}` (only to imds-restricted, imds-persistent, imds-probe)",
                        kind.as_str()
                    ),
                );
            }
        };
        let mut allow = vec!["root".to_string()];
        if let Some(a) = &self.allow {
            only_imds(diags, "allow", a.span());
            allow = Vec::new();
            for u in a.get_ref() {
                let name = u.get_ref().trim();
                if name.is_empty() || name.contains(char::is_whitespace) || name.contains(':') {
                    diags.error(u.span(), format!("`{name}` is not a user name or uid"));
                }
                allow.push(name.to_string());
            }
        }
        if let Some(v) = &self.ipv6 {
            only_imds(diags, "ipv6", v.span());
        }
        let mut probe_uid = NOBODY;
        if let Some(p) = &self.probe_uid {
            if kind != FirewallCheckKind::ImdsProbe {
                diags.error(
                    p.span(),
                    format!(
                        "`probe_uid` does not apply to check `{}` (only to imds-probe)",
                        kind.as_str()
                    ),
                );
            }
            probe_uid = *p.get_ref();
            if probe_uid == 0 || allow.iter().any(|a| a == &probe_uid.to_string()) {
                diags.error(
                    p.span(),
                    format!("`probe_uid` {probe_uid} must be a uid outside `allow` (not root)"),
                );
            }
        }
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(FirewallCheck {
            check: kind,
            allow,
            ipv6: self.ipv6.as_ref().map(|v| *v.get_ref()).unwrap_or_default(),
            probe_uid,
        }))
    }
}

// ------------------------------------------------------------------------------------------------
// Where the ruleset comes from

/// The ruleset a rule is judged on, and how to say where it came from.
struct Judged<'a> {
    ruleset: &'a Ruleset,
    /// `the live ruleset (nft -j list ruleset, iptables-save)` or `the configuration loaded at boot`.
    what: String,
}

/// The live ruleset of the scanner's network namespace, read once per run.
struct LiveFirewall(Result<Option<Ruleset>, String>);

// ------------------------------------------------------------------------------------------------
// Evaluation

/// Whether this run judges the live ruleset: the sysroot is this host's `/` and the stage is not
/// bake (the build instance's ruleset is not what the image carries).
fn judges_live(cx: &Context<'_>) -> bool {
    cx.sysroot.is_host_root() && cx.stage != Stage::Bake
}

fn boot(cx: &Context<'_>) -> std::sync::Arc<BootFirewall> {
    cx.cache.get(|| {
        let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
        BootFirewall::read(cx.sysroot, &units)
    })
}

/// The ruleset to judge this run on (live or boot), or the outcome when there is none.
fn with_ruleset<F: FnOnce(Judged<'_>) -> Outcome>(cx: &Context<'_>, live: bool, f: F) -> Outcome {
    if live {
        let state = cx
            .cache
            .get(|| LiveFirewall(netfilter::live_ruleset().map_err(|e| e.to_string())));
        return match &state.0 {
            Err(e) => Outcome::error(format!("cannot read the live ruleset: {e}")),
            Ok(None) => Outcome::error(
                "cannot read the live ruleset: neither nft nor iptables-save is installed",
            ),
            Ok(Some(rs)) => f(Judged {
                ruleset: rs,
                what: format!("the live ruleset ({})", rs.sources.join(", ")),
            }),
        };
    }
    let b = boot(cx);
    if !b.errors.is_empty() {
        return Outcome::error(format!(
            "the boot-time firewall configuration cannot be judged: {}",
            b.errors.join("; ")
        ));
    }
    f(Judged {
        ruleset: &b.ruleset,
        what: b.describe(),
    })
}

/// uid names of the sysroot, and the uids to try as "not allowed".
fn accounts(cx: &Context<'_>) -> std::sync::Arc<(Uids, Vec<(u32, String)>)> {
    cx.cache.get(|| {
        let mut names = Uids::new();
        let mut list = Vec::new();
        for e in passwd_entries(cx.sysroot) {
            names.entry(e.name.clone()).or_insert(e.uid);
            list.push((e.uid, e.name));
        }
        (names, list)
    })
}

impl FirewallCheck {
    fn allowed_uids(&self, names: &Uids) -> Result<BTreeSet<u32>, String> {
        let mut out = BTreeSet::new();
        for a in &self.allow {
            match a.parse::<u32>().ok().or_else(|| names.get(a).copied()) {
                Some(u) => {
                    out.insert(u);
                }
                None => {
                    return Err(format!(
                        "`allow` names user `{a}`, which the root's /etc/passwd does not have"
                    ))
                }
            }
        }
        Ok(out)
    }

    fn imds_addrs(&self, cx: &Context<'_>) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = vec![IMDS_V4.parse().expect("address")];
        let endpoint_v6 = cx.probes.imds_endpoint.contains(IMDS_V6)
            || cx
                .facts
                .imds
                .as_ref()
                .is_some_and(|f| f.endpoint.contains(IMDS_V6));
        let v6 = match self.ipv6 {
            Ipv6Mode::Always => true,
            Ipv6Mode::Never => false,
            Ipv6Mode::Auto => endpoint_v6,
        };
        if v6 {
            v.push(IMDS_V6.parse().expect("address"));
        }
        v
    }

    fn imds_rules(&self, cx: &Context<'_>, j: Judged<'_>) -> Outcome {
        let acc = accounts(cx);
        let (names, list) = (&acc.0, &acc.1);
        let allowed = match self.allowed_uids(names) {
            Ok(a) => a,
            Err(e) => return Outcome::error(e),
        };
        let mut uids: Vec<(u32, String)> = list
            .iter()
            .filter(|(u, _)| !allowed.contains(u))
            .cloned()
            .collect();
        for (u, n) in [(NOBODY, "nobody"), (UNASSIGNED_UID, "an unassigned uid")] {
            if !allowed.contains(&u) && !uids.iter().any(|(x, _)| *x == u) {
                uids.push((u, n.to_string()));
            }
        }
        uids.sort();
        uids.dedup_by_key(|(u, _)| *u);
        // nobody and an unassigned uid first: they stand for "any other user" in the evidence
        uids.sort_by_key(|(u, _)| ![NOBODY, UNASSIGNED_UID].contains(u));
        let allow_text = format!(
            "uids other than {} dropped or rejected",
            allowed
                .iter()
                .map(|u| match list.iter().find(|(x, _)| x == u) {
                    Some((_, n)) => format!("{u} ({n})"),
                    None => u.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut fails = Vec::new();
        let mut passes = Vec::new();
        for addr in self.imds_addrs(cx) {
            let mut dropped_by = BTreeSet::new();
            let mut bad: Vec<String> = Vec::new();
            for (uid, name) in &uids {
                let p = Packet {
                    hook: "output",
                    v6: addr.is_ipv6(),
                    daddr: Some(addr),
                    saddr: None,
                    iif_lo: None,
                    oif_lo: Some(false),
                    uid: Some(*uid),
                    ct_state: "new",
                    l4: "tcp",
                    dport: 80,
                };
                match j.ruleset.fate(&p, names) {
                    Fate::Dropped { chain, by } => {
                        dropped_by.insert(format!("{chain}: {by}"));
                    }
                    Fate::Passed { how } => bad.push(format!(
                        "uid {uid} ({name}) gets through{}",
                        if how.is_empty() {
                            " (no output chain)".to_string()
                        } else {
                            format!(" ({})", how.join("; "))
                        }
                    )),
                    Fate::Uncertain { why } => bad.push(format!(
                        "uid {uid} ({name}) is not shown to be dropped: {why}"
                    )),
                }
            }
            if bad.is_empty() {
                passes.push(
                    Evidence::new(format!(
                        "tcp to {addr}:80 from {} uids not allowed is refused in {}",
                        uids.len(),
                        j.what
                    ))
                    .found(dropped_by.into_iter().collect::<Vec<_>>().join("; ")),
                );
            } else {
                let shown = bad.len().min(5);
                let more = if bad.len() > shown {
                    format!(" (and {} more uids)", bad.len() - shown)
                } else {
                    String::new()
                };
                fails.push(
                    Evidence::new(format!(
                        "tcp to {addr}:80 is not restricted to the allowed users in {}",
                        j.what
                    ))
                    .found(format!("{}{more}", bad[..shown].join("; ")))
                    .expected(allow_text.clone()),
                );
            }
        }
        if fails.is_empty() {
            Outcome::Pass { evidence: passes }
        } else {
            Outcome::Fail { evidence: fails }
        }
    }

    fn probe(&self, cx: &Context<'_>) -> Outcome {
        if !cx.probes.active {
            return Outcome::not_applicable(
                "active probes are off (check --active-probes proves the restriction by connecting as another user)",
            );
        }
        if cx.offline {
            return Outcome::not_applicable("--offline: network probes are off");
        }
        if !judges_live(cx) {
            return Outcome::not_applicable(
                "an active probe tests the running host: the sysroot is not / (or the stage is bake)",
            );
        }
        let Some(exe) = cx.probes.exe.as_deref() else {
            return Outcome::error(probe::ProbeError::NoExe {
                uid: self.probe_uid,
            });
        };
        if !nix::unistd::geteuid().is_root() {
            return Outcome::error("the active IMDS probe needs root to connect as another uid");
        }
        let addr = match probe::endpoint_addr(&cx.probes.imds_endpoint) {
            Ok(a) => a,
            Err(e) => return Outcome::error(e),
        };
        let acc = accounts(cx);
        let gid = passwd_entries(cx.sysroot)
            .into_iter()
            .find(|e| e.uid == self.probe_uid)
            .map(|e| e.gid)
            .unwrap_or(NOBODY);
        let name = acc
            .1
            .iter()
            .find(|(u, _)| *u == self.probe_uid)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| "no account".into());
        let run = |uid: u32, gid: u32| -> Result<ProbeReport, String> {
            let memo = cx.cache.get(ProbeMemo::default);
            let key = (uid, gid, addr.to_string());
            if let Some(r) = memo.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                return r.clone();
            }
            let r =
                probe::run_as(exe, uid, gid, addr, cx.probes.timeout).map_err(|e| e.to_string());
            memo.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, r.clone());
            r
        };
        let root = match run(0, 0) {
            Ok(r) => r,
            Err(e) => return Outcome::error(e),
        };
        let other = match run(self.probe_uid, gid) {
            Ok(r) => r,
            Err(e) => return Outcome::error(e),
        };
        let root_ev = Evidence::new(format!(
            "as root (uid 0): tcp connect to {addr}: {}",
            root.connect.describe()
        ));
        let other_ev = |expected: bool| {
            let e = Evidence::new(format!(
                "as uid {} ({name}): tcp connect to {addr}: {}",
                self.probe_uid,
                other.connect.describe()
            ));
            if expected {
                e.expected("refused, dropped or timed out")
            } else {
                e
            }
        };
        if other.connect.got_through() {
            return Outcome::Fail {
                evidence: vec![other_ev(true), root_ev],
            };
        }
        if !root.connect.got_through() {
            return Outcome::not_applicable(format!(
                "the IMDS endpoint {addr} did not accept root's connection either ({}; uid {}: {}), so the probe proves nothing (not on EC2, or IMDS is off)",
                root.connect.describe(),
                self.probe_uid,
                other.connect.describe()
            ));
        }
        if matches!(
            other.connect,
            Connect::Failed { .. } | Connect::Refused { .. } | Connect::TimedOut { .. }
        ) {
            return Outcome::Pass {
                evidence: vec![root_ev, other_ev(false)],
            };
        }
        Outcome::error("unreachable probe state")
    }

    fn input(&self, j: Judged<'_>) -> Outcome {
        let names = Uids::new();
        match self.check {
            FirewallCheckKind::InputDefaultDeny => {
                let mut fails = Vec::new();
                let mut passes = Vec::new();
                for v6 in [false, true] {
                    let ipv = if v6 { "IPv6" } else { "IPv4" };
                    let chains = j.ruleset.base_chains("input", v6);
                    let deny = chains.iter().find_map(|c| {
                        if c.policy == Verdict::Drop {
                            return Some(format!("{}: policy drop", c.label()));
                        }
                        let last = c
                            .rules
                            .iter()
                            .rev()
                            .find(|r| !(r.verdict == Verdict::None && r.conds.is_empty()))?;
                        (last.conds.is_empty()
                            && matches!(last.verdict, Verdict::Drop | Verdict::Reject))
                        .then(|| format!("{}: final rule `{}`", c.label(), last.text))
                    });
                    match deny {
                        Some(d) => {
                            let ssh = world_ssh(j.ruleset, v6, &names);
                            passes.push(
                                Evidence::new(format!(
                                    "{ipv} input is refused by default in {}",
                                    j.what
                                ))
                                .found(format!("{d}; {ssh}")),
                            );
                        }
                        None => fails.push(
                            Evidence::new(format!(
                                "no {ipv} input chain drops or rejects by default in {}",
                                j.what
                            ))
                            .found(if chains.is_empty() {
                                "no input chain: every packet is accepted".to_string()
                            } else {
                                chains
                                    .iter()
                                    .map(|c| format!("{}: policy accept", c.label()))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            })
                            .expected("an input chain with policy drop, or a final unconditional drop/reject rule"),
                        ),
                    }
                }
                let note = Evidence::new(OUTSIDE_VIEW);
                if fails.is_empty() {
                    passes.push(note);
                    Outcome::Pass { evidence: passes }
                } else {
                    fails.push(note);
                    Outcome::Fail { evidence: fails }
                }
            }
            FirewallCheckKind::InputLoopback | FirewallCheckKind::InputEstablished => {
                let lo = self.check == FirewallCheckKind::InputLoopback;
                let mut fails = Vec::new();
                let mut passes = Vec::new();
                for v6 in [false, true] {
                    let (src, dst): (IpAddr, IpAddr) = match (lo, v6) {
                        (true, false) => {
                            ("127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap())
                        }
                        (true, true) => ("::1".parse().unwrap(), "::1".parse().unwrap()),
                        (false, false) => (WORLD.parse().unwrap(), "10.0.0.10".parse().unwrap()),
                        (false, true) => {
                            (WORLD_V6.parse().unwrap(), "2001:db8:1::10".parse().unwrap())
                        }
                    };
                    let p = Packet {
                        hook: "input",
                        v6,
                        daddr: Some(dst),
                        saddr: Some(src),
                        iif_lo: Some(lo),
                        oif_lo: None,
                        uid: None,
                        ct_state: if lo { "new" } else { "established" },
                        l4: "tcp",
                        dport: if lo { 5432 } else { 40000 },
                    };
                    let what = if lo {
                        format!("a new tcp connection {src} -> {dst} on lo")
                    } else {
                        format!("an established tcp connection's packet from {src}")
                    };
                    match j.ruleset.fate(&p, &names) {
                        Fate::Passed { how } => passes.push(
                            Evidence::new(format!("{what} is accepted by {}", j.what)).found(
                                if how.is_empty() {
                                    "no input chain".into()
                                } else {
                                    how.join("; ")
                                },
                            ),
                        ),
                        Fate::Dropped { chain, by } => fails.push(
                            Evidence::new(format!("{what} is refused by {}", j.what))
                                .found(format!("{chain}: {by}"))
                                .expected(if lo {
                                    "iif lo accepted before any drop"
                                } else {
                                    "ct state established,related accepted before any drop"
                                }),
                        ),
                        Fate::Uncertain { why } => fails.push(
                            Evidence::new(format!(
                                "{what} is not shown to be accepted by {}",
                                j.what
                            ))
                            .found(why),
                        ),
                    }
                }
                if fails.is_empty() {
                    Outcome::Pass { evidence: passes }
                } else {
                    Outcome::Fail { evidence: fails }
                }
            }
            _ => Outcome::error("not an input check"),
        }
    }
}

/// What happens to a new SSH connection from the internet, as information (security groups decide).
fn world_ssh(rs: &Ruleset, v6: bool, names: &Uids) -> String {
    let p = Packet {
        hook: "input",
        v6,
        daddr: None,
        saddr: Some(if v6 { WORLD_V6 } else { WORLD }.parse().expect("address")),
        iif_lo: Some(false),
        oif_lo: None,
        uid: None,
        ct_state: "new",
        l4: "tcp",
        dport: 22,
    };
    match rs.fate(&p, names) {
        Fate::Dropped { .. } => "tcp/22 from the internet is refused by the host".into(),
        Fate::Passed { .. } => "tcp/22 from the internet is accepted by the host".into(),
        Fate::Uncertain { .. } => {
            "tcp/22 from the internet may be accepted by the host (rules not fully modelled)".into()
        }
    }
}

/// Probe results of this run, so two rules never probe twice.
#[derive(Default)]
struct ProbeMemo(Mutex<std::collections::HashMap<ProbeKey, Result<ProbeReport, String>>>);

/// uid, gid, target.
type ProbeKey = (u32, u32, String);

impl Check for FirewallCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        match self.check {
            FirewallCheckKind::ImdsRestricted => {
                with_ruleset(cx, judges_live(cx), |j| self.imds_rules(cx, j))
            }
            FirewallCheckKind::ImdsPersistent => {
                with_ruleset(cx, false, |j| self.imds_rules(cx, j))
            }
            FirewallCheckKind::ImdsProbe => self.probe(cx),
            _ => with_ruleset(cx, judges_live(cx), |j| self.input(j)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_validated() {
        let src = crate::diag::SourceFile::new("t.toml", " ".repeat(4));
        let mut diags = Diagnostics::new(&src);
        let f = Firewall {
            id: Spanned::new(0..1, "x".into()),
            title: Spanned::new(0..1, "x".into()),
            severity: crate::rule::Severity::Low,
            stages: Spanned::new(0..1, vec![Stage::Run]),
            family: None,
            rationale: Spanned::new(0..1, "x".into()),
            remediation: Spanned::new(0..1, "x".into()),
            references: Vec::new(),
            check: FirewallCheckKind::InputLoopback,
            allow: Some(Spanned::new(0..1, vec![Spanned::new(0..1, "root".into())])),
            ipv6: None,
            probe_uid: None,
        };
        assert!(f.compile(&mut diags).is_none(), "allow on an input check");
        let f = Firewall {
            check: FirewallCheckKind::ImdsProbe,
            allow: None,
            probe_uid: Some(Spanned::new(0..1, 0)),
            ..f
        };
        let mut diags = Diagnostics::new(&src);
        assert!(
            f.compile(&mut diags).is_none(),
            "probing as root proves nothing"
        );
    }
}
