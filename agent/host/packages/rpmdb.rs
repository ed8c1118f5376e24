//! The rpm database of installed packages, read without rpm: `rpmdb.sqlite` (Amazon Linux 2023,
//! RHEL 9, Fedora) holds one row per package in table `Packages`, whose `blob` is the package's
//! RPM header — a big-endian index (`il` entries of tag, type, offset, count) followed by a data
//! store of `dl` bytes. We take NAME, EPOCH, VERSION, RELEASE, ARCH, INSTALLTIME and SOURCERPM
//! from it, checking every count and offset, so a damaged row is reported, never a panic.
//!
//! The database file is opened through the sysroot and handed to SQLite as `/proc/self/fd/N`,
//! read-only and `immutable` (no locks, no journal: we never write, and the fd was resolved inside
//! the root). Amazon Linux 2's Berkeley DB `Packages` holds the same header blobs, keyed by header
//! number, in a hash database read by [`super::bdb`]. [`visit_headers`] hands each header blob to
//! other readers too: [`super::owners`] takes the file lists from them.

use std::os::fd::AsRawFd;

use super::rpmheader::{HeaderBuilder, RawHeader};
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

/// Parses an RPM header blob as rpmdb stores it (no lead, no magic: `il`, `dl`, index, store).
pub fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let raw = RawHeader::parse(blob)?;
    let text = |tag| raw.string(tag).map(Option::unwrap_or_default);
    let h = Header {
        name: text(TAG_NAME)?,
        version: text(TAG_VERSION)?,
        release: text(TAG_RELEASE)?,
        arch: text(TAG_ARCH)?,
        source_rpm: raw.string(TAG_SOURCERPM)?,
        epoch: raw.int32(TAG_EPOCH)?.map(u64::from),
        install_time: raw.int32(TAG_INSTALLTIME)?.map(i64::from),
    };
    if h.name.is_empty() || h.version.is_empty() {
        return Err("header has no NAME or VERSION".into());
    }
    Ok(h)
}

/// The rpm database of the sysroot, newest layout first; `None` when it has none.
pub fn locate(sysroot: &Sysroot) -> Option<&'static str> {
    SQLITE_PATHS
        .iter()
        .copied()
        .find(|p| sysroot.exists(p))
        .or_else(|| sysroot.exists(BDB_PATH).then_some(BDB_PATH))
}

/// One header of the database as [`visit_headers`] hands it over.
pub struct Record<'a> {
    /// Which record it is, for messages: `package row 7`, `header 12 (page 3)`.
    pub what: String,
    pub blob: &'a [u8],
}

/// Calls `visit` with every package header of the rpm database at `path` (one of [`locate`]'s),
/// in the database's order. Returns the records that could not be read at all, each named; an
/// unreadable database is an error.
pub fn visit_headers(
    sysroot: &Sysroot,
    path: &str,
    visit: &mut dyn FnMut(Record<'_>),
) -> Result<Vec<String>, PackageError> {
    let file = sysroot.open_file(path)?;
    if path == BDB_PATH {
        let db = super::bdb::read_hash(&file, BDB_PATH)?;
        let mut problems = db.problems.clone();
        for rec in &db.records {
            let Some(hnum) = db.key_u32(&rec.key) else {
                problems.push(format!(
                    "{BDB_PATH}: page {}: a {}-byte key, expected a 4-byte header number",
                    rec.page,
                    rec.key.len()
                ));
                continue;
            };
            // header number 0 is rpm's counter of the next number
            if hnum != 0 {
                visit(Record {
                    what: format!("header {hnum} (page {})", rec.page),
                    blob: &rec.data,
                });
            }
        }
        return Ok(problems);
    }
    let uri = format!("file:/proc/self/fd/{}?immutable=1", file.as_raw_fd());
    let sql = |e: rusqlite::Error| PackageError::format(path, e.to_string());
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
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(sql)?;
    for row in rows {
        let (hnum, blob) = row.map_err(sql)?;
        visit(Record {
            what: format!("package row {hnum}"),
            blob: &blob,
        });
    }
    drop(file);
    Ok(Vec::new())
}

/// Reads the rpm database; `Ok(None)` when the sysroot has none.
pub fn read(sysroot: &Sysroot) -> Result<Option<Inventory>, PackageError> {
    let Some(path) = locate(sysroot) else {
        return Ok(None);
    };
    let mut inv = Inventory::new(PackageFormat::Rpm, path);
    inv.modified = sysroot.metadata(path).ok().and_then(|m| m.modified().ok());
    let problems = visit_headers(sysroot, path, &mut |rec| add_header(&mut inv, &rec))?;
    inv.problems.splice(0..0, problems);
    inv.packages
        .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    if path == BDB_PATH && inv.packages.is_empty() && !inv.problems.is_empty() {
        return Err(PackageError::format(BDB_PATH, inv.problems.join("; ")));
    }
    Ok(Some(inv))
}

/// Adds the package of one header blob to the inventory, or its damage to the problems.
fn add_header(inv: &mut Inventory, rec: &Record<'_>) {
    match parse_header(rec.blob) {
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
            .push(format!("{}: {}: {e}", inv.path, rec.what)),
    }
}

/// Builds a header blob (for tests and fixtures): int32 tags, then string tags, in the given order.
pub fn build_header(strings: &[(u32, &str)], ints: &[(u32, u32)]) -> Vec<u8> {
    let mut b = HeaderBuilder::new();
    for (tag, value) in ints {
        b = b.int32(*tag, &[*value]);
    }
    for (tag, value) in strings {
        b = b.string(*tag, value);
    }
    b.build()
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
