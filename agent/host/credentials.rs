//! Static AWS credentials left on disk, found where they end up: `~/.aws/credentials` and
//! `~/.aws/config` of `/root` and of every home in the sysroot's `/etc/passwd`, rootless Podman's
//! configuration and Quadlet units, `/etc/environment`, `/etc/profile.d/*`, `/etc/default/*`,
//! `/etc/sysconfig/*`, every systemd unit file and drop-in and the files their `EnvironmentFile=`
//! names, Podman's `containers.conf(.d)` and Quadlet units, cloud-init user data left on disk, and
//! any extra paths a baseline names. One scan per run ([`CredentialScan`]).
//!
//! Access key ids follow AWS's exact syntax (`AKIA`/`ASIA` and 16 base32 characters `A-Z2-7`, not
//! inside a longer word); secrets are `aws_secret_access_key` assignments with a 40-character
//! value in any of INI, shell, YAML or JSON syntax. Files are streamed as bytes in overlapping
//! windows (CRLF, binary content and lines of any length are fine, memory stays bounded) up to
//! [`MAX_SCAN_BYTES`]. Key ids are kept redacted (`AKIA****MPLE`); a secret is never kept, only
//! where its assignment is. Also here: what is known of the instance role ([`instance_role`]).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::host::accounts::parse_passwd;
use crate::host::imds::facts::{Fetched, ImdsFacts};
use crate::host::systemd::{UnitIndex, UNIT_DIRS};
use crate::sysroot::Sysroot;

/// A file is read up to this many bytes; past it the scan stops with an error naming the file.
pub const MAX_SCAN_BYTES: u64 = 256 << 20;

/// Bytes of one line kept in memory at a time; a longer line is scanned in overlapping windows.
const WINDOW: usize = 64 << 10;

/// Overlap between windows of one long line: longer than any match we look for.
const OVERLAP: usize = 512;

/// What a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HitKind {
    LongTermKeyId,
    TemporaryKeyId,
    SecretKey,
}

/// One match, already redacted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    pub line: usize,
    pub kind: HitKind,
    /// `AKIA****MPLE` for key ids; for secrets only the assignment's key name.
    pub shown: String,
}

/// One file that was scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// In-root path, as first reached.
    pub path: String,
    /// Why it was scanned (`~/.aws/credentials of alice`, `EnvironmentFile= of foo.service`).
    pub why: String,
    pub mode: u32,
    /// Every local user can read it: `o+r` on the file and `o+x` on each directory above it.
    pub world_readable: bool,
    /// An AWS shared credentials file (`~/.aws/credentials`), whatever it holds.
    pub aws_credentials_file: bool,
    pub hits: Vec<Hit>,
}

/// The result of scanning every place, once per run.
#[derive(Debug, Default)]
pub struct CredentialScan {
    pub files: Vec<ScannedFile>,
    /// Files that exist and could not be read (or not to the end), each naming the path.
    pub errors: Vec<String>,
}

static KEY_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)(AKIA|ASIA)[A-Z2-7]{16}").expect("valid regex"));

static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i-u)aws_secret_access_key["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9/+]{40})"#)
        .expect("valid regex")
});

/// `AKIAIOSFODNN7EXAMPLE` → `AKIA****MPLE`.
pub fn redact_key_id(id: &str) -> String {
    if id.len() < 8 || !id.is_ascii() {
        return "****".into();
    }
    format!("{}****{}", &id[..4], &id[id.len() - 4..])
}

/// Every match in one piece of a line (a whole line, or a window of a long one).
pub fn find_in(text: &[u8], line: usize, out: &mut Vec<Hit>) {
    let word = |b: u8| b.is_ascii_alphanumeric();
    for m in KEY_ID.find_iter(text) {
        let before = m.start().checked_sub(1).map(|i| text[i]);
        let after = text.get(m.end()).copied();
        if before.is_some_and(word) || after.is_some_and(word) {
            continue;
        }
        let id = String::from_utf8_lossy(m.as_bytes());
        out.push(Hit {
            line,
            kind: if id.starts_with("AKIA") {
                HitKind::LongTermKeyId
            } else {
                HitKind::TemporaryKeyId
            },
            shown: redact_key_id(&id),
        });
    }
    for c in SECRET.captures_iter(text) {
        let value = c.get(1).expect("group 1 always participates");
        let after = text.get(value.end()).copied();
        if after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'=') {
            continue;
        }
        out.push(Hit {
            line,
            kind: HitKind::SecretKey,
            shown: "aws_secret_access_key".into(),
        });
    }
}

/// Scan a stream line by line with bounded memory. Returns the hits (deduplicated, in order) and
/// whether the stream went past `limit` bytes (scanning stopped there).
pub fn scan_stream(mut r: impl Read, limit: u64) -> io::Result<(Vec<Hit>, bool)> {
    let mut hits = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut line_buf: Vec<u8> = Vec::with_capacity(4096);
    let mut line = 1usize;
    let mut total = 0u64;
    let mut truncated = false;
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut n = n;
        if total + n as u64 > limit {
            n = (limit - total) as usize;
            truncated = true;
        }
        total += n as u64;
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            let ends_line = piece.last() == Some(&b'\n');
            line_buf.extend_from_slice(piece);
            if ends_line {
                find_in(&line_buf, line, &mut hits);
                line_buf.clear();
                line += 1;
            } else if line_buf.len() >= WINDOW {
                // A very long line: scan what we have and keep an overlap for matches that
                // straddle the cut (duplicates from the overlap are removed below).
                find_in(&line_buf, line, &mut hits);
                let keep = line_buf.split_off(line_buf.len() - OVERLAP);
                line_buf = keep;
            }
        }
        if truncated {
            break;
        }
    }
    if !line_buf.is_empty() {
        find_in(&line_buf, line, &mut hits);
    }
    let mut seen = HashSet::new();
    hits.retain(|h| seen.insert(h.clone()));
    Ok((hits, truncated))
}

/// One place to look: an in-root path or glob and why.
struct Place {
    pattern: String,
    why: String,
    /// Named explicitly (not by a glob): a non-regular file there is an error, not skipped.
    explicit: bool,
    aws_credentials_file: bool,
}

impl Place {
    fn file(path: impl Into<String>, why: impl Into<String>) -> Place {
        Place {
            pattern: path.into(),
            why: why.into(),
            explicit: true,
            aws_credentials_file: false,
        }
    }
    fn glob(pattern: impl Into<String>, why: impl Into<String>) -> Place {
        Place {
            pattern: pattern.into(),
            why: why.into(),
            explicit: false,
            aws_credentials_file: false,
        }
    }
}

/// Directories whose every regular file is scanned.
const GLOBS: &[(&str, &str)] = &[
    ("/etc/profile.d/*", "login shell environment"),
    ("/etc/default/*", "service defaults"),
    ("/etc/sysconfig/*", "service defaults"),
    (
        "/etc/containers/containers.conf.d/*",
        "Podman configuration",
    ),
    ("/etc/containers/systemd/*", "Podman Quadlet unit"),
    ("/etc/containers/systemd/*/*", "Podman Quadlet unit"),
    (
        "/var/lib/cloud/instances/*/user-data.txt",
        "cloud-init user data",
    ),
    (
        "/var/lib/cloud/instances/*/user-data.txt.i",
        "cloud-init user data",
    ),
    (
        "/var/lib/cloud/instances/*/scripts/*",
        "cloud-init user-data script",
    ),
];

/// Single files that are scanned when present.
const FILES: &[(&str, &str)] = &[
    ("/etc/environment", "system environment"),
    ("/etc/containers/containers.conf", "Podman configuration"),
    (
        "/usr/share/containers/containers.conf",
        "Podman configuration",
    ),
    (
        "/var/lib/cloud/instance/user-data.txt",
        "cloud-init user data",
    ),
    (
        "/var/lib/cloud/instance/user-data.txt.i",
        "cloud-init user data",
    ),
];

impl CredentialScan {
    /// Scan every place (and `extra` globs) in the sysroot.
    pub fn run(sysroot: &Sysroot, units: &UnitIndex, extra: &[String]) -> CredentialScan {
        let mut scan = CredentialScan::default();
        let mut places = Vec::new();
        // Homes: /root and every home in /etc/passwd, deduplicated, in passwd order.
        let mut homes: Vec<(String, String)> = vec![("/root".into(), "root".into())];
        match sysroot.read("/etc/passwd") {
            Ok(bytes) => {
                for e in parse_passwd(&String::from_utf8_lossy(&bytes)).0 {
                    if e.home.starts_with('/') && !homes.iter().any(|(h, _)| *h == e.home) {
                        homes.push((e.home.clone(), e.name.clone()));
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => scan.errors.push(format!("cannot list homes: {e}")),
        }
        for (home, user) in &homes {
            let home = home.trim_end_matches('/');
            let mut creds = Place::file(
                format!("{home}/.aws/credentials"),
                format!("AWS shared credentials file of {user}"),
            );
            creds.aws_credentials_file = true;
            places.push(creds);
            places.push(Place::file(
                format!("{home}/.aws/config"),
                format!("AWS config file of {user}"),
            ));
            places.push(Place::file(
                format!("{home}/.config/containers/containers.conf"),
                format!("rootless Podman configuration of {user}"),
            ));
            places.push(Place::glob(
                format!("{home}/.config/containers/systemd/*"),
                format!("rootless Podman Quadlet unit of {user}"),
            ));
        }
        places.extend(FILES.iter().map(|(p, why)| Place::file(*p, *why)));
        places.extend(GLOBS.iter().map(|(p, why)| Place::glob(*p, *why)));
        // systemd: every winning unit file, and every drop-in.
        let mut unit_files: Vec<&String> = units
            .files
            .values()
            .filter(|(_, masked)| !masked)
            .map(|(path, _)| path)
            .collect();
        unit_files.sort();
        places.extend(
            unit_files
                .into_iter()
                .map(|p| Place::glob(p.clone(), "systemd unit")),
        );
        for dir in UNIT_DIRS {
            places.push(Place::glob(format!("{dir}/*.d/*.conf"), "systemd drop-in"));
        }
        places.extend(
            extra
                .iter()
                .map(|p| Place::glob(p.clone(), "baseline extra_paths")),
        );

        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let mut env_files: BTreeMap<String, String> = BTreeMap::new();
        for place in &places {
            let paths: Vec<PathBuf> = if place.explicit {
                vec![PathBuf::from(&place.pattern)]
            } else {
                match sysroot.glob(&place.pattern) {
                    Ok(p) => p,
                    Err(e) => {
                        scan.errors.push(e.to_string());
                        continue;
                    }
                }
            };
            for path in paths {
                let is_unit = place.why.starts_with("systemd") || place.why.contains("Quadlet");
                if let Some(file) = scan.file(sysroot, &path, place, &mut seen) {
                    if is_unit {
                        collect_environment_files(sysroot, &path, &file.path, &mut env_files);
                    }
                    scan.files.push(file);
                }
            }
        }
        for (target, unit) in env_files {
            let place = Place::file(target.clone(), format!("EnvironmentFile= of {unit}"));
            if let Some(file) = scan.file(sysroot, Path::new(&target), &place, &mut seen) {
                scan.files.push(file);
            }
        }
        scan
    }

    /// Scan one file; `None` when it is absent, already scanned, or (from a glob) not a regular
    /// file. Errors are recorded.
    fn file(
        &mut self,
        sysroot: &Sysroot,
        path: &Path,
        place: &Place,
        seen: &mut HashSet<(u64, u64)>,
    ) -> Option<ScannedFile> {
        let shown = path.display().to_string();
        let meta = match sysroot.metadata(path) {
            Ok(m) => m,
            Err(e) if e.is_not_found() || e.kind() == io::ErrorKind::NotADirectory => return None,
            Err(e) => {
                self.errors.push(format!("cannot read {shown}: {e}"));
                return None;
            }
        };
        if !meta.is_file() {
            if place.explicit {
                self.errors
                    .push(format!("cannot read {shown}: not a regular file"));
            }
            return None;
        }
        if !seen.insert((meta.dev(), meta.ino())) {
            return None;
        }
        let file = match sysroot.open_file(path) {
            Ok(f) => f,
            Err(e) => {
                self.errors.push(format!("cannot read {shown}: {e}"));
                return None;
            }
        };
        let (hits, truncated) = match scan_stream(file, MAX_SCAN_BYTES) {
            Ok(r) => r,
            Err(e) => {
                self.errors.push(format!("cannot read {shown}: {e}"));
                return None;
            }
        };
        if truncated {
            self.errors.push(format!(
                "{shown}: larger than {} MiB, scanned only the first {} MiB",
                MAX_SCAN_BYTES >> 20,
                MAX_SCAN_BYTES >> 20
            ));
        }
        Some(ScannedFile {
            world_readable: world_readable(sysroot, path, meta.mode()),
            path: shown,
            why: place.why.clone(),
            mode: meta.mode() & 0o7777,
            aws_credentials_file: place.aws_credentials_file,
            hits,
        })
    }
}

/// `o+r` on the file and `o+x` on every directory above it (inside the root).
fn world_readable(sysroot: &Sysroot, path: &Path, mode: u32) -> bool {
    if mode & 0o004 == 0 {
        return false;
    }
    path.ancestors()
        .skip(1)
        .all(|dir| sysroot.metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0))
}

/// `EnvironmentFile=` targets of a unit file (a leading `-` means "optional"; paths with systemd
/// specifiers such as `%i` cannot be resolved without an instance and are skipped).
fn collect_environment_files(
    sysroot: &Sysroot,
    path: &Path,
    shown: &str,
    out: &mut BTreeMap<String, String>,
) {
    let Ok(bytes) = sysroot.read(path) else {
        return;
    };
    let unit = Path::new(shown)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.to_string());
    for line in String::from_utf8_lossy(&bytes).lines() {
        let Some(value) = line.trim().strip_prefix("EnvironmentFile=") else {
            continue;
        };
        for target in value.split_whitespace() {
            let target = target.trim_start_matches('-').trim_matches('"');
            if target.starts_with('/') && !target.contains('%') {
                out.entry(target.to_string())
                    .or_insert_with(|| unit.clone());
            }
        }
    }
}

/// What is known about the host's instance role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceRole {
    Attached(String),
    None(String),
    Unknown(String),
}

/// The instance role of a live host: what IMDS answered this run (`iam/info`), else what cloud-init
/// recorded when it crawled IMDS at boot. An image (`live` false) has none until it is launched.
pub fn instance_role(sysroot: &Sysroot, live: bool, imds: Option<&ImdsFacts>) -> InstanceRole {
    const PATH: &str = "/run/cloud-init/instance-data.json";
    if !live {
        return InstanceRole::Unknown(
            "offline image: an image has no instance role until it is launched".into(),
        );
    }
    if let Some(imds) = imds {
        match &imds.instance_profile {
            Fetched::Found(profile) => return InstanceRole::Attached(profile.arn.clone()),
            Fetched::Absent => {
                return InstanceRole::None(format!(
                    "IMDS at {}: no instance profile attached (iam/info 404)",
                    imds.endpoint
                ))
            }
            Fetched::NotRead | Fetched::Error { .. } => {}
        }
    }
    let bytes = match sysroot.read(PATH) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return InstanceRole::Unknown(format!(
                "no {PATH}: cloud-init did not record IMDS data on this host"
            ))
        }
        Err(e) => return InstanceRole::Unknown(format!("cannot read {PATH}: {e}")),
    };
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return InstanceRole::Unknown(format!("{PATH}: not JSON: {e}")),
    };
    let meta = json
        .pointer("/ds/meta_data")
        .or_else(|| json.pointer("/ds/meta-data"));
    let Some(meta) = meta else {
        return InstanceRole::Unknown(format!("{PATH} has no ds.meta_data: not an EC2 datasource"));
    };
    match meta
        .pointer("/iam/info/InstanceProfileArn")
        .and_then(|v| v.as_str())
    {
        Some(arn) => InstanceRole::Attached(arn.to_string()),
        None => InstanceRole::None(format!(
            "{PATH}: no instance profile when cloud-init crawled IMDS at boot"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET_VALUE: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn hits(text: &[u8]) -> Vec<Hit> {
        scan_stream(text, MAX_SCAN_BYTES).unwrap().0
    }

    #[test]
    fn key_ids_follow_aws_syntax() {
        let text = format!(
            "a={KEY}\nASIAIOSFODNN7EXAMPLE\nXAKIAIOSFODNN7EXAMPLE\nAKIAIOSFODNN7EXAMPLEX\nAKIAiosfodnn7example\nAKIAIOSFODNN8EXAMPLE\n\"{KEY}\",\n"
        );
        let h = hits(text.as_bytes());
        assert_eq!(
            h.iter().map(|h| (h.line, h.kind)).collect::<Vec<_>>(),
            vec![
                (1, HitKind::LongTermKeyId),
                (2, HitKind::TemporaryKeyId),
                (7, HitKind::LongTermKeyId)
            ],
            "embedded in a word, lowercase and the non-base32 digit 8 are not key ids"
        );
        assert_eq!(h[0].shown, "AKIA****MPLE");
    }

    #[test]
    fn secret_assignments_in_every_syntax_never_shown() {
        let text = format!(
            "[default]\r\naws_secret_access_key = {SECRET_VALUE}\r\nexport AWS_SECRET_ACCESS_KEY=\"{SECRET_VALUE}\"\n  aws_secret_access_key: '{SECRET_VALUE}'\n{{\"aws_secret_access_key\": \"{SECRET_VALUE}\"}}\naws_secret_access_key = ${{SECRET}}\naws_secret_access_key = {SECRET_VALUE}MORE\n"
        );
        let h = hits(text.as_bytes());
        assert_eq!(
            h.iter().map(|h| h.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
        assert!(h.iter().all(|h| !h.shown.contains("wJalr")));
    }

    #[test]
    fn very_long_lines_and_binary_are_scanned_in_windows() {
        let mut data = vec![0u8, 159, 146, 150, 255];
        data.extend(std::iter::repeat_n(b'x', WINDOW * 3 - 7));
        data.push(b' ');
        data.extend(KEY.as_bytes()); // straddles a window boundary
        data.push(0);
        data.extend(std::iter::repeat_n(b'y', WINDOW * 2));
        data.extend(b"\n\xffsecond line ");
        data.extend(KEY.as_bytes());
        let h = hits(&data);
        assert_eq!(
            h.iter().map(|h| (h.line, h.kind)).collect::<Vec<_>>(),
            vec![(1, HitKind::LongTermKeyId), (2, HitKind::LongTermKeyId)]
        );
    }

    #[test]
    fn reading_stops_at_the_limit() {
        let mut data = vec![b' '; 100];
        data.extend(KEY.as_bytes());
        let (h, truncated) = scan_stream(&data[..], 50).unwrap();
        assert!(truncated && h.is_empty());
        let (h, truncated) = scan_stream(&data[..], 1000).unwrap();
        assert!(!truncated && h.len() == 1);
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_key_id(KEY), "AKIA****MPLE");
        assert_eq!(redact_key_id("short"), "****");
    }
}
