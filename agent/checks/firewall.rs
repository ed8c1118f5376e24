//! `[[firewall]]`: the `firewall` family, judged on the host firewall as [`crate::netfilter`]
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
//!   the IMDS endpoint as root and as `probe_uid` ([`crate::probe`]);
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

use crate::baseline::diag::Diagnostics;
use crate::baseline::file::rule_params;
use crate::baseline::layer::CompileCheck;
use crate::checks::systemd_unit::UnitIndex;
use crate::context::Context;
use crate::facts::accounts::parse_passwd;
use crate::netfilter::{
    self, Cond, Fate, FwChain, FwRule, NetfilterError, Packet, Ruleset, Uids, Verdict,
};
use crate::probe::{self, Connect, ProbeReport};
use crate::rule::{Check, Evidence, Outcome, Stage};
use crate::sysroot::Sysroot;

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

/// The firewall configuration loaded at boot, read once per run from the sysroot.
#[derive(Debug, Default)]
pub struct BootFirewall {
    pub ruleset: Ruleset,
    /// What loads rules at boot: `nftables.service (enabled: LINK) loads /etc/nftables.conf`.
    pub loaders: Vec<String>,
    /// Files that could not be read or parsed: a loader that would fail at boot.
    pub errors: Vec<String>,
}

impl BootFirewall {
    pub fn read(sysroot: &Sysroot, units: &UnitIndex) -> BootFirewall {
        let mut boot = BootFirewall::default();
        if !units.errors.is_empty() {
            boot.errors.extend(units.errors.iter().cloned());
        }
        if units.enabled("nftables.service").is_some() {
            let conf = nft_conf_path(sysroot, units);
            if sysroot.exists(&conf) {
                boot.loaders.push(format!("nftables.service loads {conf}"));
                match read_nft_conf(sysroot, &conf) {
                    Ok(rs) => boot.ruleset.extend(rs),
                    Err(e) => boot.errors.push(e.to_string()),
                }
            } else {
                boot.loaders.push(format!(
                    "nftables.service fails at boot: {conf} does not exist"
                ));
            }
        }
        let iptables_files: &[(&str, &[(&str, bool)])] = &[
            (
                "netfilter-persistent.service",
                &[
                    ("/etc/iptables/rules.v4", false),
                    ("/etc/iptables/rules.v6", true),
                ],
            ),
            ("iptables.service", &[("/etc/sysconfig/iptables", false)]),
            ("ip6tables.service", &[("/etc/sysconfig/ip6tables", true)]),
        ];
        for (unit, files) in iptables_files {
            if units.enabled(unit).is_none() {
                continue;
            };
            for (path, v6) in *files {
                match sysroot.read_to_string(path) {
                    Ok(text) => {
                        boot.loaders.push(format!("{unit} loads {path}"));
                        match netfilter::parse_iptables_save(&text, *v6, path) {
                            Ok(rs) => boot.ruleset.extend(rs),
                            Err(e) => boot.errors.push(e.to_string()),
                        }
                    }
                    Err(e) if e.is_not_found() => boot.loaders.push(format!("{unit}: no {path}")),
                    Err(e) => boot.errors.push(e.to_string()),
                }
            }
        }
        if units.enabled("firewalld.service").is_some() {
            boot.loaders.push("firewalld.service".to_string());
            if let Err(e) = read_firewalld(sysroot, &mut boot.ruleset) {
                boot.errors.push(e);
            }
        }
        if units.enabled("ufw.service").is_some() {
            match read_ufw(sysroot, &mut boot.ruleset) {
                Ok(true) => boot
                    .loaders
                    .push("ufw.service with ENABLED=yes in /etc/ufw/ufw.conf".to_string()),
                Ok(false) => boot.loaders.push("ufw.service but /etc/ufw/ufw.conf does not say ENABLED=yes: ufw loads no rules".to_string()),
                Err(e) => boot.errors.push(e),
            }
        }
        boot
    }

    fn describe(&self) -> String {
        if self.loaders.is_empty() {
            "the configuration loaded at boot (nothing loads firewall rules at boot: no enabled nftables, netfilter-persistent, iptables, firewalld or ufw service)".into()
        } else {
            format!(
                "the configuration loaded at boot ({})",
                self.loaders.join("; ")
            )
        }
    }
}

/// The file nftables.service loads: the `-f FILE` of its `ExecStart=`, else `/etc/nftables.conf`.
fn nft_conf_path(sysroot: &Sysroot, units: &UnitIndex) -> String {
    let from_unit = units
        .files
        .get("nftables.service")
        .and_then(|(path, _)| sysroot.read_to_string(path).ok())
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("ExecStart="))
                .find_map(|cmd| {
                    let words: Vec<&str> = cmd.split_whitespace().collect();
                    words
                        .iter()
                        .position(|w| *w == "-f" || *w == "--file")
                        .and_then(|i| words.get(i + 1))
                        .map(|p| p.to_string())
                })
        });
    from_unit.unwrap_or_else(|| "/etc/nftables.conf".into())
}

/// Parse an nft configuration file of the sysroot with its includes (absolute, or relative to the
/// including file's directory and then nft's default include directory `/etc`). A missing file
/// named without a wildcard makes `nft -f` fail, and so is an error here too.
pub fn read_nft_conf(sysroot: &Sysroot, path: &str) -> Result<Ruleset, NetfilterError> {
    let read_err = |p: &str, e: crate::sysroot::SysrootError| NetfilterError::Syntax {
        path: p.to_string(),
        line: 0,
        message: format!("cannot read: {e}"),
    };
    let text = sysroot
        .read_to_string(path)
        .map_err(|e| read_err(path, e))?;
    let dir = std::path::Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/".into());
    let mut include = |pattern: &str| -> Result<Vec<(String, String)>, NetfilterError> {
        let candidates: Vec<String> = if pattern.starts_with('/') {
            vec![pattern.to_string()]
        } else {
            vec![format!("{dir}/{pattern}"), format!("/etc/{pattern}")]
        };
        let wildcard = pattern.contains(['*', '?', '[']);
        for c in &candidates {
            let matches = sysroot.glob(c).map_err(|e| read_err(c, e))?;
            if matches.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            for m in matches {
                let p = m.display().to_string();
                let t = sysroot.read_to_string(&p).map_err(|e| read_err(&p, e))?;
                out.push((p, t));
            }
            return Ok(out);
        }
        if wildcard {
            Ok(Vec::new())
        } else {
            Err(NetfilterError::Syntax {
                path: path.to_string(),
                line: 0,
                message: format!("include \"{pattern}\": no such file (nft -f fails at boot)"),
            })
        }
    };
    netfilter::parse_nft_conf(&text, path, &mut include)
}

fn xml_attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// firewalld: the default zone's target (input posture) and the direct rules of
/// `/etc/firewalld/direct.xml` (where an owner-match IMDS rule lives), as chains.
fn read_firewalld(sysroot: &Sysroot, rs: &mut Ruleset) -> Result<(), String> {
    let conf = sysroot
        .read_to_string("/etc/firewalld/firewalld.conf")
        .unwrap_or_default();
    let zone = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DefaultZone="))
        .next_back()
        .map(|z| z.trim().to_string())
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| "public".into());
    let mut target = None;
    for dir in ["/etc/firewalld/zones", "/usr/lib/firewalld/zones"] {
        let path = format!("{dir}/{zone}.xml");
        match sysroot.read_to_string(&path) {
            Ok(xml) => {
                let mut reader = quick_xml::Reader::from_str(&xml);
                loop {
                    match reader.read_event() {
                        Ok(quick_xml::events::Event::Start(e))
                        | Ok(quick_xml::events::Event::Empty(e))
                            if e.local_name().as_ref() == b"zone" =>
                        {
                            target =
                                Some(xml_attr(&e, "target").unwrap_or_else(|| "default".into()));
                            break;
                        }
                        Ok(quick_xml::events::Event::Eof) => break,
                        Err(e) => return Err(format!("{path}: bad XML: {e}")),
                        _ => {}
                    }
                }
                if target.is_some() {
                    break;
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    // firewalld's built-in zones when the package's zone files are not in the tree
    let target = target.unwrap_or_else(|| {
        match zone.as_str() {
            "trusted" => "ACCEPT",
            "drop" => "DROP",
            "block" => "%%REJECT%%",
            _ => "default",
        }
        .into()
    });
    let origin =
        format!("firewalld (default zone {zone}, target {target}) inet firewalld filter_INPUT");
    let rule = |conds: Vec<Cond>, verdict: Verdict, text: &str| FwRule {
        conds,
        verdict,
        text: text.into(),
    };
    let mut rules = vec![
        rule(
            vec![Cond::CtState {
                neg: false,
                states: vec!["established".into(), "related".into()],
            }],
            Verdict::Accept,
            "ct state established,related accept (firewalld)",
        ),
        rule(
            vec![Cond::Iif {
                neg: false,
                names: vec!["lo".into()],
            }],
            Verdict::Accept,
            "iifname lo accept (firewalld)",
        ),
    ];
    if target != "ACCEPT" {
        rules.push(rule(
            vec![Cond::Unknown(format!("services and ports of zone {zone}"))],
            Verdict::Accept,
            &format!("services and ports of zone {zone} accept"),
        ));
        rules.push(rule(
            Vec::new(),
            if target == "DROP" {
                Verdict::Drop
            } else {
                Verdict::Reject
            },
            &format!("zone {zone} target {target}: everything else is refused"),
        ));
    }
    rs.chains.push(FwChain {
        origin,
        family: "inet".into(),
        table: "firewalld".into(),
        name: "filter_INPUT".into(),
        hook: Some("input".into()),
        prio: 10,
        policy: Verdict::Accept,
        rules,
    });
    rs.sources.push(format!("firewalld zone {zone}"));
    // direct rules
    let path = "/etc/firewalld/direct.xml";
    let xml = match sysroot.read_to_string(path) {
        Ok(x) => x,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let mut reader = quick_xml::Reader::from_str(&xml);
    reader.config_mut().trim_text(true);
    // (ipv, table, chain) → rule lines; custom chains declared with <chain>
    let mut texts: std::collections::BTreeMap<(bool, String), (BTreeSet<String>, Vec<String>)> =
        Default::default();
    let mut open: Option<(bool, String, String, bool)> = None;
    loop {
        use quick_xml::events::Event;
        match reader.read_event() {
            Err(e) => return Err(format!("{path}: bad XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let v6 = xml_attr(&e, "ipv").as_deref() == Some("ipv6");
                let table = xml_attr(&e, "table").unwrap_or_else(|| "filter".into());
                match e.local_name().as_ref() {
                    b"chain" => {
                        if let Some(c) = xml_attr(&e, "chain") {
                            texts.entry((v6, table)).or_default().0.insert(c);
                        }
                    }
                    b"rule" => {
                        open = Some((v6, table, xml_attr(&e, "chain").unwrap_or_default(), false))
                    }
                    b"passthrough" => open = Some((v6, table, String::new(), true)),
                    _ => {}
                }
            }
            Ok(Event::Text(t)) => {
                if let Some((v6, table, chain, passthrough)) = open.take() {
                    let args = t.decode().map(|s| s.into_owned()).unwrap_or_default();
                    let args = quick_xml::escape::unescape(&args)
                        .map(|s| s.into_owned())
                        .unwrap_or(args);
                    if let Some((table, line)) = direct_line(table, &chain, passthrough, &args) {
                        texts.entry((v6, table)).or_default().1.push(line);
                    }
                }
            }
            _ => {}
        }
    }
    for ((v6, table), (custom, lines)) in texts {
        let mut chains: BTreeSet<String> = custom;
        for l in &lines {
            if let Some(c) = l.split_whitespace().nth(1) {
                chains.insert(c.to_string());
            }
        }
        let mut text = format!("*{table}\n");
        for c in &chains {
            let builtin = matches!(
                c.as_str(),
                "INPUT" | "OUTPUT" | "FORWARD" | "PREROUTING" | "POSTROUTING"
            );
            text.push_str(&format!(
                ":{c} {} [0:0]\n",
                if builtin { "ACCEPT" } else { "-" }
            ));
        }
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        let parsed = netfilter::parse_iptables_save(&text, v6, path).map_err(|e| e.to_string())?;
        rs.extend(parsed);
    }
    Ok(())
}

/// One direct rule as an `-A CHAIN ...` line (and its table): `<rule chain="C">ARGS</rule>`, or a
/// `<passthrough>` holding `[-t TABLE] -A|-I CHAIN [N] ARGS` (other commands are not rules).
fn direct_line(
    table: String,
    chain: &str,
    passthrough: bool,
    args: &str,
) -> Option<(String, String)> {
    if !passthrough {
        return Some((table, format!("-A {chain} {}", args.trim())));
    }
    let mut w: Vec<&str> = args.split_whitespace().collect();
    let mut table = table;
    if w.first() == Some(&"-t") && w.len() > 1 {
        table = w[1].to_string();
        w.drain(..2);
    }
    if w.len() < 2 || !matches!(w[0], "-A" | "-I" | "--append" | "--insert") {
        return None;
    }
    let insert = matches!(w[0], "-I" | "--insert");
    let skip = usize::from(insert && w.get(2).is_some_and(|n| n.parse::<u32>().is_ok()));
    Some((table, format!("-A {} {}", w[1], w[2 + skip..].join(" "))))
}

/// ufw: active when `/etc/ufw/ufw.conf` says `ENABLED=yes`; its rules files
/// (`before.rules`, `user.rules`, `after.rules` and their IPv6 twins) are iptables-restore text
/// whose chains ufw wires into INPUT/OUTPUT with the policies of `/etc/default/ufw`.
fn read_ufw(sysroot: &Sysroot, rs: &mut Ruleset) -> Result<bool, String> {
    let conf = match sysroot.read_to_string("/etc/ufw/ufw.conf") {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let value = |text: &str, key: &str| -> Option<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .next_back()
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    if !value(&conf, "ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("yes")) {
        return Ok(false);
    }
    let defaults = sysroot
        .read_to_string("/etc/default/ufw")
        .unwrap_or_default();
    let policy = |key: &str, default: &str| {
        let p = value(&defaults, key).unwrap_or_else(|| default.into());
        if p.eq_ignore_ascii_case("accept") {
            Verdict::Accept
        } else {
            Verdict::Drop
        }
    };
    let input = policy("DEFAULT_INPUT_POLICY", "DROP");
    let output = policy("DEFAULT_OUTPUT_POLICY", "ACCEPT");
    let v6_on = value(&defaults, "IPV6").is_none_or(|v| v.eq_ignore_ascii_case("yes"));
    for (v6, files) in [
        (false, ["before.rules", "user.rules", "after.rules"]),
        (true, ["before6.rules", "user6.rules", "after6.rules"]),
    ] {
        if v6 && !v6_on {
            continue;
        }
        let source = if v6 { "/etc/ufw (IPv6)" } else { "/etc/ufw" };
        let mut text = String::new();
        for f in files {
            let mut found = false;
            for dir in ["/etc/ufw", "/lib/ufw", "/usr/lib/ufw"] {
                match sysroot.read_to_string(format!("{dir}/{f}")) {
                    Ok(t) => {
                        // only the filter table's part matters
                        text.push_str(&filter_part(&t));
                        found = true;
                        break;
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            let _ = found;
        }
        let mut parsed = if text.trim().is_empty() {
            Ruleset::default()
        } else {
            netfilter::parse_iptables_save(&text, v6, source).map_err(|e| e.to_string())?
        };
        let family = if v6 { "ip6" } else { "ip" };
        for (hook, name, policy, order) in [
            (
                "input",
                "INPUT",
                input.clone(),
                [
                    "ufw-before-logging-input",
                    "ufw-before-input",
                    "ufw-after-input",
                    "ufw-after-logging-input",
                    "ufw-reject-input",
                    "ufw-track-input",
                ],
            ),
            (
                "output",
                "OUTPUT",
                output.clone(),
                [
                    "ufw-before-logging-output",
                    "ufw-before-output",
                    "ufw-after-output",
                    "ufw-after-logging-output",
                    "ufw-reject-output",
                    "ufw-track-output",
                ],
            ),
        ] {
            // ufw's IPv6 chains are `ufw6-...`
            let rules = order
                .iter()
                .map(|c| {
                    if v6 {
                        c.replacen("ufw-", "ufw6-", 1)
                    } else {
                        (*c).to_string()
                    }
                })
                .filter(|c| parsed.chains.iter().any(|x| x.name == *c))
                .map(|c| FwRule {
                    conds: Vec::new(),
                    text: format!("-A {name} -j {c}"),
                    verdict: Verdict::Jump(c),
                })
                .collect();
            parsed.chains.push(FwChain {
                origin: format!("{source} {family} filter {name}"),
                family: family.into(),
                table: "filter".into(),
                name: name.into(),
                hook: Some(hook.into()),
                prio: 0,
                policy,
                rules,
            });
        }
        rs.extend(parsed);
    }
    Ok(true)
}

/// The `*filter` ... `COMMIT` part of an iptables-restore file.
fn filter_part(text: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(table) = t.strip_prefix('*') {
            on = table == "filter";
        }
        if on {
            out.push_str(line);
            out.push('\n');
        }
        if t == "COMMIT" {
            on = false;
        }
    }
    out
}

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
        let text = cx.sysroot.read_to_string("/etc/passwd").unwrap_or_default();
        let mut names = Uids::new();
        let mut list = Vec::new();
        for e in parse_passwd(&text).0 {
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
        let gid = parse_passwd(&cx.sysroot.read_to_string("/etc/passwd").unwrap_or_default())
            .0
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
    fn firewalld_direct_rules_and_passthroughs_become_rule_lines() {
        assert_eq!(
            direct_line(
                "filter".into(),
                "OUTPUT",
                false,
                " -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT "
            ),
            Some((
                "filter".into(),
                "-A OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT".into()
            ))
        );
        assert_eq!(
            direct_line(
                "filter".into(),
                "",
                true,
                "-t filter -I OUTPUT 1 -d 169.254.169.254 -j DROP"
            ),
            Some((
                "filter".into(),
                "-A OUTPUT -d 169.254.169.254 -j DROP".into()
            ))
        );
        assert_eq!(direct_line("filter".into(), "", true, "-N mychain"), None);
    }

    #[test]
    fn params_are_validated() {
        let src = crate::baseline::diag::SourceFile {
            name: "t.toml".into(),
            text: " ".repeat(4),
        };
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

    #[test]
    fn filter_part_keeps_only_the_filter_table() {
        let t = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n*filter\n:ufw-before-input - [0:0]\n-A ufw-before-input -i lo -j ACCEPT\nCOMMIT\n";
        let f = filter_part(t);
        assert!(f.starts_with("*filter"), "{f}");
        assert!(!f.contains("MASQUERADE"));
        assert!(f.contains("-i lo -j ACCEPT"));
    }
}
