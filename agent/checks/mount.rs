//! `[[mount]]`: a directory must be its own mount, with the given options (`nodev`, `nosuid`,
//! `noexec` for `/tmp`, `/dev/shm`, `/var/tmp`, `/home`). On a live system the truth is the kernel's
//! mount table (`/proc/self/mountinfo`: the last mount on a path is the visible one; per-mount flags
//! in field 6, filesystem options after the ` - `). On an image it is what boot will mount: an
//! `/etc/fstab` entry, else a systemd `.mount` unit for the path (`tmp.mount` → `Options=`) that is
//! enabled, else `default_options` for mounts the system always makes (systemd mounts `/dev/shm`
//! `nosuid,nodev`). `options = []` with `missing = "fail"` states "must be a separate mount".

use toml::Spanned;

use super::systemd_unit::UnitIndex;
use super::IfMissing;
use crate::baseline::diag::Diagnostics;
use crate::baseline::file::rule_params;
use crate::baseline::layer::CompileCheck;
use crate::context::Context;
use crate::rule::{Check, Evidence, Outcome};
use crate::sysroot::Sysroot;

rule_params! {
    /// TOML parameters of `[[mount]]`.
    pub struct Mount {
        /// The mount point, e.g. `/tmp`.
        pub path: Spanned<String>,
        /// Options that must all be in effect.
        #[serde(default)]
        pub options: Vec<String>,
        /// Options in effect when the system mounts the path by itself without configuration.
        #[serde(default)]
        pub default_options: Option<Vec<String>>,
        /// When the path is not a separate mount: `not-applicable` (default), `fail`, `pass`.
        #[serde(default)]
        pub missing: IfMissing,
    }
}

#[derive(Debug)]
pub struct MountCheck {
    path: String,
    options: Vec<String>,
    default_options: Option<Vec<String>>,
    missing: IfMissing,
}

impl CompileCheck for Mount {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let p = self.path.get_ref();
        if !p.starts_with('/')
            || p.split('/').any(|c| c == ".." || c == ".")
            || (p.len() > 1 && p.ends_with('/'))
        {
            diags.error(
                self.path.span(),
                format!("`path` `{p}` must be an absolute, normalised mount point"),
            );
            return None;
        }
        if self
            .options
            .iter()
            .any(|o| o.is_empty() || o.contains([',', ' ']))
        {
            diags.error(
                self.path.span(),
                "`options` must be single mount options like \"nodev\"",
            );
            return None;
        }
        Some(Box::new(MountCheck {
            path: p.clone(),
            options: self.options.clone(),
            default_options: self.default_options.clone(),
            missing: self.missing,
        }))
    }
}

/// A mount as found: where it came from and its options (per-mount and filesystem, merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: Evidence,
    pub options: Vec<String>,
}

/// Decode the octal escapes (`\040` for a space) used in mountinfo and fstab fields.
pub(crate) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The visible mount on `path` in mountinfo text (the last one listed), with merged options.
/// `prefix` is stripped from mount points when the table is the scanner's view of a chroot.
pub fn from_mountinfo(text: &str, path: &str, prefix: &str) -> Option<Found> {
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 6 || sep + 3 > fields.len() {
            continue;
        }
        let point = unescape(fields[4]);
        let point = if prefix.is_empty() {
            point
        } else {
            match point.strip_prefix(prefix) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => continue,
            }
        };
        if point != path {
            continue;
        }
        let mut options: Vec<String> = fields[5].split(',').map(str::to_string).collect();
        options.extend(
            fields
                .get(sep + 3)
                .map_or(vec![], |s| s.split(',').map(str::to_string).collect()),
        );
        found = Some(Found {
            source: Evidence::new(format!("{path} is mounted ({})", fields[sep + 1]))
                .path("/proc/self/mountinfo")
                .line(i + 1),
            options,
        });
    }
    found
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

fn from_unit(sysroot: &Sysroot, units: &UnitIndex, path: &str) -> Result<Option<Found>, String> {
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

impl MountCheck {
    fn evaluate_found(&self, found: Option<Found>) -> Outcome {
        let Some(found) = found else {
            return self
                .missing
                .outcome(format!("{} is not a separate mount", self.path));
        };
        let lacking: Vec<&String> = self
            .options
            .iter()
            .filter(|o| !found.options.contains(o))
            .collect();
        let ev = found.source.found(found.options.join(","));
        if lacking.is_empty() {
            Outcome::pass(ev)
        } else {
            let lacking: Vec<&str> = lacking.iter().map(|s| s.as_str()).collect();
            Outcome::fail(ev.expected(format!("options including {}", lacking.join(","))))
        }
    }
}

impl Check for MountCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        if cx.is_live() {
            match cx.sysroot.read("/proc/self/mountinfo") {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let host = cx.sysroot.root().display().to_string();
                    let prefix = if cx.sysroot.is_host_root()
                        || from_mountinfo(&text, &host, "").is_none()
                    {
                        String::new()
                    } else {
                        host
                    };
                    return self.evaluate_found(from_mountinfo(&text, &self.path, &prefix));
                }
                Err(e) if e.is_not_found() => {} // a fixture or chroot without mounts: judge the configuration
                Err(e) => return Outcome::error(e),
            }
        }
        let fstab = match cx.sysroot.read("/etc/fstab") {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Outcome::error(e),
        };
        if let Some(found) = fstab.as_deref().and_then(|t| from_fstab(t, &self.path)) {
            return self.evaluate_found(Some(found));
        }
        let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
        match from_unit(cx.sysroot, &units, &self.path) {
            Ok(Some(found)) => return self.evaluate_found(Some(found)),
            Ok(None) => {}
            Err(e) => return Outcome::error(e),
        }
        match &self.default_options {
            Some(opts) => self.evaluate_found(Some(Found {
                source: Evidence::new(format!(
                    "{} is mounted by the system itself with its defaults",
                    self.path
                )),
                options: opts.clone(),
            })),
            None => self.evaluate_found(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
