//! A read-only reader of the Berkeley DB *hash* databases rpm 4.11 keeps on Amazon Linux 2 and
//! RHEL 7 (`/var/lib/rpm/Packages`: key = a 4-byte header number, data = the RPM header blob), so
//! those hosts and their images are read without rpm, librpm or libdb.
//!
//! The file is a sequence of pages of one size. Page 0 is the hash metadata page (magic
//! `0x061561`, version, page size, last page number, in the byte order of the machine that
//! wrote it). Hash pages (`P_HASH`, `P_HASH_UNSORTED`) hold an index of item offsets after a
//! 26-byte page header; items pair up as key, data. A small item is stored in place
//! (`H_KEYDATA`: a type byte then the bytes); a large one (`H_OFFPAGE`) names the first page and
//! total length of a chain of overflow pages (`P_OVERFLOW`: the bytes on each page in its
//! `hf_offset` field, the next page in `next_pgno`). As rpm's own `bdb_ro` backend and other
//! read-only readers do, every page is visited in order rather than following the bucket
//! layout: the records are the same, and no hash function is needed.
//!
//! Nothing here trusts the file: offsets, lengths and page numbers are checked against the page
//! and the file, overflow chains are followed at most once per page (a loop is reported, never
//! followed forever), and damage is an error naming the file (a damaged metadata page, a file
//! shorter than its metadata says) or a problem naming the file and page (one bad record: the
//! others are still read).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::PackageError;

/// `DB_HASHMAGIC`.
pub const HASH_MAGIC: u32 = 0x0006_1561;

const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;

/// `SIZEOF_PAGE`: lsn, pgno, prev, next, entries, hf_offset, level, type.
const PAGE_HEADER: usize = 26;
/// `DBMETA_CHKSUM`: pages carry a checksum after the header (`PG_CHKSUM`, 6 more bytes).
const META_CHKSUM: u8 = 0x01;

/// The largest record we assemble from an overflow chain (rpm headers are far smaller).
const MAX_RECORD: usize = 64 << 20;
/// The largest database file read.
const MAX_FILE: u64 = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes(s),
            ByteOrder::Big => u32::from_be_bytes(s),
        })
    }

    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u16::from_le_bytes(s),
            ByteOrder::Big => u16::from_be_bytes(s),
        })
    }
}

/// One key/data pair of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub data: Vec<u8>,
    /// The hash page the pair's index entry is on (for messages).
    pub page: u32,
}

/// The records of a hash database, and the records that could not be read.
#[derive(Debug, Clone)]
pub struct HashDb {
    pub order: ByteOrder,
    pub page_size: usize,
    pub records: Vec<Record>,
    /// Damage, each naming the file and page; the other records are in `records`.
    pub problems: Vec<String>,
}

impl HashDb {
    /// A 4-byte key as the number the writer stored (rpm's header number, in its byte order).
    pub fn key_u32(&self, key: &[u8]) -> Option<u32> {
        (key.len() == 4).then(|| self.order.u32(key, 0)).flatten()
    }
}

/// Reads every key/data pair of the Berkeley DB hash database `file` (`path` as the audited
/// system names it, for messages).
pub fn read_hash(file: &File, path: &str) -> Result<HashDb, PackageError> {
    let bad = |m: String| PackageError::format(path, m);
    let len = file
        .metadata()
        .map_err(|e| bad(format!("cannot stat: {e}")))?
        .len();
    let mut meta = [0u8; 512];
    read_at(file, &mut meta, 0).map_err(|e| {
        bad(format!(
            "not a Berkeley DB file: cannot read its 512-byte metadata page ({len} bytes: {e})"
        ))
    })?;
    let order = match (
        ByteOrder::Little.u32(&meta, 12),
        ByteOrder::Big.u32(&meta, 12),
    ) {
        (Some(HASH_MAGIC), _) => ByteOrder::Little,
        (_, Some(HASH_MAGIC)) => ByteOrder::Big,
        (Some(m), _) => {
            return Err(bad(format!(
                "not a Berkeley DB hash database: magic {m:#x}, expected {HASH_MAGIC:#x}"
            )))
        }
        _ => unreachable!("the metadata buffer has 512 bytes"),
    };
    let field = |at| order.u32(&meta, at).unwrap_or(0);
    let version = field(16);
    if !(8..=10).contains(&version) {
        return Err(bad(format!(
            "Berkeley DB hash version {version} is not supported (expected 8 to 10, Berkeley DB 4.x-6.x)"
        )));
    }
    let page_size = field(20) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(bad(format!(
            "page size {page_size} in the metadata is not a power of two from 512 to 65536"
        )));
    }
    let (encrypt, page_type, meta_flags) = (meta[24], meta[25], meta[26]);
    if page_type != P_HASHMETA {
        return Err(bad(format!(
            "page 0 has type {page_type}, expected the hash metadata page ({P_HASHMETA})"
        )));
    }
    if encrypt != 0 {
        return Err(bad("the database is encrypted; it cannot be read".into()));
    }
    let overhead = if meta_flags & META_CHKSUM != 0 {
        PAGE_HEADER + 6
    } else {
        PAGE_HEADER
    };
    let last_pgno = field(32);
    let need = (u64::from(last_pgno) + 1) * page_size as u64;
    if need > MAX_FILE {
        return Err(bad(format!(
            "the metadata claims {} pages of {page_size} bytes ({need} bytes), more than this reader accepts",
            u64::from(last_pgno) + 1
        )));
    }
    if len < need {
        return Err(bad(format!(
            "truncated: the metadata says the last page is {last_pgno} ({need} bytes with {page_size}-byte pages) but the file has {len} bytes"
        )));
    }
    let mut bytes = vec![0u8; need as usize];
    read_at(file, &mut bytes, 0).map_err(|e| bad(format!("cannot read: {e}")))?;
    let db = Pages {
        bytes: &bytes,
        order,
        page_size,
        overhead,
        last_pgno,
    };
    let mut out = HashDb {
        order,
        page_size,
        records: Vec::new(),
        problems: Vec::new(),
    };
    for pgno in 1..=last_pgno {
        let page = db.page(pgno);
        if !matches!(page[25], P_HASH | P_HASH_UNSORTED) {
            continue; // overflow, free, bitmap or never-written pages
        }
        if let Err(e) = db.hash_page(pgno, &mut out.records) {
            out.problems.push(format!("{path}: page {pgno}: {e}"));
        }
    }
    Ok(out)
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

struct Pages<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
    page_size: usize,
    overhead: usize,
    last_pgno: u32,
}

impl Pages<'_> {
    /// Page `pgno`; callers check `pgno <= last_pgno`.
    fn page(&self, pgno: u32) -> &[u8] {
        let at = pgno as usize * self.page_size;
        &self.bytes[at..at + self.page_size]
    }

    /// The pairs of one hash page, appended to `records`; a damaged pair ends the page.
    fn hash_page(&self, pgno: u32, records: &mut Vec<Record>) -> Result<(), String> {
        let page = self.page(pgno);
        let entries = self.order.u16(page, 20).unwrap_or(0) as usize;
        let index_end = self.overhead + 2 * entries;
        if index_end > self.page_size {
            return Err(format!(
                "{entries} index entries do not fit a {}-byte page",
                self.page_size
            ));
        }
        if entries % 2 != 0 {
            return Err(format!(
                "{entries} index entries: keys and data must pair up"
            ));
        }
        let item = |i: usize| -> Result<&[u8], String> {
            let at = self.order.u16(page, self.overhead + 2 * i).unwrap_or(0) as usize;
            let end = if i == 0 {
                self.page_size
            } else {
                self.order
                    .u16(page, self.overhead + 2 * (i - 1))
                    .unwrap_or(0) as usize
            };
            if at < index_end || at >= end || end > self.page_size {
                return Err(format!(
                    "item {i} at offset {at}..{end} is outside the page's data area ({index_end}..{})",
                    self.page_size
                ));
            }
            Ok(&page[at..end])
        };
        for pair in 0..entries / 2 {
            let key = self
                .value(item(2 * pair)?)
                .map_err(|e| format!("key {pair}: {e}"))?;
            let data = self
                .value(item(2 * pair + 1)?)
                .map_err(|e| format!("data of key {pair}: {e}"))?;
            records.push(Record {
                key,
                data,
                page: pgno,
            });
        }
        Ok(())
    }

    /// The bytes an item stands for: in place, or gathered from its overflow chain.
    fn value(&self, item: &[u8]) -> Result<Vec<u8>, String> {
        match item[0] {
            H_KEYDATA => Ok(item[1..].to_vec()),
            H_OFFPAGE => {
                let (Some(first), Some(total)) = (self.order.u32(item, 4), self.order.u32(item, 8))
                else {
                    return Err(format!(
                        "off-page item of {} bytes, expected 12",
                        item.len()
                    ));
                };
                self.overflow(first, total as usize)
            }
            H_DUPLICATE | H_OFFDUP => {
                Err("duplicate data items, which an rpm Packages database never has".into())
            }
            t => Err(format!("unknown item type {t}")),
        }
    }

    /// Follows an overflow chain from `pgno` for `total` bytes.
    fn overflow(&self, mut pgno: u32, total: usize) -> Result<Vec<u8>, String> {
        if total > MAX_RECORD || total > self.bytes.len() {
            return Err(format!(
                "an off-page item claims {total} bytes, more than the file could hold"
            ));
        }
        let mut out = Vec::with_capacity(total);
        let mut visited = 0u32;
        while out.len() < total {
            if pgno == 0 || pgno > self.last_pgno {
                return Err(format!(
                    "overflow chain ends at page {pgno} after {} of {total} bytes (pages are 1..={})",
                    out.len(),
                    self.last_pgno
                ));
            }
            visited += 1;
            if visited > self.last_pgno {
                return Err(format!(
                    "overflow chain loops: {visited} pages followed in a {}-page file",
                    self.last_pgno + 1
                ));
            }
            let page = self.page(pgno);
            if page[25] != P_OVERFLOW {
                return Err(format!(
                    "overflow chain reaches page {pgno} of type {}, expected an overflow page ({P_OVERFLOW})",
                    page[25]
                ));
            }
            let here = self.order.u16(page, 22).unwrap_or(0) as usize;
            let Some(chunk) = page.get(self.overhead..self.overhead + here) else {
                return Err(format!(
                    "overflow page {pgno} claims {here} bytes, more than a {}-byte page holds",
                    self.page_size
                ));
            };
            if here == 0 || out.len() + here > total {
                return Err(format!(
                    "overflow page {pgno} holds {here} bytes where {} of the item's {total} remain",
                    total - out.len()
                ));
            }
            out.extend_from_slice(chunk);
            pgno = self.order.u32(page, 16).unwrap_or(0);
        }
        if pgno != 0 {
            return Err(format!(
                "overflow chain goes on to page {pgno} after the item's {total} bytes"
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn meta(magic: u32, version: u32, page_size: u32, last: u32) -> tempfile::NamedTempFile {
        let mut page = vec![0u8; 512];
        page[12..16].copy_from_slice(&magic.to_le_bytes());
        page[16..20].copy_from_slice(&version.to_le_bytes());
        page[20..24].copy_from_slice(&page_size.to_le_bytes());
        page[25] = P_HASHMETA;
        page[32..36].copy_from_slice(&last.to_le_bytes());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&page).unwrap();
        f
    }

    fn error(f: &tempfile::NamedTempFile) -> String {
        read_hash(f.as_file(), "/var/lib/rpm/Packages")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_metadata_page_is_checked_before_anything_is_read() {
        let e = error(&meta(0x053162, 9, 512, 0));
        assert_eq!(
            e,
            "/var/lib/rpm/Packages: not a Berkeley DB hash database: magic 0x53162, expected 0x61561"
        );
        assert!(error(&meta(HASH_MAGIC, 7, 512, 0)).contains("hash version 7"));
        assert!(error(&meta(HASH_MAGIC, 9, 1000, 0)).contains("page size 1000"));
        let e = error(&meta(HASH_MAGIC, 9, 512, 3));
        assert!(e.contains("truncated") && e.contains("2048 bytes"), "{e}");
        // an empty but valid database: the metadata page only
        let f = meta(HASH_MAGIC, 9, 512, 0);
        let db = read_hash(f.as_file(), "/x").unwrap();
        assert!(db.records.is_empty() && db.problems.is_empty());
        assert_eq!(db.order, ByteOrder::Little);
    }
}
