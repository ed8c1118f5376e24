//! What an image will set up at boot, judged from its configuration alone: `/etc/fstab` says which
//! device each mount point and swap area comes from, `/etc/crypttab` which dm-crypt mappings boot
//! opens, and LVM's metadata backups (`/etc/lvm/backup/<vg>`) which physical volumes a volume group
//! sits on. Used where there is no live device stack to walk: an offline image (`--root` without
//! `/sys`) and the bake stage (the build instance's volumes are not the fleet's).
//!
//! A mount is encrypted by intent when its source is `/dev/mapper/<name>` of a crypttab entry, or an
//! LVM volume whose physical volumes all are. A source that names a filesystem (`UUID=`, `LABEL=`)
//! may or may not be inside a crypttab mapping — that cannot be told without the devices, and is
//! said so (never a pass). With no crypttab entries nothing is unlocked at boot (unlocking from the
//! kernel command line, `rd.luks.*`, is not evaluated, and neither is whether the initramfs can
//! unlock the root).

use std::collections::BTreeMap;

use super::tables::{self, CrypttabEntry, FstabEntry};
use super::{fs_class, FsClass};
use crate::sysroot::Sysroot;

/// An image's boot-time storage configuration.
#[derive(Debug, Clone, Default)]
pub struct BootConfig {
    /// `/etc/fstab` entries; `None` when the file does not exist.
    pub fstab: Option<Vec<FstabEntry>>,
    pub crypttab: Vec<CrypttabEntry>,
    /// Volume group → the physical volume device hints of its metadata backup.
    pub lvm: BTreeMap<String, Vec<String>>,
}

/// The verdict on one mount point or swap area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Encrypted(String),
    NotEncrypted(String),
    Unknown(String),
    NotApplicable(String),
}

impl BootConfig {
    /// Read `/etc/fstab`, `/etc/crypttab` and `/etc/lvm/backup/*`; a missing file is empty, an
    /// unreadable one an error naming it.
    pub fn read(sysroot: &Sysroot) -> Result<BootConfig, String> {
        let text = |path: &str| -> Result<Option<String>, String> {
            match sysroot.read(path) {
                Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        };
        let fstab = text("/etc/fstab")?.map(|t| tables::parse_fstab(&t));
        let crypttab = text("/etc/crypttab")?
            .map(|t| tables::parse_crypttab(&t))
            .unwrap_or_default();
        let mut lvm = BTreeMap::new();
        for path in sysroot
            .glob("/etc/lvm/backup/*")
            .map_err(|e| e.to_string())?
        {
            let Some(vg) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if let Some(t) = text(&path.to_string_lossy())? {
                lvm.insert(vg, tables::lvm_backup_pvs(&t));
            }
        }
        Ok(BootConfig {
            fstab,
            crypttab,
            lvm,
        })
    }

    fn mounts(&self) -> Vec<&FstabEntry> {
        self.fstab
            .iter()
            .flatten()
            .filter(|e| e.fstype != "swap" && e.point.starts_with('/'))
            .collect()
    }

    /// The fstab entry that mounts `path` or the deepest directory above it.
    pub fn holder(&self, path: &str) -> Option<&FstabEntry> {
        let mounts = self.mounts();
        tables::holder(&mounts, path, |e| &e.point).copied()
    }

    /// Every fstab mount at or below one of `prefixes`.
    pub fn under(&self, prefixes: &[String]) -> Vec<&FstabEntry> {
        self.mounts()
            .into_iter()
            .filter(|e| {
                prefixes
                    .iter()
                    .any(|p| tables::is_under(&e.point, p) && (p != "/" || e.point == "/"))
            })
            .collect()
    }

    /// fstab's swap entries.
    pub fn swaps(&self) -> Vec<&FstabEntry> {
        self.fstab
            .iter()
            .flatten()
            .filter(|e| e.fstype == "swap")
            .collect()
    }

    /// The verdict on what holds `path` at boot.
    pub fn judge_path(&self, path: &str) -> (Option<&FstabEntry>, Verdict) {
        match self.holder(path) {
            Some(entry) => (Some(entry), self.judge_entry(entry)),
            None if self.crypttab.is_empty() => (
                None,
                Verdict::NotEncrypted(format!(
                    "no /etc/fstab entry mounts {path} or a directory above it, and /etc/crypttab opens nothing at boot"
                )),
            ),
            None => (
                None,
                Verdict::Unknown(format!(
                    "no /etc/fstab entry mounts {path} or a directory above it, so what holds it at boot cannot be told"
                )),
            ),
        }
    }

    /// The verdict on one fstab entry (a mount or a swap area).
    pub fn judge_entry(&self, entry: &FstabEntry) -> Verdict {
        match fs_class(&entry.fstype) {
            FsClass::Block => {}
            class => return Verdict::NotApplicable(class.reason(&entry.fstype)),
        }
        if entry.fstype == "swap"
            && entry.source.starts_with('/')
            && !entry.source.starts_with("/dev/")
        {
            // a swap file: as encrypted as the filesystem holding it
            return match self.judge_path(&entry.source) {
                (Some(holder), v) => reword(
                    v,
                    &format!(
                        "swap file {} is on {} (/etc/fstab:{})",
                        entry.source, holder.point, holder.line
                    ),
                ),
                (None, v) => v,
            };
        }
        self.judge_source(&entry.source, 0)
    }

    fn judge_source(&self, source: &str, depth: usize) -> Verdict {
        if let Some(name) = mapper_name(source) {
            if let Some(ct) = self.crypttab.iter().find(|c| c.name == name) {
                return Verdict::Encrypted(format!(
                    "{source} is opened at boot by {}",
                    ct.describe()
                ));
            }
            if let Some((vg, _)) = tables::lvm_names(name) {
                return self.judge_vg(source, &vg, depth);
            }
            if name.starts_with("luks-") {
                return Verdict::Unknown(format!(
                    "{source} is the name systemd and dracut give a LUKS volume unlocked from the kernel command line (rd.luks.uuid=), which is not evaluated; list it in /etc/crypttab"
                ));
            }
            return Verdict::NotEncrypted(format!(
                "{source} is not opened by any /etc/crypttab entry"
            ));
        }
        if let Some(vg) = lvm_path_vg(source) {
            return self.judge_vg(source, vg, depth);
        }
        if depth > 0 {
            // an LVM physical volume named by its device: the device itself, not a filesystem
            return Verdict::NotEncrypted(format!("{source} is not a dm-crypt mapping"));
        }
        if self.crypttab.is_empty() {
            return Verdict::NotEncrypted(format!(
                "{source} is not a dm-crypt mapping, and /etc/crypttab opens nothing at boot"
            ));
        }
        let names: Vec<&str> = self.crypttab.iter().map(|c| c.name.as_str()).collect();
        Verdict::Unknown(format!(
            "{source} is not named as a dm-crypt mapping; whether it is the filesystem inside one of /etc/crypttab's mappings ({}) cannot be told without the devices (name it /dev/mapper/<name> in /etc/fstab)",
            names.join(", ")
        ))
    }

    fn judge_vg(&self, source: &str, vg: &str, depth: usize) -> Verdict {
        let Some(pvs) = self.lvm.get(vg).filter(|p| !p.is_empty()) else {
            return Verdict::Unknown(format!(
                "{source} is an LVM volume of group {vg}, and without /etc/lvm/backup/{vg} its physical volumes cannot be told from the image"
            ));
        };
        if depth > 4 {
            return Verdict::Unknown(format!("{source}: LVM nested too deep"));
        }
        let verdicts: Vec<Verdict> = pvs
            .iter()
            .map(|pv| self.judge_source(pv, depth + 1))
            .collect();
        let what = format!(
            "{source} is an LVM volume of group {vg} on {} (/etc/lvm/backup/{vg})",
            pvs.join(", ")
        );
        let detail = |pred: fn(&Verdict) -> Option<&String>| -> Vec<String> {
            verdicts.iter().filter_map(pred).cloned().collect()
        };
        let not = detail(|v| match v {
            Verdict::NotEncrypted(s) => Some(s),
            _ => None,
        });
        if !not.is_empty() {
            return Verdict::NotEncrypted(format!("{what}: {}", not.join("; ")));
        }
        let unknown = detail(|v| match v {
            Verdict::Unknown(s) | Verdict::NotApplicable(s) => Some(s),
            _ => None,
        });
        if !unknown.is_empty() {
            return Verdict::Unknown(format!("{what}: {}", unknown.join("; ")));
        }
        let yes = detail(|v| match v {
            Verdict::Encrypted(s) => Some(s),
            _ => None,
        });
        Verdict::Encrypted(format!("{what}: {}", yes.join("; ")))
    }
}

/// Prefix a verdict's text with what was followed to reach it.
fn reword(v: Verdict, prefix: &str) -> Verdict {
    match v {
        Verdict::Encrypted(s) => Verdict::Encrypted(format!("{prefix}: {s}")),
        Verdict::NotEncrypted(s) => Verdict::NotEncrypted(format!("{prefix}: {s}")),
        Verdict::Unknown(s) => Verdict::Unknown(format!("{prefix}: {s}")),
        Verdict::NotApplicable(s) => Verdict::NotApplicable(format!("{prefix}: {s}")),
    }
}

/// `/dev/mapper/<name>` or `/dev/disk/by-id/dm-name-<name>` → `<name>`.
pub fn mapper_name(source: &str) -> Option<&str> {
    source
        .strip_prefix("/dev/mapper/")
        .or_else(|| source.strip_prefix("/dev/disk/by-id/dm-name-"))
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// `/dev/<vg>/<lv>` (LVM's own links) → `<vg>`; device directories udev makes are not VGs.
fn lvm_path_vg(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    let udev_dirs = [
        "disk",
        "mapper",
        "md",
        "block",
        "char",
        "bus",
        "input",
        "dri",
        "snd",
        "net",
        "cpu",
        "shm",
        "pts",
        "hugepages",
        "mqueue",
        "fd",
        "vfio",
        "xen",
    ];
    (!lv.is_empty() && !lv.contains('/') && !udev_dirs.contains(&vg)).then_some(vg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(fstab: &str, crypttab: &str, lvm: &[(&str, &[&str])]) -> BootConfig {
        BootConfig {
            fstab: Some(tables::parse_fstab(fstab)),
            crypttab: tables::parse_crypttab(crypttab),
            lvm: lvm
                .iter()
                .map(|(vg, pvs)| (vg.to_string(), pvs.iter().map(|p| p.to_string()).collect()))
                .collect(),
        }
    }

    fn kind(v: &Verdict) -> &'static str {
        match v {
            Verdict::Encrypted(_) => "encrypted",
            Verdict::NotEncrypted(_) => "not-encrypted",
            Verdict::Unknown(_) => "unknown",
            Verdict::NotApplicable(_) => "not-applicable",
        }
    }

    #[test]
    fn crypttab_mappings_and_lvm_on_luks() {
        let c = cfg(
            "/dev/mapper/cryptroot / ext4 defaults 0 1\n/dev/vg0/home /home ext4 defaults 0 2\n/dev/mapper/vg1-data /srv xfs defaults 0 2\ntmpfs /tmp tmpfs nodev 0 0\n/dev/mapper/cswap none swap sw 0 0\n/swapfile none swap sw 0 0\n",
            "cryptroot UUID=1 none luks\ncryptpv UUID=2 none luks\ncswap /dev/vdb2 /dev/urandom swap\n",
            &[("vg0", &["/dev/mapper/cryptpv"]), ("vg1", &["/dev/mapper/cryptpv", "/dev/vdc"])],
        );
        let (e, v) = c.judge_path("/var/log");
        assert_eq!(e.unwrap().point, "/");
        assert_eq!(kind(&v), "encrypted", "{v:?}");
        assert_eq!(kind(&c.judge_path("/home").1), "encrypted");
        let (_, srv) = c.judge_path("/srv/data");
        assert_eq!(kind(&srv), "not-encrypted", "{srv:?}");
        assert!(
            format!("{srv:?}").contains("/dev/vdc is not a dm-crypt mapping"),
            "{srv:?}"
        );
        assert_eq!(kind(&c.judge_path("/tmp").1), "not-applicable");
        let swaps = c.swaps();
        assert_eq!(kind(&c.judge_entry(swaps[0])), "encrypted");
        // the swap file is on /, which is encrypted
        let file = c.judge_entry(swaps[1]);
        assert_eq!(kind(&file), "encrypted");
        assert!(
            format!("{file:?}").contains("swap file /swapfile is on /"),
            "{file:?}"
        );
    }

    #[test]
    fn filesystem_names_are_unknown_unless_nothing_is_unlocked() {
        let plain = cfg("UUID=abc / ext4 defaults 0 1\n", "", &[]);
        assert_eq!(kind(&plain.judge_path("/").1), "not-encrypted");
        let some = cfg(
            "UUID=abc / ext4 defaults 0 1\n",
            "data UUID=2 none luks\n",
            &[],
        );
        let (_, v) = some.judge_path("/");
        assert_eq!(kind(&v), "unknown");
        assert!(format!("{v:?}").contains("(data)"), "{v:?}");
        let no_backup = cfg(
            "/dev/mapper/vg9-root / ext4 defaults 0 1\n",
            "x UUID=1 none\n",
            &[],
        );
        assert_eq!(kind(&no_backup.judge_path("/").1), "unknown");
        let dracut = cfg("/dev/mapper/luks-1234 / ext4 defaults 0 1\n", "", &[]);
        assert_eq!(kind(&dracut.judge_path("/").1), "unknown");
        let stray = cfg("/dev/mapper/other / ext4 defaults 0 1\n", "", &[]);
        assert_eq!(kind(&stray.judge_path("/").1), "not-encrypted");
        let empty = BootConfig::default();
        assert_eq!(kind(&empty.judge_path("/").1), "not-encrypted");
    }

    #[test]
    fn prefixes_select_data_volumes() {
        let c = cfg(
            "UUID=1 / ext4 defaults 0 1\nUUID=2 /data ext4 defaults 0 2\nUUID=3 /data/x ext4 defaults 0 2\nUUID=4 /database ext4 defaults 0 2\n",
            "",
            &[],
        );
        let under: Vec<&str> = c
            .under(&["/data".to_string()])
            .iter()
            .map(|e| e.point.as_str())
            .collect();
        assert_eq!(under, ["/data", "/data/x"]);
        assert_eq!(mapper_name("/dev/disk/by-id/dm-name-cr"), Some("cr"));
        assert_eq!(lvm_path_vg("/dev/vg0/root"), Some("vg0"));
        assert_eq!(lvm_path_vg("/dev/disk/by-uuid"), None);
        assert_eq!(lvm_path_vg("/dev/vda1"), None);
    }
}
