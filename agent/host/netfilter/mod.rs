//! The host firewall as data: one model of netfilter chains and rules, filled from the live ruleset
//! (`nft -j list ruleset` parsed with the `nftables` crate, and `iptables-save`/`ip6tables-save`
//! text) or from the configuration loaded at boot (`/etc/nftables.conf` and its includes, the
//! netfilter-persistent / iptables-services rules files), and a small evaluator that walks a
//! described packet through the base chains of a hook the way the kernel does: chains in priority
//! order, rules in order, `jump`/`goto`/`return`, the chain policy at the end; a drop or reject in
//! any base chain is final, an accept only ends that chain.
//!
//! A condition the evaluator does not model (an `xt` match of iptables-nft, `limit`, marks, an
//! interface other than `lo`, ...) is *unknown*: a drop behind it proves nothing and an accept
//! behind it may let the packet through, so verdicts err towards "not shown to be dropped".

pub mod boot;
pub mod firewalld;
pub mod ufw;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// What a rule matches on, as far as the evaluator models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Socket owner uid (`meta skuid`, `-m owner --uid-owner`): uids or names.
    SkUid {
        neg: bool,
        uids: Vec<String>,
    },
    Daddr {
        neg: bool,
        nets: Vec<Net>,
    },
    Saddr {
        neg: bool,
        nets: Vec<Net>,
    },
    Iif {
        neg: bool,
        names: Vec<String>,
    },
    Oif {
        neg: bool,
        names: Vec<String>,
    },
    CtState {
        neg: bool,
        states: Vec<String>,
    },
    L4 {
        neg: bool,
        protos: Vec<String>,
    },
    Dport {
        neg: bool,
        ports: Vec<(u16, u16)>,
    },
    /// The address family (`meta nfproto ipv6`, or implied by `ip6 daddr`).
    V6(bool),
    Unknown(String),
}

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Net { addr, len })
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
    Jump(String),
    Goto(String),
    Return,
    /// No verdict (`log`, `counter` only): evaluation goes on with the next rule.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwRule {
    pub conds: Vec<Cond>,
    pub verdict: Verdict,
    /// The rule as written (nft syntax or iptables-save line), for evidence.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwChain {
    /// `nft inet filter output`, `iptables filter OUTPUT`, `/etc/nftables.conf inet filter output`.
    pub origin: String,
    /// `ip`, `ip6`, `inet` (others never see IP packets of the local host and are ignored).
    pub family: String,
    pub table: String,
    pub name: String,
    /// `input`, `output`, ... for base chains.
    pub hook: Option<String>,
    pub prio: i32,
    /// Base chains: `Accept` or `Drop`.
    pub policy: Verdict,
    pub rules: Vec<FwRule>,
}

/// A whole ruleset, from one or more sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<FwChain>,
    /// Where it came from (`nft -j list ruleset`, `/etc/iptables/rules.v4`, ...).
    pub sources: Vec<String>,
}

/// Errors reading or parsing a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    #[error(transparent)]
    Tool(#[from] crate::host::command::ToolError),
    #[error("nft -j list ruleset: not the JSON nft 1.0 writes: {0}")]
    Json(serde_json::Error),
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

// ------------------------------------------------------------------------------------------------
// Packets and evaluation

/// A packet described for evaluation: what is known about it.
#[derive(Debug, Clone)]
pub struct Packet {
    pub hook: &'static str,
    pub v6: bool,
    pub daddr: Option<IpAddr>,
    pub saddr: Option<IpAddr>,
    /// Input interface: `Some("lo")` is known; any other is "not lo" (its name unknown).
    pub iif_lo: Option<bool>,
    pub oif_lo: Option<bool>,
    pub uid: Option<u32>,
    pub ct_state: &'static str,
    pub l4: &'static str,
    pub dport: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

/// How a packet fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Dropped or rejected: by which chain and rule (or policy).
    Dropped { chain: String, by: String },
    /// Not dropped by any base chain: each chain's last word.
    Passed { how: Vec<String> },
    /// Not shown to be dropped, and some rule on the way could not be judged.
    Uncertain { why: String },
}

/// Resolves uid names of the audited system.
pub type Uids = HashMap<String, u32>;

fn uid_of(s: &str, names: &Uids) -> Option<u32> {
    s.parse().ok().or_else(|| names.get(s).copied())
}

fn neg(t: Tri, n: bool) -> Tri {
    match (t, n) {
        (Tri::True, true) => Tri::False,
        (Tri::False, true) => Tri::True,
        (t, _) => t,
    }
}

fn eval_cond(c: &Cond, p: &Packet, names: &Uids) -> Tri {
    let b = |x: bool| if x { Tri::True } else { Tri::False };
    match c {
        Cond::SkUid { neg: n, uids } => match p.uid {
            None => Tri::Unknown,
            Some(u) => {
                let mut r = Tri::False;
                for s in uids {
                    match uid_of(s, names) {
                        Some(x) if x == u => r = Tri::True,
                        Some(_) => {}
                        None if r == Tri::False => r = Tri::Unknown,
                        None => {}
                    }
                }
                neg(r, *n)
            }
        },
        Cond::Daddr { neg: n, nets } | Cond::Saddr { neg: n, nets } => {
            let addr = if matches!(c, Cond::Daddr { .. }) {
                p.daddr
            } else {
                p.saddr
            };
            let Some(a) = addr else {
                return Tri::Unknown;
            };
            if nets.iter().all(|net| net.addr.is_ipv6() != p.v6) {
                // `ip daddr X` does not match an IPv6 packet at all, negated or not.
                return Tri::False;
            }
            neg(b(nets.iter().any(|net| net.contains(a))), *n)
        }
        Cond::Iif { neg: n, names: ifs } | Cond::Oif { neg: n, names: ifs } => {
            let lo = if matches!(c, Cond::Iif { .. }) {
                p.iif_lo
            } else {
                p.oif_lo
            };
            match lo {
                None => Tri::Unknown,
                Some(true) => neg(b(ifs.iter().any(|i| i == "lo")), *n),
                // Not lo: a rule naming only lo is false; one naming eth0/ens5 is unknown.
                Some(false) if ifs.iter().all(|i| i == "lo") => neg(Tri::False, *n),
                Some(false) => Tri::Unknown,
            }
        }
        Cond::CtState { neg: n, states } => neg(b(states.iter().any(|s| s == p.ct_state)), *n),
        Cond::L4 { neg: n, protos } => neg(b(protos.iter().any(|s| s == p.l4)), *n),
        Cond::Dport { neg: n, ports } => neg(
            b(ports.iter().any(|(a, z)| (*a..=*z).contains(&p.dport))),
            *n,
        ),
        Cond::V6(v6) => b(*v6 == p.v6),
        Cond::Unknown(_) => Tri::Unknown,
    }
}

enum ChainEnd {
    Drop(String),
    Accept(String),
    Fallthrough,
    Unknown(String),
}

impl Ruleset {
    /// Merge another ruleset in (chains are kept apart by origin).
    pub fn extend(&mut self, other: Ruleset) {
        self.chains.extend(other.chains);
        self.sources.extend(other.sources);
    }

    /// Base chains of a hook that see packets of this IP version, by priority.
    pub fn base_chains(&self, hook: &str, v6: bool) -> Vec<&FwChain> {
        let mut v: Vec<&FwChain> = self
            .chains
            .iter()
            .filter(|c| c.hook.as_deref() == Some(hook))
            .filter(|c| match c.family.as_str() {
                "inet" => true,
                "ip" => !v6,
                "ip6" => v6,
                _ => false,
            })
            .collect();
        v.sort_by_key(|c| c.prio);
        v
    }

    fn chain(&self, like: &FwChain, name: &str) -> Option<&FwChain> {
        self.chains.iter().find(|c| {
            c.origin_prefix() == like.origin_prefix()
                && c.family == like.family
                && c.table == like.table
                && c.name == name
        })
    }

    fn run_chain(&self, chain: &FwChain, p: &Packet, names: &Uids, depth: usize) -> ChainEnd {
        if depth > 16 {
            return ChainEnd::Unknown(format!("jumps nested too deep at {}", chain.name));
        }
        let mut unknown: Option<String> = None;
        for rule in &chain.rules {
            let mut m = Tri::True;
            for c in &rule.conds {
                match eval_cond(c, p, names) {
                    Tri::False => {
                        m = Tri::False;
                        break;
                    }
                    Tri::Unknown => m = Tri::Unknown,
                    Tri::True => {}
                }
            }
            if m == Tri::False {
                continue;
            }
            let here = format!("`{}`", rule.text);
            if m == Tri::Unknown {
                match rule.verdict {
                    Verdict::None | Verdict::Drop | Verdict::Reject => continue,
                    _ => {
                        unknown.get_or_insert(format!(
                            "{here} in {} may match and does not drop",
                            chain.label()
                        ));
                        return ChainEnd::Unknown(unknown.unwrap_or_default());
                    }
                }
            }
            match &rule.verdict {
                Verdict::None => {}
                Verdict::Accept => return ChainEnd::Accept(format!("accepted by {here}")),
                Verdict::Drop | Verdict::Reject => return ChainEnd::Drop(here),
                Verdict::Return => return ChainEnd::Fallthrough,
                Verdict::Jump(t) | Verdict::Goto(t) => {
                    let Some(target) = self.chain(chain, t) else {
                        return ChainEnd::Unknown(format!("{here}: no chain `{t}`"));
                    };
                    match self.run_chain(target, p, names, depth + 1) {
                        ChainEnd::Fallthrough if matches!(rule.verdict, Verdict::Jump(_)) => {}
                        ChainEnd::Fallthrough => return ChainEnd::Fallthrough,
                        end => return end,
                    }
                }
            }
        }
        ChainEnd::Fallthrough
    }

    /// Walk `p` through every base chain of its hook.
    pub fn fate(&self, p: &Packet, names: &Uids) -> Fate {
        let mut how = Vec::new();
        let mut uncertain = None;
        for chain in self.base_chains(p.hook, p.v6) {
            match self.run_chain(chain, p, names, 0) {
                ChainEnd::Drop(by) => {
                    return Fate::Dropped {
                        chain: chain.label(),
                        by,
                    }
                }
                ChainEnd::Fallthrough if chain.policy == Verdict::Drop => {
                    return Fate::Dropped {
                        chain: chain.label(),
                        by: "its drop policy".into(),
                    }
                }
                ChainEnd::Fallthrough => how.push(format!("{}: policy accept", chain.label())),
                ChainEnd::Accept(why) => how.push(format!("{}: {why}", chain.label())),
                ChainEnd::Unknown(why) => {
                    uncertain.get_or_insert(why);
                }
            }
        }
        match uncertain {
            Some(why) => Fate::Uncertain { why },
            None => Fate::Passed { how },
        }
    }
}

impl FwChain {
    pub fn label(&self) -> String {
        self.origin.clone()
    }
    fn origin_prefix(&self) -> &str {
        // origin is "<source> <family> <table> <chain>": the source part identifies the ruleset.
        self.origin
            .rsplitn(4, ' ')
            .nth(3)
            .unwrap_or(self.origin.as_str())
    }
}

// ------------------------------------------------------------------------------------------------
// nft JSON (live ruleset) through the nftables crate

/// Parse `nft -j list ruleset` output. Each object is read with the `nftables` crate's schema
/// types; crate 0.6 does not know every set type nft 1.0.6 writes (`type uid` is missing), so a set
/// or rule the crate refuses is read from the raw JSON, which follows the same schema.
pub fn parse_nft_json(text: &str) -> Result<Ruleset, NetfilterError> {
    use nftables::schema::{Chain, Rule, Set};
    let doc: serde_json::Value = serde_json::from_str(text).map_err(NetfilterError::Json)?;
    let objects = doc["nftables"].as_array().ok_or_else(|| {
        NetfilterError::Json(serde::de::Error::custom("no top-level `nftables` array"))
    })?;
    let mut chains: Vec<FwChain> = Vec::new();
    let mut sets: SetMap = HashMap::new();
    let mut rules = Vec::new();
    for obj in objects {
        if let Some(raw) = obj.get("chain") {
            let c: Chain = serde_json::from_value(raw.clone()).map_err(NetfilterError::Json)?;
            let v = serde_json::to_value(&c).map_err(NetfilterError::Json)?;
            let family = v["family"].as_str().unwrap_or("").to_string();
            chains.push(FwChain {
                origin: format!("nft {family} {} {}", c.table, c.name),
                family,
                table: c.table.to_string(),
                name: c.name.to_string(),
                hook: v["hook"].as_str().map(str::to_string),
                prio: c.prio.unwrap_or(0),
                policy: if v["policy"] == "drop" {
                    Verdict::Drop
                } else {
                    Verdict::Accept
                },
                rules: Vec::new(),
            });
        } else if let Some(raw) = obj.get("set") {
            let v = serde_json::from_value::<Set>(raw.clone())
                .ok()
                .and_then(|s| serde_json::to_value(&s).ok())
                .unwrap_or_else(|| raw.clone());
            let elems = v["elem"].as_array().cloned().unwrap_or_default();
            sets.insert(
                (
                    v["family"].as_str().unwrap_or("").to_string(),
                    v["table"].as_str().unwrap_or("").to_string(),
                    v["name"].as_str().unwrap_or("").to_string(),
                ),
                elems,
            );
        } else if let Some(raw) = obj.get("rule") {
            let v = serde_json::from_value::<Rule>(raw.clone())
                .ok()
                .and_then(|r| serde_json::to_value(&r).ok())
                .unwrap_or_else(|| raw.clone());
            rules.push(v);
        }
    }
    for r in rules {
        let family = r["family"].as_str().unwrap_or("").to_string();
        let table = r["table"].as_str().unwrap_or("").to_string();
        let chain = r["chain"].as_str().unwrap_or("").to_string();
        let scope = SetScope {
            sets: &sets,
            family: &family,
            table: &table,
        };
        let rule = json_rule(
            r["expr"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            &scope,
        );
        if let Some(c) = chains
            .iter_mut()
            .find(|c| c.family == family && c.table == table && c.name == chain)
        {
            c.rules.push(rule);
        }
    }
    Ok(Ruleset {
        chains,
        sources: vec!["nft -j list ruleset".into()],
    })
}

type SetMap = HashMap<(String, String, String), Vec<serde_json::Value>>;

/// The named sets a rule can refer to (`@allowed`): those of its own table.
struct SetScope<'a> {
    sets: &'a SetMap,
    family: &'a str,
    table: &'a str,
}

impl SetScope<'_> {
    fn get(&self, name: &str) -> Option<&Vec<serde_json::Value>> {
        self.sets.get(&(
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        ))
    }
}

/// Scalar or list values of a match's right-hand side, as strings (`@set` resolved).
fn json_values(v: &serde_json::Value, sets: &SetScope<'_>) -> Option<Vec<String>> {
    use serde_json::Value as V;
    match v {
        V::String(s) if s.starts_with('@') => {
            let elems = sets.get(&s[1..])?;
            let mut out = Vec::new();
            for e in elems {
                out.extend(json_values(e, sets)?);
            }
            Some(out)
        }
        V::String(s) => Some(vec![s.clone()]),
        V::Number(n) => Some(vec![n.to_string()]),
        V::Array(a) => {
            let mut out = Vec::new();
            for e in a {
                out.extend(json_values(e, sets)?);
            }
            Some(out)
        }
        V::Object(o) => {
            if let Some(s) = o.get("set") {
                return json_values(s, sets);
            }
            if let Some(p) = o.get("prefix") {
                return Some(vec![format!(
                    "{}/{}",
                    p["addr"].as_str()?,
                    p["len"].as_u64()?
                )]);
            }
            if let Some(r) = o.get("range") {
                let a = json_values(&r[0], sets)?;
                let z = json_values(&r[1], sets)?;
                return Some(vec![format!("{}-{}", a.first()?, z.first()?)]);
            }
            if let Some(e) = o.get("elem") {
                return json_values(&e["val"], sets);
            }
            None
        }
        _ => None,
    }
}

fn json_rule(expr: &[serde_json::Value], sets: &SetScope<'_>) -> FwRule {
    let mut conds = Vec::new();
    let mut verdict = Verdict::None;
    let mut text = Vec::new();
    for st in expr {
        let Some((key, body)) = st.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match key.as_str() {
            "match" => {
                let n = body["op"] == "!=";
                let left = &body["left"];
                let right = json_values(&body["right"], sets);
                let what = if let Some(m) = left.get("meta") {
                    format!("meta {}", m["key"].as_str().unwrap_or("?"))
                } else if let Some(p) = left.get("payload") {
                    format!(
                        "{} {}",
                        p["protocol"].as_str().unwrap_or("?"),
                        p["field"].as_str().unwrap_or("?")
                    )
                } else if let Some(c) = left.get("ct") {
                    format!("ct {}", c["key"].as_str().unwrap_or("?"))
                } else {
                    "?".to_string()
                };
                let vals = right.clone().unwrap_or_default();
                text.push(format!(
                    "{what} {}{}",
                    if n { "!= " } else { "" },
                    if vals.len() == 1 {
                        vals[0].clone()
                    } else {
                        format!("{{ {} }}", vals.join(", "))
                    }
                ));
                let op_ok = matches!(body["op"].as_str(), Some("==" | "!=" | "in"));
                conds.push(match right {
                    Some(vals) if op_ok => cond_from(&what, n, vals),
                    _ => Cond::Unknown(what),
                });
            }
            "accept" => verdict = Verdict::Accept,
            "drop" => verdict = Verdict::Drop,
            "reject" => verdict = Verdict::Reject,
            "return" => verdict = Verdict::Return,
            "jump" | "goto" => {
                let t = body["target"].as_str().unwrap_or("").to_string();
                verdict = if key == "jump" {
                    Verdict::Jump(t)
                } else {
                    Verdict::Goto(t)
                };
            }
            "counter" | "log" | "comment" => {}
            "xt" => {
                // iptables-nft's compat matches and targets: judged from iptables-save instead.
                let name = body["name"].as_str().unwrap_or("?");
                conds.push(Cond::Unknown(format!("xt {name}")));
            }
            other => conds.push(Cond::Unknown(other.to_string())),
        }
        if matches!(
            key.as_str(),
            "accept" | "drop" | "reject" | "return" | "jump" | "goto"
        ) {
            text.push(key.clone());
        }
    }
    FwRule {
        conds,
        verdict,
        text: text.join(" "),
    }
}

/// One condition from nft's own words: `meta skuid`, `ip daddr`, `ct state`, `tcp dport`, ...
fn cond_from(what: &str, n: bool, vals: Vec<String>) -> Cond {
    let ports = |vals: &[String]| -> Option<Vec<(u16, u16)>> {
        vals.iter()
            .map(|v| match v.split_once('-') {
                Some((a, z)) => Some((a.parse().ok()?, z.parse().ok()?)),
                None => port_number(v).map(|p| (p, p)),
            })
            .collect()
    };
    let nets =
        |vals: &[String]| -> Option<Vec<Net>> { vals.iter().map(|v| Net::parse(v)).collect() };
    match what {
        "meta skuid" => Cond::SkUid { neg: n, uids: vals },
        "ip daddr" | "ip6 daddr" => match nets(&vals) {
            Some(nets) => Cond::Daddr { neg: n, nets },
            None => Cond::Unknown(what.into()),
        },
        "ip saddr" | "ip6 saddr" => match nets(&vals) {
            Some(nets) => Cond::Saddr { neg: n, nets },
            None => Cond::Unknown(what.into()),
        },
        "meta iif" | "meta iifname" => Cond::Iif {
            neg: n,
            names: vals,
        },
        "meta oif" | "meta oifname" => Cond::Oif {
            neg: n,
            names: vals,
        },
        "ct state" => Cond::CtState {
            neg: n,
            states: vals
                .iter()
                .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
                .collect(),
        },
        "meta l4proto" | "ip protocol" | "ip6 nexthdr" => Cond::L4 {
            neg: n,
            protos: vals.iter().map(|v| proto_name(v)).collect(),
        },
        "tcp dport" | "udp dport" | "th dport" => match ports(&vals) {
            Some(ports) => Cond::Dport { neg: n, ports },
            None => Cond::Unknown(what.into()),
        },
        "meta nfproto" if vals.len() == 1 && !n => Cond::V6(vals[0] == "ipv6"),
        _ => Cond::Unknown(what.into()),
    }
}

fn proto_name(v: &str) -> String {
    match v {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "ipv6-icmp".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn port_number(v: &str) -> Option<u16> {
    v.parse().ok().or(match v {
        "ssh" => Some(22),
        "http" => Some(80),
        "https" => Some(443),
        "domain" => Some(53),
        _ => None,
    })
}

// ------------------------------------------------------------------------------------------------
// iptables-save text

/// Parse `iptables-save` (or `ip6tables-save`, `v6 = true`) output or a rules file in that format.
pub fn parse_iptables_save(text: &str, v6: bool, source: &str) -> Result<Ruleset, NetfilterError> {
    let family = if v6 { "ip6" } else { "ip" };
    let tool = if v6 { "ip6tables" } else { "iptables" };
    let mut chains: Vec<FwChain> = Vec::new();
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| NetfilterError::Syntax {
            path: source.to_string(),
            line: i + 1,
            message,
        };
        if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut f = decl.split_whitespace();
            let name = f.next().unwrap_or("").to_string();
            let policy = f.next().unwrap_or("-");
            let hook = match name.as_str() {
                "INPUT" | "OUTPUT" | "FORWARD" | "PREROUTING" | "POSTROUTING" => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            // Tables as iptables orders them on a hook; nat sees only new connections' first
            // packet and never filters, so it is left out.
            let prio = match table.as_str() {
                "raw" => -300,
                "mangle" => -150,
                "filter" => 0,
                "security" => 50,
                _ => continue,
            };
            chains.push(FwChain {
                origin: format!("{source} {family} {table} {name}"),
                family: family.into(),
                table: table.clone(),
                name,
                hook,
                prio,
                policy: if policy == "DROP" {
                    Verdict::Drop
                } else {
                    Verdict::Accept
                },
                rules: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("-A ") {
            if table == "nat" {
                continue;
            }
            let words = shell_words(rest).map_err(err)?;
            let Some((chain, args)) = words.split_first() else {
                return Err(err("`-A` without a chain".into()));
            };
            let rule = iptables_rule(args, line);
            match chains
                .iter_mut()
                .find(|c| c.table == table && c.name == *chain)
            {
                Some(c) => c.rules.push(rule),
                None => return Err(err(format!("chain `{chain}` not declared in *{table}"))),
            }
        } else {
            return Err(err(format!("not iptables-save syntax: `{line}`")));
        }
    }
    Ok(Ruleset {
        chains,
        sources: vec![format!("{tool}: {source}")],
    })
}

/// Split on whitespace, honouring double quotes (`--comment "a b"`).
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unbalanced quote".into());
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

fn iptables_rule(args: &[String], line: &str) -> FwRule {
    let mut conds = Vec::new();
    let mut verdict = Verdict::None;
    let mut i = 0;
    let mut n = false;
    let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    while i < args.len() {
        let a = args[i].as_str();
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let mut take = 2;
        match a {
            "!" => {
                n = true;
                i += 1;
                continue;
            }
            "-d" | "--destination" | "-s" | "--source" => {
                let nets: Option<Vec<Net>> = val.split(',').map(Net::parse).collect();
                conds.push(match (nets, a.starts_with("-d") || a == "--destination") {
                    (Some(nets), true) => Cond::Daddr { neg: n, nets },
                    (Some(nets), false) => Cond::Saddr { neg: n, nets },
                    (None, _) => Cond::Unknown(format!("{a} {val}")),
                });
            }
            "-p" | "--protocol" => conds.push(Cond::L4 {
                neg: n,
                protos: vec![proto_name(&val.to_ascii_lowercase())],
            }),
            "-i" | "--in-interface" => conds.push(Cond::Iif {
                neg: n,
                names: vec![val],
            }),
            "-o" | "--out-interface" => conds.push(Cond::Oif {
                neg: n,
                names: vec![val],
            }),
            "--uid-owner" => conds.push(Cond::SkUid {
                neg: n,
                uids: match val.split_once('-') {
                    // a uid range a-b: listed when small, else unknown
                    Some((x, y)) => match (x.parse::<u32>(), y.parse::<u32>()) {
                        (Ok(x), Ok(y)) if y >= x && y - x < 65536 => {
                            (x..=y).map(|u| u.to_string()).collect()
                        }
                        _ => {
                            conds.push(Cond::Unknown(format!("--uid-owner {val}")));
                            i += 2;
                            n = false;
                            continue;
                        }
                    },
                    None => vec![val],
                },
            }),
            "--ctstate" | "--state" => conds.push(Cond::CtState {
                neg: n,
                states: list(&val.to_ascii_lowercase()),
            }),
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                let ports: Option<Vec<(u16, u16)>> = val
                    .split(',')
                    .map(|p| match p.split_once(':') {
                        Some((x, y)) => Some((x.parse().ok()?, y.parse().ok()?)),
                        None => port_number(p).map(|p| (p, p)),
                    })
                    .collect();
                conds.push(match ports {
                    Some(ports) => Cond::Dport { neg: n, ports },
                    None => Cond::Unknown(format!("{a} {val}")),
                });
            }
            "-m" | "--match" => {
                // the module's own options follow and are handled one by one; modules we do not
                // model announce themselves through their options (below)
                if !matches!(
                    val.as_str(),
                    "owner" | "conntrack" | "state" | "tcp" | "udp" | "multiport" | "comment"
                ) {
                    conds.push(Cond::Unknown(format!("-m {val}")));
                }
            }
            "--comment" => {}
            "-j" | "--jump" | "-g" | "--goto" => {
                verdict = match val.as_str() {
                    "ACCEPT" => Verdict::Accept,
                    "DROP" => Verdict::Drop,
                    "REJECT" => Verdict::Reject,
                    "RETURN" => Verdict::Return,
                    "LOG" | "NFLOG" | "ULOG" | "MARK" | "CONNMARK" => Verdict::None,
                    t if a == "-g" || a == "--goto" => Verdict::Goto(t.to_string()),
                    t => Verdict::Jump(t.to_string()),
                };
                // target options (--reject-with, --log-prefix ...) are skipped below
            }
            "-c" => take = 3,
            s if s.starts_with("--") && !matches!(verdict, Verdict::None) => {
                // an option of the target (`--reject-with icmp-port-unreachable`)
            }
            other if other.starts_with('-') => {
                conds.push(Cond::Unknown(format!("{other} {val}")));
            }
            _ => take = 1,
        }
        n = false;
        i += take;
    }
    FwRule {
        conds,
        verdict,
        text: line.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------
// nft configuration text (what nftables.service loads at boot)

/// Expands an `include` pattern into `(path, text)` of each file it names.
pub type Includer<'a> = dyn FnMut(&str) -> Result<Vec<(String, String)>, NetfilterError> + 'a;

/// Parse an nft configuration file (the ruleset syntax of `nft -f`): `table`/`chain`/`set` blocks,
/// `type ... hook ... priority ...; policy ...;`, rules one per line, `define` variables, and
/// `include` (expanded by the caller through `include`). `add`/`insert rule` commands, flowtables
/// and maps are read as unknown.
pub fn parse_nft_conf(
    text: &str,
    source: &str,
    include: &mut Includer<'_>,
) -> Result<Ruleset, NetfilterError> {
    let mut rs = Ruleset {
        chains: Vec::new(),
        sources: vec![source.to_string()],
    };
    let mut defines: HashMap<String, String> = HashMap::new();
    let mut included = 0;
    conf_into(
        text,
        source,
        include,
        &mut defines,
        &mut rs,
        0,
        &mut included,
    )?;
    Ok(rs)
}

/// The most files one nftables configuration may include, counting a file each time it is
/// included (includes that fan out would otherwise take exponential time).
pub const MAX_INCLUDED_FILES: usize = 1024;
/// The longest a statement may grow by `$variable` expansion (defines that each double the
/// previous one would otherwise take gigabytes).
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

fn conf_into(
    text: &str,
    source: &str,
    include: &mut Includer<'_>,
    defines: &mut HashMap<String, String>,
    rs: &mut Ruleset,
    depth: usize,
    included: &mut usize,
) -> Result<(), NetfilterError> {
    // Join statements: a line with unbalanced `{` of a set/anonymous set continues on the next.
    let mut stmts: Vec<(usize, String)> = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find('#') {
            Some(p) if !raw[..p].contains('"') => &raw[..p],
            _ => raw,
        }
        .trim();
        if pending.is_empty() {
            start = i + 1;
        }
        for part in split_top(line) {
            pending.push(' ');
            pending.push_str(part.trim());
            let opens = pending.matches('{').count();
            let closes = pending.matches('}').count();
            let block_open = pending.trim_end().ends_with('{');
            if block_open || opens <= closes {
                stmts.push((start, std::mem::take(&mut pending).trim().to_string()));
                start = i + 1;
            }
        }
    }
    let mut table: Option<(String, String)> = None;
    let mut chain: Option<usize> = None;
    let mut in_set: Option<String> = None;
    let mut sets: HashMap<String, Vec<String>> = HashMap::new();
    for (line, st) in stmts {
        let err = |message: String| NetfilterError::Syntax {
            path: source.to_string(),
            line,
            message,
        };
        if st.is_empty() {
            continue;
        }
        let st = substitute(&st, defines).map_err(&err)?;
        let words: Vec<&str> = st.split_whitespace().collect();
        match words.as_slice() {
            ["define", name, "=", rest @ ..] => {
                defines.insert((*name).to_string(), rest.join(" "));
            }
            ["include", path] => {
                if depth > 8 {
                    return Err(err("includes nested too deep".into()));
                }
                for (p, text) in include(path.trim_matches('"'))? {
                    *included += 1;
                    if *included > MAX_INCLUDED_FILES {
                        return Err(err(format!(
                            "include expands to more than {MAX_INCLUDED_FILES} files in all (includes that fan out); not evaluated further"
                        )));
                    }
                    conf_into(&text, &p, include, defines, rs, depth + 1, included)?;
                }
            }
            ["flush", ..] | ["}"] if table.is_none() => {}
            ["table", rest @ ..] if st.ends_with('{') => {
                let (family, name) = match rest {
                    [name, "{"] => ("ip", *name),
                    [family, name, "{"] => (*family, *name),
                    _ => return Err(err(format!("bad table declaration `{st}`"))),
                };
                table = Some((family.to_string(), name.to_string()));
                sets.clear();
            }
            ["chain", name, "{"] if table.is_some() && chain.is_none() => {
                let (family, t) = table.clone().unwrap_or_default();
                rs.chains.push(FwChain {
                    origin: format!("{source} {family} {t} {name}"),
                    family,
                    table: t,
                    name: (*name).to_string(),
                    hook: None,
                    prio: 0,
                    policy: Verdict::Accept,
                    rules: Vec::new(),
                });
                chain = Some(rs.chains.len() - 1);
            }
            ["set", name, "{"] if table.is_some() => in_set = Some((*name).to_string()),
            ["}"] => {
                let closed =
                    in_set.take().is_some() || chain.take().is_some() || table.take().is_some();
                if !closed {
                    return Err(err("unbalanced `}`".into()));
                }
            }
            _ if in_set.is_some() => {
                if let Some(rest) = st.strip_prefix("elements") {
                    let vals = brace_list(rest.trim_start_matches([' ', '=']));
                    sets.insert(in_set.clone().unwrap_or_default(), vals);
                }
            }
            ["type", ..] if chain.is_some() => {
                let c = &mut rs.chains[chain.unwrap_or_default()];
                let mut it = words.iter();
                while let Some(w) = it.next() {
                    match *w {
                        "hook" => c.hook = it.next().map(|h| h.to_string()),
                        "priority" => {
                            c.prio = it
                                .next()
                                .map(|p| named_priority(p.trim_end_matches(';')))
                                .unwrap_or(0)
                        }
                        "policy" => {
                            c.policy = if it.next().is_some_and(|p| p.starts_with("drop")) {
                                Verdict::Drop
                            } else {
                                Verdict::Accept
                            }
                        }
                        _ => {}
                    }
                }
            }
            ["policy", p, ..] if chain.is_some() => {
                rs.chains[chain.unwrap_or_default()].policy = if p.starts_with("drop") {
                    Verdict::Drop
                } else {
                    Verdict::Accept
                };
            }
            _ if chain.is_some() => {
                let rule = text_rule(&st, &sets);
                rs.chains[chain.unwrap_or_default()].rules.push(rule);
            }
            _ if table.is_some() => {} // table-level statements we do not model (flags, counters)
            _ => {
                // a command outside any block (`add rule ...`): not modelled; make it visible
                tracing::debug!(source, line, "nft statement not modelled: {st}");
            }
        }
    }
    Ok(())
}

fn named_priority(p: &str) -> i32 {
    match p {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        other => other.parse().unwrap_or(0),
    }
}

/// Split a line on `;` outside braces and quotes.
fn split_top(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut last = 0;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth -= 1,
            ';' if !quoted && depth <= 0 => {
                out.push(&line[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    out.push(&line[last..]);
    out.retain(|s| !s.trim().is_empty());
    out
}

/// Replace each `$name` (the longest name: `$v43` is never `$v4` followed by `3`) by its define's
/// value; a name that is not defined stays as written. An expansion past
/// [`MAX_STATEMENT_BYTES`] is an error.
fn substitute(st: &str, defines: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(st.len());
    let mut rest = st;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        match defines.get(name) {
            Some(value) => {
                if out.len() + value.len() + after.len() - end > MAX_STATEMENT_BYTES {
                    return Err(format!(
                        "${name} expands this statement past {MAX_STATEMENT_BYTES} bytes (defines that grow without bound); not evaluated"
                    ));
                }
                out.push_str(value);
            }
            None => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `{ 0, 998 }` or `0` → values.
fn brace_list(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('{')
        .trim_end_matches(';')
        .trim_end_matches('}')
        .split(',')
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// One rule in nft syntax → conditions and verdict.
fn text_rule(st: &str, sets: &HashMap<String, Vec<String>>) -> FwRule {
    // tokens, with `{ ... }` kept together
    let mut toks: Vec<String> = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    let mut quoted = false;
    for ch in st.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            '{' if !quoted => {
                depth += 1;
                cur.push(ch);
            }
            '}' if !quoted => {
                depth -= 1;
                cur.push(ch);
            }
            c if c.is_whitespace() && depth == 0 && !quoted => {
                if !cur.is_empty() {
                    toks.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    let values = |t: &str| -> Vec<String> {
        if let Some(name) = t.strip_prefix('@') {
            return sets
                .get(name)
                .cloned()
                .unwrap_or_else(|| vec![t.to_string()]);
        }
        if t.starts_with('{') {
            return brace_list(t);
        }
        t.split(',')
            .map(|v| v.trim_matches('"').to_string())
            .collect()
    };
    let mut conds = Vec::new();
    let mut verdict = Verdict::None;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        let two = toks.get(i + 1).map(String::as_str).unwrap_or("");
        // selectors of one or two words
        let (what, used) = match (t, two) {
            ("meta", k) => (format!("meta {k}"), 2),
            ("ip" | "ip6" | "tcp" | "udp" | "th" | "ct", f) => (format!("{t} {f}"), 2),
            ("skuid" | "iif" | "iifname" | "oif" | "oifname" | "l4proto" | "nfproto", _) => {
                (format!("meta {t}"), 1)
            }
            _ => (String::new(), 0),
        };
        if used > 0 {
            i += used;
            let mut n = false;
            if matches!(toks.get(i).map(String::as_str), Some("!=" | "==")) {
                n = toks[i] == "!=";
                i += 1;
            }
            let vals = toks.get(i).map(|v| values(v)).unwrap_or_default();
            i += 1;
            conds.push(cond_from(&what, n, vals));
            continue;
        }
        match t {
            "accept" => verdict = Verdict::Accept,
            "drop" => verdict = Verdict::Drop,
            "reject" => {
                verdict = Verdict::Reject;
                break; // `reject with ...` options follow
            }
            "return" => verdict = Verdict::Return,
            "jump" => verdict = Verdict::Jump(two.to_string()),
            "goto" => verdict = Verdict::Goto(two.to_string()),
            "counter" => {
                // `counter packets N bytes M`
                if two == "packets" {
                    i += 4;
                }
            }
            "log" => {
                while i + 1 < toks.len()
                    && matches!(toks[i + 1].as_str(), "prefix" | "level" | "flags" | "group")
                {
                    i += 2;
                }
            }
            "comment" => i += 1,
            other => conds.push(Cond::Unknown(other.to_string())),
        }
        i += if matches!(t, "jump" | "goto") { 2 } else { 1 };
    }
    FwRule {
        conds,
        verdict,
        text: st.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------
// Live: run the tools

/// The live ruleset of the scanner's network namespace: nft's view and iptables-save's.
/// `Ok(None)` when neither `nft` nor `iptables-save` is installed.
pub fn live_ruleset() -> Result<Option<Ruleset>, NetfilterError> {
    const T: Duration = Duration::from_secs(5);
    let mut rs = Ruleset::default();
    let mut any = false;
    if let Some(json) = crate::host::command::run_tool("nft", &["-j", "list", "ruleset"], T)? {
        any = true;
        // an empty ruleset prints nothing with some nft versions
        if !json.trim().is_empty() {
            rs.extend(parse_nft_json(&json)?);
        } else {
            rs.sources.push("nft -j list ruleset".into());
        }
    }
    for (tool, v6) in [("iptables-save", false), ("ip6tables-save", true)] {
        if let Some(text) = crate::host::command::run_tool(tool, &[], T)? {
            any = true;
            rs.extend(parse_iptables_save(&text, v6, tool)?);
        }
    }
    Ok(any.then_some(rs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imds_packet(uid: u32) -> Packet {
        Packet {
            hook: "output",
            v6: false,
            daddr: Some("169.254.169.254".parse().unwrap()),
            saddr: None,
            iif_lo: None,
            oif_lo: Some(false),
            uid: Some(uid),
            ct_state: "new",
            l4: "tcp",
            dport: 80,
        }
    }

    fn no_include(_: &str) -> Result<Vec<(String, String)>, NetfilterError> {
        Ok(Vec::new())
    }

    #[test]
    fn nets_contain() {
        let n = Net::parse("169.254.169.0/24").unwrap();
        assert!(n.contains("169.254.169.254".parse().unwrap()));
        assert!(!n.contains("169.254.170.1".parse().unwrap()));
        assert!(Net::parse("fd00:ec2::254")
            .unwrap()
            .contains("fd00:ec2::254".parse().unwrap()));
        assert!(Net::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn aws_documented_iptables_rule_drops_other_uids() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 169.254.169.254/32 -p tcp -m owner ! --uid-owner 0 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";
        let rs = parse_iptables_save(text, false, "iptables-save").unwrap();
        let names = Uids::new();
        assert!(matches!(
            rs.fate(&imds_packet(65534), &names),
            Fate::Dropped { .. }
        ));
        assert!(matches!(
            rs.fate(&imds_packet(0), &names),
            Fate::Passed { .. }
        ));
    }

    #[test]
    fn nft_conf_with_set_define_and_log_only_rule() {
        let conf = "#!/usr/sbin/nft -f\nflush ruleset\ndefine imds = 169.254.169.254\ntable inet filter {\n  set allowed {\n    type uid\n    elements = { root, 998 }\n  }\n  chain output {\n    type filter hook output priority filter; policy accept;\n    ip daddr $imds meta skuid 1000 log prefix \"imds \" counter\n    meta skuid != @allowed ip daddr $imds counter packets 0 bytes 0 drop\n  }\n}\n";
        let rs = parse_nft_conf(conf, "/etc/nftables.conf", &mut no_include).unwrap();
        let mut names = Uids::new();
        names.insert("root".into(), 0);
        assert!(matches!(
            rs.fate(&imds_packet(1000), &names),
            Fate::Dropped { .. }
        ));
        assert!(matches!(
            rs.fate(&imds_packet(998), &names),
            Fate::Passed { .. }
        ));
        assert!(matches!(
            rs.fate(&imds_packet(0), &names),
            Fate::Passed { .. }
        ));
        let log_only = "table ip t {\n chain o {\n  type filter hook output priority 0; policy accept;\n  meta skuid != 0 ip daddr 169.254.169.254 log\n }\n}\n";
        let rs = parse_nft_conf(log_only, "x", &mut no_include).unwrap();
        assert!(matches!(
            rs.fate(&imds_packet(1000), &names),
            Fate::Passed { .. }
        ));
    }

    #[test]
    fn unknown_accept_before_the_drop_is_uncertain() {
        let conf = "table inet f {\n chain o {\n  type filter hook output priority 0;\n  oifname \"ens5\" accept\n  meta skuid != 0 ip daddr 169.254.169.254 drop\n }\n}\n";
        let rs = parse_nft_conf(conf, "x", &mut no_include).unwrap();
        assert!(matches!(
            rs.fate(&imds_packet(1000), &Uids::new()),
            Fate::Uncertain { .. }
        ));
    }

    #[test]
    fn nft_json_of_nft_1_0_6_with_xt_and_sets() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "filter", "handle": 1}}, {"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, {"rule": {"family": "ip", "table": "filter", "chain": "OUTPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "169.254.169.254"}}, {"xt": {"type": "match", "name": "owner"}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "REJECT"}}]}}, {"table": {"family": "inet", "name": "f", "handle": 2}}, {"set": {"family": "inet", "name": "allowed", "table": "f", "type": "uid", "handle": 4, "elem": [0, 998]}}, {"chain": {"family": "inet", "table": "f", "name": "out", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "f", "name": "in", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "f", "chain": "out", "handle": 5, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "skuid"}}, "right": "@allowed"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "169.254.169.254"}}, {"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "icmp", "expr": "port-unreachable"}}]}}, {"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 10, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}"#;
        let rs = parse_nft_json(json).unwrap();
        let names = Uids::new();
        match rs.fate(&imds_packet(1000), &names) {
            Fate::Dropped { chain, by } => {
                assert_eq!(chain, "nft inet f out");
                assert!(by.contains("meta skuid != { 0, 998 }"), "{by}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rs.fate(&imds_packet(998), &names),
            Fate::Passed { .. }
        ));
        let lo = Packet {
            hook: "input",
            iif_lo: Some(true),
            oif_lo: None,
            uid: None,
            daddr: Some("127.0.0.1".parse().unwrap()),
            saddr: Some("127.0.0.1".parse().unwrap()),
            ..imds_packet(0)
        };
        assert!(matches!(rs.fate(&lo, &names), Fate::Passed { .. }));
        let world = Packet {
            iif_lo: Some(false),
            saddr: Some("198.51.100.7".parse().unwrap()),
            daddr: None,
            ..lo.clone()
        };
        assert!(matches!(rs.fate(&world, &names), Fate::Dropped { .. }));
        let established = Packet {
            ct_state: "established",
            ..world
        };
        assert!(matches!(rs.fate(&established, &names), Fate::Passed { .. }));
    }

    #[test]
    fn defines_that_double_are_an_error_not_gigabytes() {
        let mut conf = String::from("define v0 = 169.254.169.254\n");
        for i in 1..44 {
            conf.push_str(&format!("define v{i} = $v{} $v{}\n", i - 1, i - 1));
        }
        conf.push_str("table inet f {\n chain o {\n  type filter hook output priority 0; policy accept;\n  ip daddr $v43 drop\n }\n}\n");
        let e = parse_nft_conf(&conf, "/etc/nftables.conf", &mut no_include)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/nftables.conf:")
                && e.contains(&format!("past {MAX_STATEMENT_BYTES} bytes")),
            "{e}"
        );
    }

    #[test]
    fn includes_that_fan_out_are_bounded_in_total_work() {
        // 8 levels of 10 includes each: 10^8 files for a naive reader
        let mut include = |pattern: &str| -> Result<Vec<(String, String)>, NetfilterError> {
            let level: usize = pattern
                .trim_start_matches("/etc/l")
                .trim_end_matches(".nft")
                .parse()
                .unwrap();
            let text = if level < 8 {
                format!("include \"/etc/l{}.nft\"\n", level + 1).repeat(10)
            } else {
                "define x = 1\n".to_string()
            };
            Ok(vec![(pattern.to_string(), text)])
        };
        let start = std::time::Instant::now();
        let e = parse_nft_conf(
            "include \"/etc/l1.nft\"\n",
            "/etc/nftables.conf",
            &mut include,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!("more than {MAX_INCLUDED_FILES} files")),
            "{e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_variable_is_never_taken_for_a_longer_ones_prefix() {
        let mut defines = HashMap::new();
        defines.insert("v4".to_string(), "X".to_string());
        defines.insert("v43".to_string(), "Y".to_string());
        assert_eq!(
            substitute("a $v43 $v4 $v44 $", &defines).unwrap(),
            "a Y X $v44 $"
        );
    }
}
