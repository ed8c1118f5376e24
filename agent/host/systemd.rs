//! systemd units as the sysroot's files say they are, without `systemctl` or a running systemd (so
//! images work too): which unit file wins for a name (`/etc`, `/run`, `/usr/local/lib`, `/usr/lib`,
//! `/lib` `systemd/system`, the first that has it), which names are aliases, which units are masked
//! (a link to `/dev/null`), and which are pulled in by a `*.wants/` or `*.requires/` link. Read once
//! per run and shared by the services, mount, credentials and firewall checks.

use std::collections::{BTreeMap, HashMap};

use crate::sysroot::{EntryType, Sysroot};

/// Unit files and wants/requires links of the sysroot, gathered once per run.
#[derive(Debug, Default)]
pub struct UnitIndex {
    /// Unit name → (in-root path of the winning unit file, masked).
    pub files: HashMap<String, (String, bool)>,
    /// Alias unit name → the unit it links to (`sshd.service` → `ssh.service` on Debian).
    pub aliases: HashMap<String, String>,
    /// Unit name → the first `*.wants/` or `*.requires/` link that pulls it in.
    pub wanted_by: BTreeMap<String, String>,
    pub errors: Vec<String>,
}

pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

impl UnitIndex {
    pub fn read(sysroot: &Sysroot) -> UnitIndex {
        let mut idx = UnitIndex::default();
        for dir in UNIT_DIRS {
            let entries = match sysroot.read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.is_not_found() || e.kind() == std::io::ErrorKind::NotADirectory => {
                    continue
                }
                Err(e) => {
                    idx.errors.push(e.to_string());
                    continue;
                }
            };
            for e in entries {
                let name = e.name.to_string_lossy().into_owned();
                let path = format!("{dir}/{name}");
                if name.ends_with(".wants") || name.ends_with(".requires") {
                    match sysroot.read_dir(&path) {
                        Ok(links) => {
                            for l in links {
                                let unit = l.name.to_string_lossy().into_owned();
                                idx.wanted_by
                                    .entry(unit.clone())
                                    .or_insert_with(|| format!("{path}/{unit}"));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                        Err(e) => idx.errors.push(e.to_string()),
                    }
                    continue;
                }
                if idx.files.contains_key(&name) {
                    continue;
                }
                let target = (e.file_type == EntryType::Symlink)
                    .then(|| sysroot.read_link(&path).ok())
                    .flatten();
                let masked = target
                    .as_ref()
                    .is_some_and(|t| t.as_os_str() == "/dev/null");
                if let Some(real) = target
                    .as_ref()
                    .filter(|_| !masked)
                    .and_then(|t| t.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|real| *real != name)
                {
                    idx.aliases.insert(name.clone(), real);
                }
                idx.files.insert(name, (path, masked));
            }
        }
        idx
    }

    /// The `*.wants/`/`*.requires/` link that enables `unit` (or the unit an alias names), when the
    /// unit is installed and not masked.
    pub fn enabled(&self, unit: &str) -> Option<&str> {
        let wanted = self.wanted_by.get(unit).or_else(|| {
            self.aliases
                .get(unit)
                .and_then(|real| self.wanted_by.get(real))
        })?;
        match self.file(unit) {
            Some((_, false)) => Some(wanted.as_str()),
            _ => None,
        }
    }

    /// The winning unit file of `unit`, falling back to its template (`foo@bar.service` → `foo@.service`).
    pub fn file(&self, unit: &str) -> Option<&(String, bool)> {
        self.files.get(unit).or_else(|| {
            let (prefix, rest) = unit.split_once('@')?;
            let suffix = rest.rsplit_once('.')?.1;
            self.files.get(&format!("{prefix}@.{suffix}"))
        })
    }
}
