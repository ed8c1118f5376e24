//! The firewall configuration a system loads at boot, read from the sysroot into one [`Ruleset`]:
//! nftables.service and the file its `ExecStart=` loads (with includes), netfilter-persistent's
//! `/etc/iptables/rules.v4`/`rules.v6`, iptables-services' `/etc/sysconfig/iptables`/`ip6tables`,
//! firewalld ([`super::firewalld`]) and ufw ([`super::ufw`]) when their services are enabled.

use super::{NetfilterError, Ruleset};
use crate::host::netfilter;
use crate::host::systemd::UnitIndex;
use crate::sysroot::Sysroot;

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
            if let Err(e) = super::firewalld::read_firewalld(sysroot, &mut boot.ruleset) {
                boot.errors.push(e);
            }
        }
        if units.enabled("ufw.service").is_some() {
            match super::ufw::read_ufw(sysroot, &mut boot.ruleset) {
                Ok(true) => boot
                    .loaders
                    .push("ufw.service with ENABLED=yes in /etc/ufw/ufw.conf".to_string()),
                Ok(false) => boot.loaders.push("ufw.service but /etc/ufw/ufw.conf does not say ENABLED=yes: ufw loads no rules".to_string()),
                Err(e) => boot.errors.push(e),
            }
        }
        boot
    }

    pub fn describe(&self) -> String {
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
pub fn nft_conf_path(sysroot: &Sysroot, units: &UnitIndex) -> String {
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
