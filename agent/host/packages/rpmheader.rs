//! An RPM header as the rpm database stores it (no lead, no magic): a big-endian count of index
//! entries `il` and of data bytes `dl`, `il` entries of 16 bytes (tag, type, offset into the data,
//! count), then the data store. [`RawHeader`] checks the counts once and then reads a tag's value
//! by its declared type, checking every offset and count against the store, so a damaged header
//! is an error message, never a panic or a huge allocation. [`HeaderBuilder`] writes headers for
//! tests and fixture trees.

/// `RPM_INT16_TYPE`.
pub const TYPE_INT16: u32 = 3;
/// `RPM_INT32_TYPE`.
pub const TYPE_INT32: u32 = 4;
/// `RPM_STRING_TYPE`.
pub const TYPE_STRING: u32 = 6;
/// `RPM_STRING_ARRAY_TYPE`.
pub const TYPE_STRING_ARRAY: u32 = 8;
/// `RPM_I18NSTRING_TYPE`.
pub const TYPE_I18NSTRING: u32 = 9;

/// The most index entries a header may claim (rpm's own limit is 0xffff).
const MAX_ENTRIES: usize = 0xffff;
/// The most data bytes a header may claim.
const MAX_DATA: usize = 256 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    ty: u32,
    off: usize,
    count: usize,
}

/// A parsed header index over its data store.
#[derive(Debug)]
pub struct RawHeader<'a> {
    entries: Vec<Entry>,
    store: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> RawHeader<'a> {
    /// Reads the index of a header blob; the values are checked when a tag is read.
    pub fn parse(blob: &'a [u8]) -> Result<RawHeader<'a>, String> {
        let il = be32(blob, 0).ok_or("header shorter than 8 bytes")? as usize;
        let dl = be32(blob, 4).ok_or("header shorter than 8 bytes")? as usize;
        if il == 0 || il > MAX_ENTRIES {
            return Err(format!("header index count {il} is out of range"));
        }
        if dl > MAX_DATA {
            return Err(format!("header data length {dl} is out of range"));
        }
        let store_at = 8 + il * 16;
        if blob.len() < store_at + dl {
            return Err(format!(
                "header claims {il} index entries and {dl} data bytes but the blob has {} bytes",
                blob.len()
            ));
        }
        let entries = (0..il)
            .map(|i| {
                let e = 8 + i * 16;
                Entry {
                    tag: be32(blob, e).unwrap_or(0),
                    ty: be32(blob, e + 4).unwrap_or(0),
                    off: be32(blob, e + 8).unwrap_or(0) as usize,
                    count: be32(blob, e + 12).unwrap_or(0) as usize,
                }
            })
            .collect();
        Ok(RawHeader {
            entries,
            store: &blob[store_at..store_at + dl],
        })
    }

    /// The first entry of `tag`.
    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().find(|e| e.tag == tag).copied()
    }

    /// The tags of the index, in order.
    pub fn tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.tag)
    }

    fn data(&self, e: Entry) -> Result<&'a [u8], String> {
        self.store.get(e.off..).ok_or_else(|| {
            format!(
                "tag {} offset {} is past the data ({} bytes)",
                e.tag,
                e.off,
                self.store.len()
            )
        })
    }

    /// A `STRING` or `I18NSTRING` tag (for an i18n string, the first translation).
    pub fn string(&self, tag: u32) -> Result<Option<String>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.ty != TYPE_STRING && e.ty != TYPE_I18NSTRING {
            return Err(format!("tag {tag} has type {}, expected a string", e.ty));
        }
        let bytes = self.data(e)?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("tag {tag} string is not terminated"))?;
        Ok(Some(String::from_utf8_lossy(&bytes[..end]).into_owned()))
    }

    /// A `STRING_ARRAY` tag (a `STRING` counts as an array of one), each string without its NUL.
    pub fn strings(&self, tag: u32) -> Result<Option<Vec<&'a [u8]>>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(e.ty, TYPE_STRING_ARRAY | TYPE_STRING | TYPE_I18NSTRING) {
            return Err(format!("tag {tag} has type {}, expected strings", e.ty));
        }
        let mut rest = self.data(e)?;
        // every string takes at least its NUL: a count beyond the data is damage, not a loop
        if e.count > rest.len() {
            return Err(format!(
                "tag {tag} claims {} strings in {} bytes",
                e.count,
                rest.len()
            ));
        }
        let mut out = Vec::with_capacity(e.count);
        for i in 0..e.count {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("tag {tag} string {i} is not terminated"))?;
            out.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        Ok(Some(out))
    }

    /// The values of a numeric tag of type `ty` and `width` bytes, as `u32`.
    fn numbers(&self, tag: u32, ty: u32, width: usize) -> Result<Option<Vec<u32>>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.ty != ty || e.count == 0 {
            return Err(format!(
                "tag {tag} has type {} count {}, expected {}",
                e.ty,
                e.count,
                if ty == TYPE_INT32 { "int32" } else { "int16" }
            ));
        }
        let bytes = self.data(e)?;
        let len = e
            .count
            .checked_mul(width)
            .filter(|len| *len <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "tag {tag} offset {} is past the data ({} bytes)",
                    e.off,
                    self.store.len()
                )
            })?;
        Ok(Some(
            bytes[..len]
                .chunks_exact(width)
                .map(|c| match c {
                    [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                    _ => u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                })
                .collect(),
        ))
    }

    /// The first value of an `INT32` tag.
    pub fn int32(&self, tag: u32) -> Result<Option<u32>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.ty != TYPE_INT32 || e.count == 0 {
            return Err(format!(
                "tag {tag} has type {} count {}, expected int32",
                e.ty, e.count
            ));
        }
        be32(self.store, e.off).map(Some).ok_or_else(|| {
            format!(
                "tag {tag} offset {} is past the data ({} bytes)",
                e.off,
                self.store.len()
            )
        })
    }

    /// Every value of an `INT32` tag.
    pub fn int32s(&self, tag: u32) -> Result<Option<Vec<u32>>, String> {
        self.numbers(tag, TYPE_INT32, 4)
    }

    /// Every value of an `INT16` tag.
    pub fn int16s(&self, tag: u32) -> Result<Option<Vec<u16>>, String> {
        Ok(self
            .numbers(tag, TYPE_INT16, 2)?
            .map(|v| v.into_iter().map(|n| n as u16).collect()))
    }
}

/// Writes a header blob (tests and fixture trees): tags in the order added, numbers aligned as
/// rpm aligns them.
#[derive(Debug, Default)]
pub struct HeaderBuilder {
    index: Vec<[u32; 4]>,
    store: Vec<u8>,
}

impl HeaderBuilder {
    pub fn new() -> HeaderBuilder {
        HeaderBuilder::default()
    }

    fn align(&mut self, to: usize) {
        while self.store.len() % to != 0 {
            self.store.push(0);
        }
    }

    pub fn string(mut self, tag: u32, value: &str) -> HeaderBuilder {
        self.index
            .push([tag, TYPE_STRING, self.store.len() as u32, 1]);
        self.store.extend_from_slice(value.as_bytes());
        self.store.push(0);
        self
    }

    pub fn strings<S: AsRef<[u8]>>(mut self, tag: u32, values: &[S]) -> HeaderBuilder {
        self.index.push([
            tag,
            TYPE_STRING_ARRAY,
            self.store.len() as u32,
            values.len() as u32,
        ]);
        for v in values {
            self.store.extend_from_slice(v.as_ref());
            self.store.push(0);
        }
        self
    }

    pub fn int32(mut self, tag: u32, values: &[u32]) -> HeaderBuilder {
        self.align(4);
        self.index.push([
            tag,
            TYPE_INT32,
            self.store.len() as u32,
            values.len() as u32,
        ]);
        for v in values {
            self.store.extend_from_slice(&v.to_be_bytes());
        }
        self
    }

    pub fn int16(mut self, tag: u32, values: &[u16]) -> HeaderBuilder {
        self.align(2);
        self.index.push([
            tag,
            TYPE_INT16,
            self.store.len() as u32,
            values.len() as u32,
        ]);
        for v in values {
            self.store.extend_from_slice(&v.to_be_bytes());
        }
        self
    }

    pub fn build(self) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&(self.index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(self.store.len() as u32).to_be_bytes());
        for entry in &self.index {
            for v in entry {
                blob.extend_from_slice(&v.to_be_bytes());
            }
        }
        blob.extend_from_slice(&self.store);
        blob
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let blob = HeaderBuilder::new()
            .string(1000, "sudo")
            .strings(1117, &["sudo", "sudoreplay"])
            .int16(1030, &[0o104111, 0o100755])
            .int32(1116, &[0, 0])
            .int32(5011, &[8])
            .build();
        let h = RawHeader::parse(&blob).unwrap();
        assert_eq!(h.string(1000).unwrap().as_deref(), Some("sudo"));
        assert_eq!(
            h.strings(1117).unwrap().unwrap(),
            vec![&b"sudo"[..], &b"sudoreplay"[..]]
        );
        assert_eq!(h.int16s(1030).unwrap().unwrap(), vec![0o104111, 0o100755]);
        assert_eq!(h.int32s(1116).unwrap().unwrap(), vec![0, 0]);
        assert_eq!(h.int32(5011).unwrap(), Some(8));
        assert_eq!(h.int32(9999).unwrap(), None);
        assert_eq!(h.tags().collect::<Vec<_>>(), [1000, 1117, 1030, 1116, 5011]);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let good = HeaderBuilder::new()
            .strings(1117, &["a", "b"])
            .int16(1030, &[1, 2])
            .int32(1116, &[0, 1])
            .build();
        // a count far beyond the data, for each entry
        for entry in 0..3 {
            let mut bad = good.clone();
            let at = 8 + entry * 16 + 12;
            bad[at..at + 4].copy_from_slice(&0x4000_0000u32.to_be_bytes());
            let h = RawHeader::parse(&bad).unwrap();
            let errors = [
                h.strings(1117).err(),
                h.int16s(1030).err(),
                h.int32s(1116).err(),
            ];
            assert!(errors[entry].is_some(), "entry {entry}: {errors:?}");
        }
        // the wrong type
        let h = RawHeader::parse(&good).unwrap();
        assert!(h.int32s(1117).unwrap_err().contains("expected int32"));
        assert!(h.strings(1116).unwrap_err().contains("expected strings"));
        // truncated anywhere: never a panic
        for cut in 0..good.len() {
            if let Ok(h) = RawHeader::parse(&good[..cut]) {
                let _ = (h.strings(1117), h.int16s(1030), h.int32s(1116));
            }
        }
    }
}
