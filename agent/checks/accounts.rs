//! `[[accounts]]`: properties of the local account databases (`/etc/passwd`, `/etc/shadow`), one
//! named `check` per rule: only root has UID 0; no account has an empty password; system accounts
//! (UID below login.defs `UID_MIN`) have no login shell; root's password is locked (cloud images are
//! reached with keys and SSM, never a root password); no two accounts share a UID or a name.
//! Malformed lines are errors with their line number, never skipped silently; hashes are never
//! echoed in evidence.

use serde::Deserialize;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::accounts::{parse_passwd, parse_shadow, read_database, PasswdEntry, ShadowEntry};
use crate::host::keyvalue::login_defs_value;
use crate::rule::{Evidence, Outcome};

/// Which property of the account databases a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountCheck {
    Uid0OnlyRoot,
    NoEmptyPasswords,
    SystemAccountsNoLoginShell,
    RootPasswordLocked,
    NoDuplicateUids,
    NoDuplicateNames,
}

rule_params! {
    /// TOML parameters of `[[accounts]]`.
    pub struct Accounts {
        pub check: AccountCheck,
        /// Account names exempt from this rule (e.g. `sync`, whose shell is /bin/sync).
        #[serde(default)]
        pub allow: Vec<String>,
    }
}

#[derive(Debug)]
pub struct AccountsCheck {
    check: AccountCheck,
    allow: Vec<String>,
}

impl CompileCheck for Accounts {
    fn compile(&self, _diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        Some(Box::new(AccountsCheck {
            check: self.check,
            allow: self.allow.clone(),
        }))
    }
}

/// Shells that do not give a login.
const NO_LOGIN: &[&str] = &[
    "/usr/sbin/nologin",
    "/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
];

/// The parsed databases, read once per run.
#[derive(Debug)]
struct Databases {
    passwd: Result<Vec<PasswdEntry>, String>,
    shadow: Result<Vec<ShadowEntry>, String>,
    uid_min: u32,
}

impl Databases {
    fn read(cx: &Context<'_>) -> Databases {
        let uid_min = login_defs_value(cx.sysroot, "UID_MIN")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        Databases {
            passwd: read_database(cx.sysroot, "/etc/passwd", parse_passwd),
            shadow: read_database(cx.sysroot, "/etc/shadow", parse_shadow),
            uid_min,
        }
    }
}

impl AccountsCheck {
    fn allowed(&self, name: &str) -> bool {
        self.allow.iter().any(|a| a == name)
    }
}

impl Check for AccountsCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let db = cx.cache.get(|| Databases::read(cx));
        let passwd = match &db.passwd {
            Ok(p) => p,
            Err(e) => return Outcome::error(e),
        };
        let needs_shadow = matches!(
            self.check,
            AccountCheck::NoEmptyPasswords | AccountCheck::RootPasswordLocked
        );
        let shadow: &[ShadowEntry] = match (&db.shadow, needs_shadow) {
            (Ok(s), _) => s,
            (Err(e), true) => return Outcome::error(e),
            (Err(_), false) => &[],
        };
        let at = |path: &str, line: usize| Evidence::new("").path(path).line(line);
        let mut fails = Vec::new();
        let summary;
        match self.check {
            AccountCheck::Uid0OnlyRoot => {
                for e in passwd
                    .iter()
                    .filter(|e| e.uid == 0 && e.name != "root" && !self.allowed(&e.name))
                {
                    let mut ev = at("/etc/passwd", e.line).found(format!("{} has UID 0", e.name));
                    ev.message = "a second superuser account".into();
                    fails.push(ev.expected("only root has UID 0"));
                }
                summary = "only root has UID 0".to_string();
            }
            AccountCheck::NoEmptyPasswords => {
                for e in passwd
                    .iter()
                    .filter(|e| e.password.is_empty() && !self.allowed(&e.name))
                {
                    let mut ev = at("/etc/passwd", e.line)
                        .found(format!("{} has an empty password field", e.name));
                    ev.message = "account without a password".into();
                    fails.push(ev);
                }
                for e in shadow
                    .iter()
                    .filter(|e| e.hash.is_empty() && !self.allowed(&e.name))
                {
                    let mut ev = at("/etc/shadow", e.line)
                        .found(format!("{} has an empty password hash", e.name));
                    ev.message = "account without a password".into();
                    fails.push(ev);
                }
                summary = format!("{} accounts, none with an empty password", passwd.len());
            }
            AccountCheck::SystemAccountsNoLoginShell => {
                for e in passwd.iter().filter(|e| {
                    e.uid < db.uid_min
                        && e.name != "root"
                        && !self.allowed(&e.name)
                        && !NO_LOGIN.contains(&e.shell.as_str())
                }) {
                    let shell = if e.shell.is_empty() {
                        "(empty: /bin/sh)"
                    } else {
                        e.shell.as_str()
                    };
                    let mut ev = at("/etc/passwd", e.line)
                        .found(format!("{} (UID {}) has shell {shell}", e.name, e.uid))
                        .expected("/usr/sbin/nologin");
                    ev.message = "system account with a login shell".into();
                    fails.push(ev);
                }
                summary = format!("system accounts (UID < {}) have no login shell", db.uid_min);
            }
            AccountCheck::RootPasswordLocked => match shadow.iter().find(|e| e.name == "root") {
                Some(e) if e.is_locked() => summary = "root's password is locked".to_string(),
                Some(e) => {
                    let found = if e.hash.is_empty() {
                        "an empty password"
                    } else {
                        "a usable password hash"
                    };
                    let mut ev = at("/etc/shadow", e.line)
                        .found(found)
                        .expected("a locked password (`*` or `!`)");
                    ev.message = "root can log in with a password".into();
                    fails.push(ev);
                    summary = String::new();
                }
                None => return Outcome::error("/etc/shadow has no entry for root"),
            },
            AccountCheck::NoDuplicateUids | AccountCheck::NoDuplicateNames => {
                let uids = self.check == AccountCheck::NoDuplicateUids;
                let mut seen = std::collections::HashMap::new();
                for e in passwd {
                    let key = if uids {
                        e.uid.to_string()
                    } else {
                        e.name.clone()
                    };
                    if let Some(first) = seen.insert(key.clone(), e.line) {
                        if !self.allowed(&e.name) {
                            let what = if uids {
                                format!("UID {key} also used at line {first}")
                            } else {
                                format!("name {key} also used at line {first}")
                            };
                            let mut ev =
                                at("/etc/passwd", e.line).found(format!("{}: {what}", e.name));
                            ev.message = "duplicate account".into();
                            fails.push(ev);
                        }
                    }
                }
                summary = format!(
                    "{} accounts, all {} unique",
                    passwd.len(),
                    if uids { "UIDs" } else { "names" }
                );
            }
        }
        if fails.is_empty() {
            Outcome::pass(Evidence::new(summary))
        } else {
            Outcome::Fail { evidence: fails }
        }
    }
}
