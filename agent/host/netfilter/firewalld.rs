//! firewalld's configuration as netfilter chains: the default zone's target (the input posture) and
//! the direct rules of `/etc/firewalld/direct.xml`, where an owner-match IMDS rule lives.

use std::collections::BTreeSet;

use super::{Cond, FwChain, FwRule, Ruleset, Verdict};
use crate::host::netfilter;
use crate::sysroot::Sysroot;

fn xml_attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// firewalld: the default zone's target (input posture) and the direct rules of
/// `/etc/firewalld/direct.xml` (where an owner-match IMDS rule lives), as chains.
pub fn read_firewalld(sysroot: &Sysroot, rs: &mut Ruleset) -> Result<(), String> {
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
}
