//! The rpm database of installed packages, read without rpm: `rpmdb.sqlite` (Amazon Linux 2023,
//! RHEL 9, Fedora) holds one row per package in table `Packages`, whose `blob` is the package's
//! RPM header — a big-endian index (`il` entries of tag, type, offset, count) followed by a data
//! store of `dl` bytes. We take NAME, EPOCH, VERSION, RELEASE, ARCH, INSTALLTIME and SOURCERPM
//! from it, checking every count and offset, so a damaged row is reported, never a panic.
//!
//! The database file is opened through the sysroot and handed to SQLite as `/proc/self/fd/N`,
//! read-only and `immutable` (no locks, no journal: we never write, and the fd was resolved inside
//! the root). Amazon Linux 2's Berkeley DB `Packages` holds the same header blobs, keyed by header
//! number, in a hash database read by [`super::bdb`].

use std::os::fd::AsRawFd;

use super::rpmversion::format_evr;
use super::{Installed, Inventory, PackageError, PackageFormat};
use crate::sysroot::Sysroot;

/// Where rpm keeps its database, newest layout first.
pub const SQLITE_PATHS: &[&str] = &[
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/rpmdb.sqlite",
];

/// Amazon Linux 2 / RHEL 7's Berkeley DB database.
pub const BDB_PATH: &str = "/var/lib/rpm/Packages";

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_INSTALLTIME: u32 = 1008;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The header fields we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub epoch: Option<u64>,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub install_time: Option<i64>,
    pub source_rpm: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses an RPM header blob as rpmdb stores it (no lead, no magic: `il`, `dl`, index, store).
pub fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let il = be32(blob, 0).ok_or("header shorter than 8 bytes")? as usize;
    let dl = be32(blob, 4).ok_or("header shorter than 8 bytes")? as usize;
    if il == 0 || il > 0xffff {
        return Err(format!("header index count {il} is out of range"));
    }
    if dl > 256 << 20 {
        return Err(format!("header data length {dl} is out of range"));
    }
    let store_at = 8 + il * 16;
    if blob.len() < store_at + dl {
        return Err(format!(
            "header claims {il} index entries and {dl} data bytes but the blob has {} bytes",
            blob.len()
        ));
    }
    let store = &blob[store_at..store_at + dl];
    let mut h = Header::default();
    for i in 0..il {
        let e = 8 + i * 16;
        let (tag, ty, off, count) = (
            be32(blob, e).unwrap_or(0),
            be32(blob, e + 4).unwrap_or(0),
            be32(blob, e + 8).unwrap_or(0) as usize,
            be32(blob, e + 12).unwrap_or(0) as usize,
        );
        let string = || -> Result<String, String> {
            if ty != TYPE_STRING && ty != TYPE_I18NSTRING {
                return Err(format!("tag {tag} has type {ty}, expected a string"));
            }
            let bytes = store
                .get(off..)
                .ok_or_else(|| format!("tag {tag} offset {off} is past the data ({dl} bytes)"))?;
            let end = bytes
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("tag {tag} string is not terminated"))?;
            Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
        };
        let int32 = || -> Result<u32, String> {
            if ty != TYPE_INT32 || count == 0 {
                return Err(format!(
                    "tag {tag} has type {ty} count {count}, expected int32"
                ));
            }
            be32(store, off)
                .ok_or_else(|| format!("tag {tag} offset {off} is past the data ({dl} bytes)"))
        };
        match tag {
            TAG_NAME => h.name = string()?,
            TAG_VERSION => h.version = string()?,
            TAG_RELEASE => h.release = string()?,
            TAG_ARCH => h.arch = string()?,
            TAG_SOURCERPM => h.source_rpm = Some(string()?),
            TAG_EPOCH => h.epoch = Some(u64::from(int32()?)),
            TAG_INSTALLTIME => h.install_time = Some(i64::from(int32()?)),
            _ => {}
        }
    }
    if h.name.is_empty() || h.version.is_empty() {
        return Err("header has no NAME or VERSION".into());
    }
    Ok(h)
}

/// Reads the rpm database; `Ok(None)` when the sysroot has none.
pub fn read(sysroot: &Sysroot) -> Result<Option<Inventory>, PackageError> {
    let Some(path) = SQLITE_PATHS.iter().find(|p| sysroot.exists(p)) else {
        if sysroot.exists(BDB_PATH) {
            return read_bdb(sysroot).map(Some);
        }
        return Ok(None);
    };
    let file = sysroot.open_file(path)?;
    let modified = file.metadata().ok().and_then(|m| m.modified().ok());
    let uri = format!("file:/proc/self/fd/{}?immutable=1", file.as_raw_fd());
    let sql = |e: rusqlite::Error| PackageError::format(*path, e.to_string());
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut inv = Inventory::new(PackageFormat::Rpm, path);
    inv.modified = modified;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(sql)?;
    for row in rows {
        let (hnum, blob) = row.map_err(sql)?;
        add_header(&mut inv, &blob, || format!("package row {hnum}"));
    }
    drop(file);
    inv.packages
        .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(Some(inv))
}

/// Adds the package of one header blob to the inventory, or its damage to the problems.
fn add_header(inv: &mut Inventory, blob: &[u8], record: impl Fn() -> String) {
    match parse_header(blob) {
        Ok(h) => {
            if h.name == "gpg-pubkey" {
                return; // imported signing keys, not software
            }
            inv.packages.push(Installed {
                version: format_evr(h.epoch, &h.version, &h.release),
                name: h.name,
                arch: h.arch,
                source: h.source_rpm,
                install_time: h.install_time,
            });
        }
        Err(e) => inv
            .problems
            .push(format!("{}: {}: {e}", inv.path, record())),
    }
}

/// Reads Amazon Linux 2's Berkeley DB `Packages`: every record but header number 0 (rpm's
/// counter of the next number) is a header blob.
pub fn read_bdb(sysroot: &Sysroot) -> Result<Inventory, PackageError> {
    let file = sysroot.open_file(BDB_PATH)?;
    let modified = file.metadata().ok().and_then(|m| m.modified().ok());
    let db = super::bdb::read_hash(&file, BDB_PATH)?;
    let mut inv = Inventory::new(PackageFormat::Rpm, BDB_PATH);
    inv.modified = modified;
    inv.problems.extend(db.problems.iter().cloned());
    for rec in &db.records {
        let Some(hnum) = db.key_u32(&rec.key) else {
            inv.problems.push(format!(
                "{BDB_PATH}: page {}: a {}-byte key, expected a 4-byte header number",
                rec.page,
                rec.key.len()
            ));
            continue;
        };
        if hnum == 0 {
            continue;
        }
        add_header(&mut inv, &rec.data, || {
            format!("header {hnum} (page {})", rec.page)
        });
    }
    inv.packages
        .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    if inv.packages.is_empty() && !inv.problems.is_empty() {
        return Err(PackageError::format(BDB_PATH, inv.problems.join("; ")));
    }
    Ok(inv)
}

/// Builds a header blob (for tests and fixtures): string and int32 tags, in the given order.
pub fn build_header(strings: &[(u32, &str)], ints: &[(u32, u32)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut store = Vec::new();
    for (tag, value) in ints {
        while store.len() % 4 != 0 {
            store.push(0);
        }
        index.push((*tag, TYPE_INT32, store.len() as u32, 1u32));
        store.extend_from_slice(&value.to_be_bytes());
    }
    for (tag, value) in strings {
        index.push((*tag, TYPE_STRING, store.len() as u32, 1u32));
        store.extend_from_slice(value.as_bytes());
        store.push(0);
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(store.len() as u32).to_be_bytes());
    for (tag, ty, off, count) in index {
        for v in [tag, ty, off, count] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
    }
    blob.extend_from_slice(&store);
    blob
}

/// A header blob for one package (tests and fixtures).
pub fn package_header(
    name: &str,
    epoch: Option<u32>,
    version: &str,
    release: &str,
    arch: &str,
    install_time: u32,
) -> Vec<u8> {
    let mut ints = vec![(TAG_INSTALLTIME, install_time)];
    if let Some(e) = epoch {
        ints.push((TAG_EPOCH, e));
    }
    build_header(
        &[
            (TAG_NAME, name),
            (TAG_VERSION, version),
            (TAG_RELEASE, release),
            (TAG_ARCH, arch),
        ],
        &ints,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_constructed_header() {
        let blob = package_header(
            "openssl-libs",
            Some(1),
            "3.0.8",
            "1.amzn2023.0.14",
            "x86_64",
            1_700_000_000,
        );
        let h = parse_header(&blob).unwrap();
        assert_eq!(
            (
                h.name.as_str(),
                h.epoch,
                h.version.as_str(),
                h.release.as_str(),
                h.arch.as_str(),
                h.install_time
            ),
            (
                "openssl-libs",
                Some(1),
                "3.0.8",
                "1.amzn2023.0.14",
                "x86_64",
                Some(1_700_000_000)
            )
        );
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let good = package_header("bash", None, "5.2.15", "1.amzn2023.0.2", "x86_64", 1);
        // index count larger than the blob
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(parse_header(&bad)
            .unwrap_err()
            .contains("1000 index entries"));
        // zero entries
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&0u32.to_be_bytes());
        assert!(parse_header(&bad).unwrap_err().contains("out of range"));
        // an offset past the store
        let mut bad = good.clone();
        let store_len = u32::from_be_bytes([bad[4], bad[5], bad[6], bad[7]]);
        bad[8 + 16 + 8..8 + 16 + 12].copy_from_slice(&(store_len + 10).to_be_bytes());
        assert!(
            parse_header(&bad).unwrap_err().contains("past the data"),
            "{:?}",
            parse_header(&bad)
        );
        // truncated anywhere: never a panic
        for cut in 0..good.len() {
            let _ = parse_header(&good[..cut]);
        }
        assert!(parse_header(&[]).is_err());
    }
}
