//! apt's cached metadata in `/var/lib/apt/lists`: which security updates the host's own indexes
//! offer for what is installed, and how old those indexes are.
//!
//! Each `…_Packages` index (plain or `.lz4`/`.gz`/`.xz` compressed, as `Acquire::GzipIndexes` and
//! friends leave them) belongs to the `…_InRelease` (or `…_Release`) file whose name is its
//! prefix and which lists it. Whether an index is a *security* origin is decided by that Release
//! file's own fields — `Label: Debian-Security`, or a `Suite`/`Codename` ending in `-security`
//! (Ubuntu's `jammy-security`) — never by guessing from file names. Only security indexes are
//! decompressed and parsed (the full Debian `main` index is tens of megabytes and says nothing
//! about security), and only the entries of installed `name:arch` pairs are kept.
//!
//! A package has a missing security update when a security index carries a version of the same
//! name and architecture that is newer than the installed one — what `apt list --upgradable`
//! shows when the security sources are the only ones configured.

use std::collections::HashMap;
use std::io::Read;

use jiff::Timestamp;

use super::deb822::paragraphs;
use super::debversion::DebVersion;
use super::{Inventory, MetadataSource, PackageError, SecurityUpdate, UpdateMetadata};
use crate::sysroot::{EntryType, Sysroot};

pub const LISTS: &str = "/var/lib/apt/lists";

/// Most bytes a decompressed index may have (the full Debian `main` index is about 70 MB).
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// The fields of a Release/InRelease file we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// In-root path of the file.
    pub path: String,
    /// File-name prefix its indexes share (`deb.debian.org_debian-security_dists_bookworm-security_`).
    pub prefix: String,
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
    pub date: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// Index paths the Release lists (`main/binary-amd64/Packages`, compression suffix removed).
    pub files: Vec<String>,
}

impl Release {
    /// Parses a Release or InRelease (clear-signed) file.
    pub fn parse(path: &str, prefix: &str, text: &str) -> Result<Release, PackageError> {
        let body = strip_clearsign(text);
        let mut rel = Release {
            path: path.to_string(),
            prefix: prefix.to_string(),
            ..Release::default()
        };
        let mut first = true;
        let mut error = None;
        paragraphs(body, |p| {
            if !first {
                return;
            }
            first = false;
            let field = |name| p.get(name).unwrap_or("").to_string();
            rel.origin = field("Origin");
            rel.label = field("Label");
            rel.suite = field("Suite");
            rel.codename = field("Codename");
            for (name, slot) in [
                ("Date", &mut rel.date),
                ("Valid-Until", &mut rel.valid_until),
            ] {
                if let Some(value) = p.get(name) {
                    match parse_date(value) {
                        Some(t) => *slot = Some(t),
                        None => error = Some(format!("{name} `{value}` is not an RFC 2822 date")),
                    }
                }
            }
        });
        if let Some(message) = error {
            return Err(PackageError::format(path, message));
        }
        if first {
            return Err(PackageError::format(path, "empty Release file"));
        }
        for line in body.lines().filter(|l| l.starts_with(' ')) {
            // ` <hash> <size> <path>` in the MD5Sum/SHA256 lists
            let mut words = line.split_whitespace();
            if let (Some(_), Some(_), Some(file), None) =
                (words.next(), words.next(), words.next(), words.next())
            {
                let file = strip_compression(file).0;
                if !rel.files.iter().any(|f| f == file) {
                    rel.files.push(file.to_string());
                }
            }
        }
        Ok(rel)
    }

    /// Security origin: Debian's security archive, or a `*-security` suite (Ubuntu, ESM).
    pub fn is_security(&self) -> bool {
        self.label == "Debian-Security"
            || self.suite.ends_with("-security")
            || self.codename.ends_with("-security")
    }

    /// `Debian-Security bookworm-security`: what the origin is called in messages.
    pub fn describe(&self) -> String {
        let suite = if self.codename.is_empty() {
            &self.suite
        } else {
            &self.codename
        };
        let label = if self.label.is_empty() {
            &self.origin
        } else {
            &self.label
        };
        format!("{label} {suite}").trim().to_string()
    }
}

/// The signed text of a clear-signed (`InRelease`) file, or the text itself.
fn strip_clearsign(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return text;
    };
    // armor headers (`Hash: SHA512`) end at the first blank line
    let start = rest
        .find("\n\n")
        .map(|i| i + 2)
        .or_else(|| rest.find("\r\n\r\n").map(|i| i + 4))
        .unwrap_or(rest.len());
    let body = &rest[start..];
    let end = body
        .find("\n-----BEGIN PGP SIGNATURE-----")
        .map(|i| i + 1)
        .unwrap_or(body.len());
    &body[..end]
}

/// RFC 2822 dates as apt writes them (`Sat, 28 Nov 2026 02:53:00 UTC`).
pub fn parse_date(value: &str) -> Option<Timestamp> {
    let value = value.trim();
    let fixed = match value.strip_suffix(" UTC") {
        Some(head) => format!("{head} +0000"),
        None => value.to_string(),
    };
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(&fixed)
        .ok()
}

/// Compression by file suffix: `(name without suffix, suffix)`.
fn strip_compression(name: &str) -> (&str, &str) {
    for ext in [".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return (stem, ext);
        }
    }
    (name, "")
}

/// Reads a whole index from the sysroot, decompressing it by its suffix.
pub fn read_index(sysroot: &Sysroot, path: &str) -> Result<Vec<u8>, PackageError> {
    let file = sysroot.open_file(path)?;
    let (_, ext) = strip_compression(path);
    let bad = |e: std::io::Error| PackageError::format(path, format!("cannot decompress: {e}"));
    let mut out = Vec::new();
    match ext {
        "" => {
            file.take(MAX_INDEX_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| PackageError::format(path, e.to_string()))?;
        }
        ".lz4" => {
            lz4_flex::frame::FrameDecoder::new(std::io::BufReader::new(file))
                .take(MAX_INDEX_BYTES)
                .read_to_end(&mut out)
                .map_err(bad)?;
        }
        ".gz" => {
            flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
                .take(MAX_INDEX_BYTES)
                .read_to_end(&mut out)
                .map_err(bad)?;
        }
        ".xz" => {
            let mut input = std::io::BufReader::new(file);
            let mut capped = Capped(&mut out);
            lzma_rs::xz_decompress(&mut input, &mut capped)
                .map_err(|e| PackageError::format(path, format!("cannot decompress: {e}")))?;
        }
        other => {
            return Err(PackageError::format(
                path,
                format!("{other} compressed indexes are not supported (use lz4, gz or xz)"),
            ))
        }
    }
    if out.len() as u64 >= MAX_INDEX_BYTES {
        return Err(PackageError::format(
            path,
            format!("decompresses to more than {} MiB", MAX_INDEX_BYTES >> 20),
        ));
    }
    Ok(out)
}

/// A writer that refuses to grow past [`MAX_INDEX_BYTES`] (a decompression bomb stops there).
struct Capped<'a>(&'a mut Vec<u8>);

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.0.len() + buf.len()) as u64 > MAX_INDEX_BYTES {
            return Err(std::io::Error::other("output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads apt's lists against the installed packages. `Ok(None)` when there is no lists
/// directory at all (not an apt system, or one whose lists were removed).
pub fn read(sysroot: &Sysroot, inv: &Inventory) -> Result<Option<UpdateMetadata>, PackageError> {
    let entries = match sysroot.read_dir(LISTS) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut meta = UpdateMetadata::new("apt", LISTS);
    let names: Vec<String> = entries
        .into_iter()
        .filter(|e| matches!(e.file_type, EntryType::File | EntryType::Symlink))
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();

    // Release files, InRelease preferred when both are there
    let mut releases: Vec<Release> = Vec::new();
    for name in &names {
        let prefix = match name
            .strip_suffix("InRelease")
            .or_else(|| name.strip_suffix("Release"))
        {
            Some(p) if p.ends_with('_') || p.is_empty() => p,
            _ => continue,
        };
        if name.ends_with("_Release") && names.iter().any(|n| *n == format!("{prefix}InRelease")) {
            continue;
        }
        let path = format!("{LISTS}/{name}");
        let text = match sysroot.read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                meta.problems.push(e.to_string());
                continue;
            }
        };
        match Release::parse(&path, prefix, &text) {
            Ok(r) => releases.push(r),
            Err(e) => meta.problems.push(e.to_string()),
        }
    }

    // installed name -> indexes into inv.packages
    let mut installed: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in inv.packages.iter().enumerate() {
        installed.entry(p.name.as_str()).or_default().push(i);
    }
    let installed_versions: Vec<Option<DebVersion>> = inv
        .packages
        .iter()
        .map(|p| DebVersion::parse(&p.version).ok())
        .collect();
    // best security candidate per installed package: (version, release index, index path)
    let mut best: Vec<Option<(DebVersion, usize, String)>> = vec![None; inv.packages.len()];

    for (ri, rel) in releases.iter().enumerate() {
        let indexes: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&rel.prefix))
            .filter(|n| {
                let (stem, _) = strip_compression(&n[rel.prefix.len()..]);
                stem == "Packages" || stem.ends_with("_Packages")
            })
            .filter(|n| {
                // belongs to this Release, not to a longer-prefixed one
                !releases
                    .iter()
                    .any(|o| o.prefix.len() > rel.prefix.len() && n.starts_with(&o.prefix))
            })
            .collect();
        meta.sources.push(MetadataSource {
            name: rel.describe(),
            path: rel.path.clone(),
            security: rel.is_security(),
            date: rel.date,
            valid_until: rel.valid_until,
            indexes: indexes.iter().map(|n| format!("{LISTS}/{n}")).collect(),
        });
        if !rel.is_security() {
            continue;
        }
        for name in indexes {
            let path = format!("{LISTS}/{name}");
            let rel_path = strip_compression(&name[rel.prefix.len()..])
                .0
                .replace('_', "/");
            if !rel.files.is_empty() && !rel.files.contains(&rel_path) {
                meta.problems.push(format!(
                    "{path}: not listed in {} (expected {rel_path} there); ignored",
                    rel.path
                ));
                continue;
            }
            let bytes = match read_index(sysroot, &path) {
                Ok(b) => b,
                Err(e) => {
                    meta.problems.push(e.to_string());
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&bytes);
            let bad = paragraphs(&text, |p| {
                let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) else {
                    return;
                };
                let Some(candidates) = installed.get(name) else {
                    return;
                };
                let arch = p.get("Architecture").unwrap_or("");
                for &i in candidates {
                    if inv.packages[i].arch != arch {
                        continue;
                    }
                    let Ok(v) = DebVersion::parse(version) else {
                        continue;
                    };
                    if best[i].as_ref().is_none_or(|(b, _, _)| v > *b) {
                        best[i] = Some((v, ri, path.clone()));
                    }
                }
            });
            meta.problems.extend(
                bad.into_iter()
                    .take(5)
                    .map(|m| format!("{path}:{}: not a field: `{}`", m.line, m.text)),
            );
        }
    }

    for (i, slot) in best.into_iter().enumerate() {
        let (Some((candidate, ri, index)), Some(current)) = (slot, &installed_versions[i]) else {
            continue;
        };
        if candidate > *current {
            let p = &inv.packages[i];
            meta.updates.push(SecurityUpdate {
                name: p.name.clone(),
                arch: p.arch.clone(),
                installed: p.version.clone(),
                fixed: candidate.as_str().to_string(),
                advisory: None,
                severity: None,
                cves: Vec::new(),
                origin: releases[ri].describe(),
                index,
            });
        }
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inrelease_fields_and_listed_files() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n\
            Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\n\
            Codename: bookworm-security\nDate: Sat, 28 Nov 2026 02:53:00 UTC\n\
            Valid-Until: Sat, 05 Dec 2026 02:53:00 UTC\nSHA256:\n \
            0123 774128 main/binary-amd64/Packages.lz4\n 4567 3000000 main/binary-amd64/Packages\n\
            -----BEGIN PGP SIGNATURE-----\n\nwsG7BAEBCgAvFiEE\n-----END PGP SIGNATURE-----\n";
        let r = Release::parse("/x_InRelease", "x_", text).unwrap();
        assert!(r.is_security());
        assert_eq!(r.describe(), "Debian-Security bookworm-security");
        assert_eq!(r.date.unwrap().to_string(), "2026-11-28T02:53:00Z");
        assert_eq!(r.valid_until.unwrap().to_string(), "2026-12-05T02:53:00Z");
        assert_eq!(r.files, vec!["main/binary-amd64/Packages"]);
    }

    #[test]
    fn origins_come_from_release_fields() {
        let rel = |label: &str, suite: &str| Release {
            label: label.into(),
            suite: suite.into(),
            ..Release::default()
        };
        assert!(rel("Ubuntu", "jammy-security").is_security());
        assert!(rel("Debian-Security", "stable-security").is_security());
        assert!(!rel("Debian", "oldstable").is_security());
        assert!(!rel("Ubuntu", "jammy-updates").is_security());
        // a name that merely says "security" is not a security origin
        assert!(!rel("security-tools", "stable").is_security());
    }

    #[test]
    fn bad_dates_are_errors_naming_the_file() {
        let e = Release::parse("/l/x_Release", "x_", "Origin: X\nDate: yesterday\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/l/x_Release: Date `yesterday` is not an RFC 2822 date"
        );
        assert_eq!(
            parse_date("Thu, 01 Jan 1970 00:00:00 +0000").unwrap(),
            Timestamp::UNIX_EPOCH
        );
    }
}
