//! The text tables the `crypt` family reads, parsed without touching the host: the kernel's mount
//! table (`/proc/self/mountinfo`) and active swaps (`/proc/swaps`) on a live system, and what boot
//! will set up on an image (`/etc/fstab`, `/etc/crypttab`, LVM's metadata backups in
//! `/etc/lvm/backup/<vg>`). Fields keep their line numbers for evidence; octal escapes (`\040`)
//! are decoded as the kernel and util-linux write them.

use std::fmt;

use crate::host::mounts::{in_root, mountinfo, unescape};

/// A block device number, `MAJ:MIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct DevNum {
    pub major: u64,
    pub minor: u64,
}

impl DevNum {
    /// Parse `254:2`.
    pub fn parse(text: &str) -> Option<DevNum> {
        let (major, minor) = text.trim().split_once(':')?;
        Some(DevNum {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// 1-based line in mountinfo.
    pub line: usize,
    /// Field 3: the device of the filesystem (`0:NN` for anonymous ones: tmpfs, overlay, btrfs).
    pub dev: DevNum,
    /// The mount point, as the audited system sees it.
    pub point: String,
    pub fstype: String,
    /// The mount source (`/dev/vda1`, `tmpfs`, `server:/export`).
    pub source: String,
}

/// The visible mounts of a mountinfo table: for each mount point the last one listed (a later mount
/// on the same path hides the earlier one), in table order. `prefix` (a chroot's path in the
/// scanner's mount table) is stripped, and mounts outside it are dropped.
pub fn parse_mountinfo(text: &str, prefix: &str) -> Vec<MountEntry> {
    let mut out: Vec<MountEntry> = Vec::new();
    for m in mountinfo(text) {
        let Some(dev) = DevNum::parse(m.dev) else {
            continue;
        };
        let Some(point) = in_root(m.point_text(), prefix) else {
            continue;
        };
        out.retain(|e| e.point != point);
        out.push(MountEntry {
            line: m.line,
            dev,
            point,
            fstype: m.fstype.to_string(),
            source: String::from_utf8_lossy(&m.source).into_owned(),
        });
    }
    out.sort_by_key(|m| m.line);
    out
}

/// True when `path` is `point` or below it (component-wise: `/var` holds `/var/log`, not `/variable`).
pub fn is_under(path: &str, point: &str) -> bool {
    point == "/"
        || path == point
        || path
            .strip_prefix(point)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The entry whose mount point is the deepest one holding `path`.
pub fn holder<'a, T>(entries: &'a [T], path: &str, point: impl Fn(&T) -> &str) -> Option<&'a T> {
    entries
        .iter()
        .filter(|e| is_under(path, point(e)))
        .max_by_key(|e| point(e).len())
}

/// One active swap area of `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapEntry {
    pub line: usize,
    /// `/dev/dm-1`, `/dev/zram0`, `/swapfile`.
    pub path: String,
    /// `partition` or `file`.
    pub kind: String,
}

pub fn parse_swaps(text: &str) -> Vec<SwapEntry> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter_map(|(i, line)| {
            let mut f = line.split_whitespace();
            let path = unescape(f.next()?);
            let kind = f.next()?.to_string();
            Some(SwapEntry {
                line: i + 1,
                path,
                kind,
            })
        })
        .collect()
}

/// One `/etc/fstab` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub line: usize,
    pub source: String,
    /// The mount point (`none` or `swap` for swap entries).
    pub point: String,
    pub fstype: String,
    pub options: Vec<String>,
}

/// The entries of a whitespace-separated table (fstab, crypttab): each non-blank, non-comment line
/// with at least `min_fields` fields, as (1-based line number, fields, the fourth field's
/// comma-separated options).
fn table_lines(
    text: &str,
    min_fields: usize,
) -> impl Iterator<Item = (usize, Vec<&str>, Vec<String>)> {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < min_fields {
            return None;
        }
        let options = fields
            .get(3)
            .map_or(vec![], |o| o.split(',').map(str::to_string).collect());
        Some((i + 1, fields, options))
    })
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    table_lines(text, 3)
        .map(|(line, f, options)| FstabEntry {
            line,
            source: unescape(f[0]),
            point: unescape(f[1]),
            fstype: f[2].to_string(),
            options,
        })
        .collect()
}

/// One `/etc/crypttab` entry: `name device [keyfile [options]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrypttabEntry {
    pub line: usize,
    /// The mapping name (`/dev/mapper/<name>`).
    pub name: String,
    /// `UUID=…`, `/dev/sdb1`, `PARTUUID=…`.
    pub device: String,
    /// `none`, `-`, a key file, `/dev/urandom` (a new random key each boot).
    pub key: Option<String>,
    pub options: Vec<String>,
}

impl CrypttabEntry {
    /// The value of option `key=value`, e.g. `cipher`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }
    pub fn has_flag(&self, flag: &str) -> bool {
        self.options.iter().any(|o| o == flag)
    }
    /// True when the entry opens a plain dm-crypt mapping (no LUKS header): `plain`, or `swap`/
    /// `tmp`/a random key without `luks`.
    pub fn is_plain(&self) -> bool {
        if self.has_flag("luks") {
            return false;
        }
        self.has_flag("plain")
            || self.has_flag("swap")
            || self.has_flag("tmp")
            || self
                .key
                .as_deref()
                .is_some_and(|k| k == "/dev/urandom" || k == "/dev/random")
    }
    /// `crypttab:LINE (NAME DEVICE KEY OPTIONS)` for evidence.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.name.clone(), self.device.clone()];
        if let Some(k) = &self.key {
            parts.push(k.clone());
        }
        if !self.options.is_empty() {
            parts.push(self.options.join(","));
        }
        format!("/etc/crypttab:{} ({})", self.line, parts.join(" "))
    }
}

pub fn parse_crypttab(text: &str) -> Vec<CrypttabEntry> {
    table_lines(text, 2)
        .map(|(line, f, options)| CrypttabEntry {
            line,
            name: unescape(f[0]),
            device: unescape(f[1]),
            key: f.get(2).map(|k| k.to_string()),
            options,
        })
        .collect()
}

/// The volume group and logical volume of a device-mapper name LVM made (`vg--data-lv_1` →
/// (`vg-data`, `lv_1`): LVM doubles the dashes inside names and joins them with one).
pub fn lvm_names(mapper: &str) -> Option<(String, String)> {
    let bytes = mapper.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let vg = mapper[..i].replace("--", "-");
            let lv = mapper[i + 1..].replace("--", "-");
            return (!vg.is_empty() && !lv.is_empty()).then_some((vg, lv));
        }
        i += 1;
    }
    None
}

/// The physical volumes of a volume group from its LVM metadata backup (`/etc/lvm/backup/<vg>`):
/// the `device = "/dev/…"` hint of each `pvN` section, in order.
pub fn lvm_backup_pvs(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("device")?.trim_start();
            let value = rest.strip_prefix('=')?.trim();
            let value = value.strip_prefix('"')?;
            let end = value.find('"')?;
            Some(value[..end].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_last_mount_wins_and_chroot_prefix() {
        let text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                    30 27 0:27 / /tmp rw - tmpfs tmpfs rw\n\
                    31 27 254:1 / /srv/my\\040data rw shared:1 - ext4 /dev/vdb rw\n\
                    32 27 0:28 / /tmp rw - ext4 /dev/vdc rw\n";
        let m = parse_mountinfo(text, "");
        assert_eq!(
            m.iter().map(|m| m.point.as_str()).collect::<Vec<_>>(),
            ["/", "/srv/my data", "/tmp"]
        );
        assert_eq!(
            m[1].dev,
            DevNum {
                major: 254,
                minor: 1
            }
        );
        assert_eq!(m[2].source, "/dev/vdc");
        let chroot = "1 0 8:1 / /mnt/ami rw - ext4 /dev/sdb1 rw\n2 1 0:5 / /mnt/ami/tmp rw - tmpfs tmpfs rw\n3 0 0:6 / /tmp rw - tmpfs tmpfs rw\n";
        let c = parse_mountinfo(chroot, "/mnt/ami");
        assert_eq!(
            c.iter().map(|m| m.point.as_str()).collect::<Vec<_>>(),
            ["/", "/tmp"]
        );
        assert_eq!(c[1].line, 2);
        assert_eq!(holder(&m, "/var/log", |m| &m.point).unwrap().point, "/");
        assert_eq!(
            holder(&m, "/srv/my data/x", |m| &m.point).unwrap().point,
            "/srv/my data"
        );
        assert!(!is_under("/variable", "/var"));
    }

    #[test]
    fn swaps_fstab_crypttab() {
        let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-1                               partition\t1048572\t\t0\t\t-2\n/swap\\040file file 1024 0 -3\n";
        let s = parse_swaps(swaps);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].path.as_str(), s[0].kind.as_str(), s[0].line),
            ("/dev/dm-1", "partition", 2)
        );
        assert_eq!(s[1].path, "/swap file");
        let fstab =
            "# x\n/dev/mapper/cryptroot / ext4 defaults 0 1\n/dev/mapper/cswap none swap sw 0 0\n";
        let f = parse_fstab(fstab);
        assert_eq!(f[0].line, 2);
        assert_eq!(f[1].fstype, "swap");
        let ct = "# <target> <source> <key> <options>\ncryptroot UUID=33c8 none luks,discard\ncswap /dev/vdb2 /dev/urandom swap,cipher=aes-xts-plain64,size=512\nbare /dev/vdc\n";
        let c = parse_crypttab(ct);
        assert_eq!(c.len(), 3);
        assert!(!c[0].is_plain());
        assert!(c[1].is_plain());
        assert_eq!(c[1].option("cipher"), Some("aes-xts-plain64"));
        assert_eq!(c[1].option("size"), Some("512"));
        assert_eq!(c[2].key, None);
        assert_eq!(
            c[0].describe(),
            "/etc/crypttab:2 (cryptroot UUID=33c8 none luks,discard)"
        );
    }

    #[test]
    fn lvm_mapper_names_and_backups() {
        assert_eq!(lvm_names("vg0-root"), Some(("vg0".into(), "root".into())));
        assert_eq!(
            lvm_names("my--vg-data--lv"),
            Some(("my-vg".into(), "data-lv".into()))
        );
        assert_eq!(lvm_names("cryptroot"), None);
        assert_eq!(lvm_names("-x"), None);
        let backup = "vg0 {\n\tphysical_volumes {\n\t\tpv0 {\n\t\t\tid = \"abc\"\n\t\t\tdevice = \"/dev/mapper/cryptpv\"\t# Hint only\n\t\t}\n\t\tpv1 {\n\t\t\tdevice = \"/dev/vdc\"\n\t\t}\n\t}\n}\n";
        assert_eq!(lvm_backup_pvs(backup), ["/dev/mapper/cryptpv", "/dev/vdc"]);
    }
}
