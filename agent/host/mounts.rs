//! Mounts as the kernel shows them (`/proc/self/mountinfo`) and as boot will make them
//! (`/etc/fstab`, an enabled systemd `.mount` unit), and the octal escapes (`\040` for a space) both
//! tables use in their fields. Shared by the filesystems check, the storage stack and the tree walk.

use crate::host::systemd::UnitIndex;
use crate::rule::Evidence;
use crate::sysroot::{Sysroot, SysrootError};

/// Decode the octal escapes of a mountinfo or fstab field into raw bytes. Only `\000`-`\377` name a
/// byte; anything else after a backslash (`\400`, `\9`, a trailing `\`) is kept as written.
pub fn unescape_bytes(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let value = digits
                    .iter()
                    .fold(0u16, |acc, d| acc * 8 + u16::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// [`unescape_bytes`] as text (invalid UTF-8 replaced), for paths shown in evidence.
pub fn unescape(field: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(field)).into_owned()
}

/// One line of a mountinfo table (proc(5)), its path fields decoded: `36 35 98:0 /mnt1 /mnt2
/// rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfoLine<'a> {
    /// 1-based line in the table.
    pub line: usize,
    /// Field 3: `MAJ:MIN` of the filesystem's device.
    pub dev: &'a str,
    /// Field 4: the directory of the filesystem that is mounted (not `/` for a bind mount).
    pub root: Vec<u8>,
    /// Field 5: the mount point, as the table's reader sees it.
    pub point: Vec<u8>,
    /// Field 6: per-mount options (`rw,nosuid,...`).
    pub options: &'a str,
    /// After the `-`: the filesystem type, the source, the per-superblock options.
    pub fstype: &'a str,
    pub source: Vec<u8>,
    pub super_options: &'a str,
}

impl MountInfoLine<'_> {
    /// The mount point as text (invalid UTF-8 replaced).
    pub fn point_text(&self) -> String {
        String::from_utf8_lossy(&self.point).into_owned()
    }
}

/// The well-formed lines of a mountinfo table, in order; a line without the six fields before the
/// `-` separator and the three after it is not a mount and is passed over.
pub fn mountinfo(text: &str) -> impl Iterator<Item = MountInfoLine<'_>> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        if sep < 6 || fields.len() < sep + 4 {
            return None;
        }
        Some(MountInfoLine {
            line: i + 1,
            dev: fields[2],
            root: unescape_bytes(fields[3]),
            point: unescape_bytes(fields[4]),
            options: fields[5],
            fstype: fields[sep + 1],
            source: unescape_bytes(fields[sep + 2]),
            super_options: fields[sep + 3],
        })
    })
}

/// A mount point of the scanner's table as an in-root path of the chroot at `prefix` (`""` for
/// the scanner's own root); `None` for mounts outside it.
pub fn in_root(point: String, prefix: &str) -> Option<String> {
    if prefix.is_empty() || prefix == "/" {
        return Some(point);
    }
    match point.strip_prefix(prefix) {
        Some("") => Some("/".to_string()),
        Some(rest) if rest.starts_with('/') => Some(rest.to_string()),
        _ => None,
    }
}

/// A mount as found: where it came from and its options (per-mount and filesystem, merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: Evidence,
    pub options: Vec<String>,
}

/// The visible mount on `path` in mountinfo text (the last one listed), with merged options.
/// `prefix` is stripped from mount points when the table is the scanner's view of a chroot.
pub fn from_mountinfo(text: &str, path: &str, prefix: &str) -> Option<Found> {
    mountinfo(text)
        .filter(|m| in_root(m.point_text(), prefix).is_some_and(|p| p == path))
        .last()
        .map(|m| {
            let options = m
                .options
                .split(',')
                .chain(m.super_options.split(','))
                .map(str::to_string)
                .collect();
            Found {
                source: Evidence::new(format!("{path} is mounted ({})", m.fstype))
                    .path("/proc/self/mountinfo")
                    .line(m.line),
                options,
            }
        })
}

/// The `/etc/fstab` entry for `path` (the last one wins, as mount -a leaves it on top).
pub fn from_fstab(text: &str, path: &str) -> Option<Found> {
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || unescape(f[1]) != path || f[2] == "swap" {
            continue;
        }
        let options = f.get(3).map_or(vec!["defaults".to_string()], |o| {
            o.split(',').map(str::to_string).collect()
        });
        found = Some(Found {
            source: Evidence::new(format!("{path} is mounted at boot ({})", f[2]))
                .path("/etc/fstab")
                .line(i + 1),
            options,
        });
    }
    found
}

/// systemd's unit name for a mount point: `/var/tmp` → `var-tmp.mount`, `/` → `-.mount`.
pub fn unit_name(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-.mount".into();
    }
    let escaped: String = trimmed
        .chars()
        .map(|c| match c {
            '/' => "-".to_string(),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => c.to_string(),
            c => format!("\\x{:02x}", c as u32),
        })
        .collect();
    format!("{escaped}.mount")
}

/// The mount an enabled systemd `.mount` unit makes for `path` at boot (`Options=`), if any.
pub fn from_unit(
    sysroot: &Sysroot,
    units: &UnitIndex,
    path: &str,
) -> Result<Option<Found>, String> {
    let unit = unit_name(path);
    let Some((file, masked)) = units.files.get(&unit) else {
        return Ok(None);
    };
    // enabled means linked from a *.wants directory (vendor ones too: Fedora-family systems ship
    // local-fs.target.wants/tmp.mount in /usr/lib/systemd/system)
    if *masked || !units.wanted_by.contains_key(&unit) {
        return Ok(None);
    }
    let text = sysroot.read(file).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    let mut options = vec![];
    let mut line_no = 0;
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.trim().strip_prefix("Options=") {
            options = v.split(',').map(|s| s.trim().to_string()).collect();
            line_no = i + 1;
        }
    }
    Ok(Some(Found {
        source: Evidence::new(format!("{path} is mounted at boot by {unit}"))
            .path(file.clone())
            .line(line_no.max(1)),
        options,
    }))
}

/// The kernel's mount table as the sysroot sees it (`/proc/self/mountinfo`), with the prefix to
/// strip when the sysroot is a chroot seen from the scanning host's table.
#[derive(Debug)]
pub struct MountTable {
    text: String,
    prefix: String,
}

impl MountTable {
    /// `Ok(None)` when the sysroot has no mount table (a fixture, a chroot without `/proc`).
    pub fn read(sysroot: &Sysroot) -> Result<Option<MountTable>, SysrootError> {
        let bytes = match sysroot.read("/proc/self/mountinfo") {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let host = sysroot.root().display().to_string();
        let prefix = if sysroot.is_host_root() || from_mountinfo(&text, &host, "").is_none() {
            String::new()
        } else {
            host
        };
        Ok(Some(MountTable { text, prefix }))
    }

    /// The visible mount on `path`, if it is a mount point.
    pub fn find(&self, path: &str) -> Option<Found> {
        from_mountinfo(&self.text, path, &self.prefix)
    }
}

/// What boot will mount on `path`: its `/etc/fstab` entry, else an enabled systemd `.mount` unit.
pub fn at_boot(sysroot: &Sysroot, units: &UnitIndex, path: &str) -> Result<Option<Found>, String> {
    match sysroot.read("/etc/fstab") {
        Ok(bytes) => {
            if let Some(found) = from_fstab(&String::from_utf8_lossy(&bytes), path) {
                return Ok(Some(found));
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.to_string()),
    }
    from_unit(sysroot, units, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_decode_to_bytes_and_out_of_range_ones_stay_literal() {
        assert_eq!(unescape("/mnt/my\\040share"), "/mnt/my share");
        assert_eq!(unescape_bytes("a\\011b\\012c\\134"), b"a\tb\nc\\");
        assert_eq!(unescape_bytes("\\377"), vec![0xff]);
        // \400-\777 are not bytes: kept as written (they used to overflow a u8)
        for text in ["\\400", "\\777", "x\\4000", "\\9", "\\", "\\12"] {
            assert_eq!(unescape_bytes(text), text.as_bytes(), "{text}");
        }
    }

    const MOUNTINFO: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
25 24 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw,size=100k\n\
30 27 0:27 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw\n\
31 30 0:28 / /tmp rw,relatime - tmpfs tmpfs rw,noexec\n\
40 27 8:1 / /srv/my\\040data rw - ext4 /dev/sda1 rw\n";

    #[test]
    fn the_last_mount_on_a_path_is_the_visible_one() {
        let tmp = from_mountinfo(MOUNTINFO, "/tmp", "").unwrap();
        assert_eq!(tmp.options, vec!["rw", "relatime", "rw", "noexec"]);
        assert_eq!(tmp.source.line, Some(4));
        assert!(from_mountinfo(MOUNTINFO, "/dev/shm", "")
            .unwrap()
            .options
            .contains(&"nodev".to_string()));
        assert!(from_mountinfo(MOUNTINFO, "/srv/my data", "").is_some());
        assert!(from_mountinfo(MOUNTINFO, "/home", "").is_none());
        let chroot = "1 0 8:1 / /mnt/ami rw - ext4 /dev/sdb1 rw\n2 1 0:5 / /mnt/ami/tmp rw,nodev - tmpfs tmpfs rw\n3 0 0:6 / /tmp rw - tmpfs tmpfs rw\n";
        assert_eq!(
            from_mountinfo(chroot, "/tmp", "/mnt/ami").unwrap().options,
            vec!["rw", "nodev", "rw"]
        );
    }

    #[test]
    fn fstab_entries_and_unit_names() {
        let fstab = "# c\nUUID=1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults,nodev,nosuid 0 0\n/swapfile none swap sw 0 0\n";
        let tmp = from_fstab(fstab, "/tmp").unwrap();
        assert_eq!(tmp.options, vec!["defaults", "nodev", "nosuid"]);
        assert_eq!(tmp.source.line, Some(3));
        assert!(from_fstab(fstab, "/home").is_none());
        assert_eq!(unit_name("/tmp"), "tmp.mount");
        assert_eq!(unit_name("/var/tmp"), "var-tmp.mount");
        assert_eq!(unit_name("/"), "-.mount");
    }
}
