//! ufw's configuration as netfilter chains: `/etc/ufw/ufw.conf` (`ENABLED=yes`), the default
//! policies of `/etc/default/ufw`, and the iptables-save style rules files it loads.

use super::{FwChain, FwRule, Ruleset, Verdict};
use crate::host::netfilter;
use crate::sysroot::Sysroot;

/// ufw: active when `/etc/ufw/ufw.conf` says `ENABLED=yes`; its rules files
/// (`before.rules`, `user.rules`, `after.rules` and their IPv6 twins) are iptables-restore text
/// whose chains ufw wires into INPUT/OUTPUT with the policies of `/etc/default/ufw`.
pub fn read_ufw(sysroot: &Sysroot, rs: &mut Ruleset) -> Result<bool, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_part_keeps_only_the_filter_table() {
        let t = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n*filter\n:ufw-before-input - [0:0]\n-A ufw-before-input -i lo -j ACCEPT\nCOMMIT\n";
        let f = filter_part(t);
        assert!(f.starts_with("*filter"), "{f}");
        assert!(!f.contains("MASQUERADE"));
        assert!(f.contains("-i lo -j ACCEPT"));
    }
}
