//! Which audit rule files auditd loads when it starts, read from the sysroot's files (no running
//! auditd needed, so images work too). auditd's unit says how: `augenrules --load` (Debian,
//! Ubuntu, RHEL, Amazon Linux) compiles `/etc/audit/rules.d/*.rules` into
//! `/etc/audit/audit.rules` and loads that, but when rules.d holds no rule at all it keeps and
//! loads the existing `/etc/audit/audit.rules`; `auditctl -R FILE` loads FILE as it is. The rules
//! in force are therefore rules.d's when it has any, else audit.rules's. A unit that runs auditctl
//! without `-R FILE` in place of augenrules loads no file at all (auditd itself loads none).

use crate::host::systemd::{UnitIndex, UNIT_DIRS};
use crate::sysroot::Sysroot;

/// Where augenrules reads its sources.
pub const RULES_D: &str = "/etc/audit/rules.d";
/// What augenrules writes and `auditctl -R` usually loads.
pub const AUDIT_RULES: &str = "/etc/audit/audit.rules";

/// The rule files auditd loads at start, in load order, and how that was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRules {
    pub files: Vec<String>,
    /// One sentence for evidence: which files and why.
    pub how: String,
}

/// How the unit loads its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Loader {
    Augenrules,
    Auditctl(String),
    /// auditctl without `-R FILE`, and no augenrules: nothing is loaded at start.
    Nothing,
}

/// The files auditd loads at start. `Err` when the rules directory or a unit file cannot be read.
pub fn loaded_rules(sysroot: &Sysroot, units: &UnitIndex) -> Result<LoadedRules, String> {
    let loader = loader(sysroot, units)?;
    match loader {
        Loader::Auditctl(file) => Ok(LoadedRules {
            how: format!("{file}, which auditd's unit loads with auditctl -R"),
            files: vec![file],
        }),
        Loader::Nothing => Ok(LoadedRules {
            how: "no file: auditd's unit runs auditctl without -R FILE instead of augenrules, \
                  which loads no rule at start"
                .to_string(),
            files: Vec::new(),
        }),
        Loader::Augenrules => {
            let mut sources = Vec::new();
            let mut any_rule = false;
            let entries = match sysroot.read_dir(RULES_D) {
                Ok(e) => e,
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e.to_string()),
            };
            let mut names: Vec<String> = entries
                .iter()
                .map(|e| e.name.to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".rules"))
                .collect();
            names.sort_by_key(|a| natural(a));
            for name in names {
                let path = format!("{RULES_D}/{name}");
                match sysroot.read(&path) {
                    Ok(bytes) => {
                        any_rule |= String::from_utf8_lossy(&bytes).lines().any(|l| {
                            let l = l.trim();
                            !l.is_empty() && !l.starts_with('#')
                        });
                        sources.push(path);
                    }
                    // a directory or a dangling link named *.rules is not a source
                    Err(e) if e.is_not_found() || e.kind() == std::io::ErrorKind::InvalidInput => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            if any_rule {
                Ok(LoadedRules {
                    how: format!(
                        "{RULES_D}/*.rules, which augenrules compiles and loads when auditd starts"
                    ),
                    files: sources,
                })
            } else {
                Ok(LoadedRules {
                    how: format!(
                        "{AUDIT_RULES}: {RULES_D} holds no rule, so augenrules keeps and loads it when auditd starts"
                    ),
                    files: vec![AUDIT_RULES.to_string()],
                })
            }
        }
    }
}

/// The loader named by `ExecStartPost=`/`ExecStart=` lines of auditd.service and its drop-ins;
/// augenrules when the unit says nothing (every current distribution's default).
fn loader(sysroot: &Sysroot, units: &UnitIndex) -> Result<Loader, String> {
    let mut texts = Vec::new();
    if let Some((path, false)) = units.file("auditd.service") {
        match sysroot.read(path) {
            Ok(b) => texts.push(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    for dir in UNIT_DIRS {
        for file in sysroot
            .glob(&format!("{dir}/auditd.service.d/*.conf"))
            .map_err(|e| e.to_string())?
        {
            if let Ok(b) = sysroot.read(&file) {
                texts.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
    let mut commands: Vec<String> = Vec::new();
    for text in &texts {
        for line in text.lines() {
            let line = line.trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if !matches!(key.trim(), "ExecStartPost" | "ExecStart") {
                continue;
            }
            if value.trim().is_empty() {
                // an empty assignment in a drop-in resets the list
                commands.clear();
            } else {
                commands.push(value.trim().to_string());
            }
        }
    }
    if commands.iter().any(|c| c.contains("augenrules")) {
        return Ok(Loader::Augenrules);
    }
    let mut bare_auditctl = false;
    for c in &commands {
        let words: Vec<&str> = c.split_whitespace().collect();
        if words.iter().any(|w| w.ends_with("auditctl")) {
            if let Some(i) = words.iter().position(|w| *w == "-R") {
                if let Some(file) = words.get(i + 1) {
                    return Ok(Loader::Auditctl(file.to_string()));
                }
            }
            bare_auditctl = true;
        }
    }
    Ok(if bare_auditctl {
        Loader::Nothing
    } else {
        Loader::Augenrules
    })
}

/// A sort key like `ls -v`, which augenrules uses: runs of digits compare as numbers and sort
/// before letters.
fn natural(name: &str) -> Vec<(u8, u64, String)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let n = rest[..digits].parse().unwrap_or(u64::MAX);
            key.push((0, n, String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
            key.push((1, 0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, Sysroot) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let sysroot = Sysroot::open(dir.path()).unwrap();
        (dir, sysroot)
    }

    const DEBIAN_UNIT: &str =
        "[Service]\nExecStart=/sbin/auditd\nExecStartPost=-/sbin/augenrules --load\n";

    #[test]
    fn rules_d_wins_when_it_has_rules() {
        let (_d, s) = root(&[
            ("/lib/systemd/system/auditd.service", DEBIAN_UNIT),
            ("/etc/audit/rules.d/10-base.rules", "-D\n-b 8192\n"),
            ("/etc/audit/rules.d/9-first.rules", "# comment only\n"),
            ("/etc/audit/rules.d/notes.txt", "-w /etc/passwd -p wa\n"),
            ("/etc/audit/audit.rules", "-w /etc/shadow -p wa\n"),
        ]);
        let l = loaded_rules(&s, &UnitIndex::read(&s)).unwrap();
        assert_eq!(
            l.files,
            [
                "/etc/audit/rules.d/9-first.rules",
                "/etc/audit/rules.d/10-base.rules"
            ]
        );
        assert!(l.how.contains("augenrules compiles"), "{}", l.how);
    }

    #[test]
    fn audit_rules_is_loaded_when_rules_d_has_none() {
        for files in [
            vec![("/etc/audit/audit.rules", "-w /etc/passwd -p wa\n")],
            vec![
                ("/etc/audit/audit.rules", "-w /etc/passwd -p wa\n"),
                ("/etc/audit/rules.d/audit.rules", "# only comments\n\n"),
            ],
        ] {
            let (_d, s) = root(&files);
            let l = loaded_rules(&s, &UnitIndex::read(&s)).unwrap();
            assert_eq!(l.files, ["/etc/audit/audit.rules"]);
            assert!(l.how.contains("holds no rule"), "{}", l.how);
        }
    }

    #[test]
    fn a_unit_that_loads_with_auditctl_names_its_file() {
        let (_d, s) = root(&[
            (
                "/usr/lib/systemd/system/auditd.service",
                "[Service]\nExecStartPost=-/sbin/augenrules --load\n",
            ),
            (
                "/etc/systemd/system/auditd.service.d/override.conf",
                "[Service]\nExecStartPost=\nExecStartPost=-/sbin/auditctl -R /etc/audit/site.rules\n",
            ),
            ("/etc/audit/rules.d/a.rules", "-w /etc/passwd -p wa\n"),
        ]);
        let l = loaded_rules(&s, &UnitIndex::read(&s)).unwrap();
        assert_eq!(l.files, ["/etc/audit/site.rules"]);
        assert!(l.how.contains("auditctl -R"), "{}", l.how);
    }

    #[test]
    fn a_unit_that_runs_auditctl_without_a_file_loads_nothing() {
        // the augenrules line replaced by a bare auditctl, as ComplianceAsCode's auditctl
        // scenarios leave the unit: rules.d is no longer compiled, and no file is loaded
        let (_d, s) = root(&[
            (
                "/usr/lib/systemd/system/auditd.service",
                "[Service]\nExecStart=/sbin/auditd\nExecStartPost=-/sbin/auditctl\n",
            ),
            ("/etc/audit/rules.d/a.rules", "-w /etc/passwd -p wa\n"),
            ("/etc/audit/audit.rules", "-w /etc/passwd -p wa\n"),
        ]);
        let l = loaded_rules(&s, &UnitIndex::read(&s)).unwrap();
        assert!(l.files.is_empty(), "{:?}", l.files);
        assert!(l.how.contains("without -R"), "{}", l.how);
    }

    #[test]
    fn natural_order_is_that_of_ls_v() {
        let mut names = vec!["99-finalize.rules", "10-base.rules", "2-x.rules", "a.rules"];
        names.sort_by_key(|a| natural(a));
        assert_eq!(
            names,
            ["2-x.rules", "10-base.rules", "99-finalize.rules", "a.rules"]
        );
    }
}
