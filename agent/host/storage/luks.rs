//! LUKS on-disk headers, read without any key: which cipher, key size and key-derivation function
//! protect a dm-crypt volume. [`parse`] is pure (bytes in, a [`LuksHeader`] or a [`LuksError`]
//! out) and never panics, whatever the bytes: a header read from a device is untrusted input.
//!
//! * LUKS1 (cryptsetup's `luks1` format): a 592-byte big-endian header: magic `LUKS\xba\xbe`,
//!   version 1, cipher name and mode (`aes`, `xts-plain64`), hash spec, payload offset, key bytes,
//!   the master-key digest, the UUID and eight 48-byte key slots (state `0x00AC71F3` active,
//!   `0x0000DEAD` disabled; PBKDF2 iterations, salt, key material offset, stripes). LUKS1 has no
//!   checksum, so every field is checked for sanity instead.
//! * LUKS2: a 4096-byte binary header (magic, version 2, header size, sequence id, label, checksum
//!   algorithm, salt, UUID, subsystem, header offset, checksum) followed by a JSON area up to the
//!   header size (16 KiB to 4 MiB). The checksum (SHA-256 as cryptsetup writes it, SHA-512
//!   accepted) covers the whole header with the checksum field zeroed, so any damaged byte is
//!   caught. When the primary header is damaged and the bytes given hold the secondary copy (magic
//!   `SKUL\xba\xbe` at the header size), the secondary is used and a note says so, as
//!   cryptsetup itself would. From the JSON: each segment's `encryption` and `sector_size` (and
//!   `integrity`), each keyslot's `key_size` and `kdf` (pbkdf2 hash and iterations, argon2i/argon2id
//!   time, memory and threads), and the digests that tie keyslots to segments (a segment's key size
//!   is the size of the volume key its keyslots hold).

use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

/// The magic of a LUKS header (and of a LUKS2 primary header).
pub const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// The magic of a LUKS2 secondary header.
pub const MAGIC_SECONDARY: &[u8; 6] = b"SKUL\xba\xbe";
/// Bytes of a LUKS1 header.
pub const LUKS1_LEN: usize = 592;
/// Bytes of a LUKS2 binary header (the JSON area follows).
pub const LUKS2_BINARY_LEN: usize = 4096;
/// The largest LUKS2 header (binary header and JSON area) the format allows.
pub const LUKS2_MAX_HEADER: u64 = 4 << 20;

const LUKS1_KEYSLOT_ACTIVE: u32 = 0x00AC_71F3;
const LUKS1_KEYSLOT_DISABLED: u32 = 0x0000_DEAD;

/// What a LUKS header says about the volume behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuksHeader {
    /// 1 or 2.
    pub version: u16,
    /// The volume's UUID as written (`33c8406e-b8df-44a9-a05b-452c86739125`).
    pub uuid: String,
    /// LUKS2 label, when set.
    pub label: Option<String>,
    /// LUKS1: the hash of the master-key digest and PBKDF2 (`sha256`); LUKS2 keeps one per
    /// keyslot in [`Kdf::Pbkdf2`].
    pub hash: Option<String>,
    /// The encrypted areas of the device (LUKS1 has exactly one).
    pub segments: Vec<Segment>,
    /// The active key slots.
    pub keyslots: Vec<Keyslot>,
    /// Things worth saying that are not errors (the secondary header was used, a keyslot of an
    /// unknown type was skipped).
    pub notes: Vec<String>,
}

/// One data segment: how a range of the device is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// `0`, `1`, ... (LUKS2 JSON key); `0` for LUKS1.
    pub id: String,
    /// The dm-crypt cipher spec, `cipher-chainmode-ivmode` (`aes-xts-plain64`); `linear` for an
    /// unencrypted LUKS2 segment (during a reencryption or decryption).
    pub cipher: String,
    /// Bits of the volume key, when a keyslot (or the LUKS1 header) says.
    pub key_bits: Option<u32>,
    /// Encryption sector size in bytes (512 for LUKS1).
    pub sector_size: u32,
    /// LUKS2 authenticated encryption (`hmac(sha256)`, `aead`), when configured.
    pub integrity: Option<String>,
}

/// One active key slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keyslot {
    pub id: String,
    /// Bits of the key the slot holds (the volume key).
    pub key_bits: u32,
    pub kdf: Kdf,
}

/// How a passphrase is turned into the key that unlocks a key slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kdf {
    Pbkdf2 {
        hash: String,
        iterations: u64,
    },
    Argon2i {
        time: u64,
        memory_kib: u64,
        threads: u64,
    },
    Argon2id {
        time: u64,
        memory_kib: u64,
        threads: u64,
    },
    /// A type this parser does not know (cryptsetup would refuse it).
    Other {
        name: String,
    },
}

impl Kdf {
    /// `pbkdf2`, `argon2i`, `argon2id`, or the unknown type's name.
    pub fn name(&self) -> &str {
        match self {
            Kdf::Pbkdf2 { .. } => "pbkdf2",
            Kdf::Argon2i { .. } => "argon2i",
            Kdf::Argon2id { .. } => "argon2id",
            Kdf::Other { name } => name,
        }
    }

    /// Human-readable parameters: `pbkdf2-sha256, 1000 iterations`,
    /// `argon2id, 4 iterations, 1048576 KiB, 4 threads`.
    pub fn describe(&self) -> String {
        match self {
            Kdf::Pbkdf2 { hash, iterations } => {
                format!("pbkdf2-{hash}, {iterations} iterations")
            }
            Kdf::Argon2i {
                time,
                memory_kib,
                threads,
            }
            | Kdf::Argon2id {
                time,
                memory_kib,
                threads,
            } => format!(
                "{}, {time} iterations, {memory_kib} KiB, {threads} threads",
                self.name()
            ),
            Kdf::Other { name } => format!("unknown KDF `{name}`"),
        }
    }
}

/// Why bytes are not a LUKS header that can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LuksError {
    #[error("no LUKS header: the device does not start with the LUKS magic")]
    NoMagic,
    #[error("truncated LUKS{version} header: {found} bytes, expected at least {needed}")]
    Truncated {
        version: u16,
        needed: usize,
        found: usize,
    },
    #[error("unsupported LUKS version {0}, expected 1 or 2")]
    Version(u16),
    #[error("LUKS2 header size {0} is not one LUKS2 allows (a power of two from 16 KiB to 4 MiB)")]
    HeaderSize(u64),
    #[error("unsupported LUKS2 checksum algorithm `{0}`, expected sha256 or sha512")]
    ChecksumAlgorithm(String),
    #[error("LUKS2 header checksum ({0}) does not match: the header is damaged")]
    Checksum(String),
    #[error("LUKS2 JSON area is not valid JSON: {0}")]
    Json(String),
    #[error("malformed LUKS{version} header: {field}: {problem}")]
    Field {
        version: u16,
        field: String,
        problem: String,
    },
}

fn field(version: u16, field: impl Into<String>, problem: impl Into<String>) -> LuksError {
    LuksError::Field {
        version,
        field: field.into(),
        problem: problem.into(),
    }
}

/// How many bytes of a device [`parse`] needs, given its first [`LUKS2_BINARY_LEN`] bytes (or
/// fewer): the LUKS2 primary and secondary headers (twice the header size), else one LUKS1 header.
/// Readers call this to read no more than needed; [`parse`] still checks every length.
pub fn wanted_len(head: &[u8]) -> usize {
    if head.len() >= 16 && head.get(6..8) == Some(&[0, 2]) {
        if let Some(size) = be_u64(head, 8).filter(|s| valid_luks2_size(*s)) {
            return (size as usize).saturating_mul(2);
        }
    }
    LUKS2_BINARY_LEN
}

/// Parse the LUKS header at the start of `bytes` (see the module docs).
pub fn parse(bytes: &[u8]) -> Result<LuksHeader, LuksError> {
    if bytes.get(..6) != Some(MAGIC.as_slice()) {
        return Err(LuksError::NoMagic);
    }
    let version = be_u16(bytes, 6).ok_or(LuksError::Truncated {
        version: 0,
        needed: 8,
        found: bytes.len(),
    })?;
    match version {
        1 => parse_luks1(bytes),
        2 => match parse_luks2_at(bytes, 0, MAGIC) {
            Ok(h) => Ok(h),
            Err(primary) => {
                // cryptsetup recovers from the secondary copy when the primary is damaged
                let size = be_u64(bytes, 8).filter(|s| valid_luks2_size(*s));
                let secondary =
                    size.and_then(|s| parse_luks2_at(bytes, s as usize, MAGIC_SECONDARY).ok());
                match secondary {
                    Some(mut h) => {
                        h.notes.push(format!(
                            "the primary LUKS2 header is damaged ({primary}); the secondary copy was read (cryptsetup repair restores the primary)"
                        ));
                        Ok(h)
                    }
                    None => Err(primary),
                }
            }
        },
        v => Err(LuksError::Version(v)),
    }
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn valid_luks2_size(size: u64) -> bool {
    size.is_power_of_two() && (16 << 10..=LUKS2_MAX_HEADER).contains(&size)
}

/// A NUL-padded text field: printable ASCII up to the first NUL, which must come within the field.
fn text_field(
    version: u16,
    b: &[u8],
    at: usize,
    len: usize,
    name: &str,
) -> Result<String, LuksError> {
    let raw = b.get(at..at + len).ok_or(LuksError::Truncated {
        version,
        needed: at + len,
        found: b.len(),
    })?;
    let end = raw
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| field(version, name, "not NUL-terminated"))?;
    let text = &raw[..end];
    if !text.iter().all(|c| c.is_ascii_graphic()) {
        return Err(field(version, name, "not printable ASCII"));
    }
    Ok(String::from_utf8_lossy(text).into_owned())
}

fn parse_luks1(b: &[u8]) -> Result<LuksHeader, LuksError> {
    if b.len() < LUKS1_LEN {
        return Err(LuksError::Truncated {
            version: 1,
            needed: LUKS1_LEN,
            found: b.len(),
        });
    }
    let cipher_name = text_field(1, b, 8, 32, "cipher name")?;
    let cipher_mode = text_field(1, b, 40, 32, "cipher mode")?;
    let hash = text_field(1, b, 72, 32, "hash spec")?;
    let uuid = text_field(1, b, 168, 40, "uuid")?;
    if cipher_name.is_empty() || cipher_mode.is_empty() {
        return Err(field(1, "cipher", "empty cipher name or mode"));
    }
    if hash.is_empty() {
        return Err(field(1, "hash spec", "empty"));
    }
    let key_bytes = be_u32(b, 108).unwrap_or(0);
    if !(1..=512).contains(&key_bytes) {
        return Err(field(
            1,
            "key bytes",
            format!("{key_bytes} is not 1 to 512"),
        ));
    }
    let mut keyslots = Vec::new();
    for slot in 0..8 {
        let at = 208 + slot * 48;
        let state = be_u32(b, at).unwrap_or(0);
        let iterations = be_u32(b, at + 4).unwrap_or(0);
        match state {
            LUKS1_KEYSLOT_ACTIVE => {
                if iterations == 0 {
                    return Err(field(
                        1,
                        format!("keyslot {slot}"),
                        "active with 0 iterations",
                    ));
                }
                keyslots.push(Keyslot {
                    id: slot.to_string(),
                    key_bits: key_bytes * 8,
                    kdf: Kdf::Pbkdf2 {
                        hash: hash.clone(),
                        iterations: iterations.into(),
                    },
                });
            }
            LUKS1_KEYSLOT_DISABLED => {}
            other => {
                return Err(field(
                    1,
                    format!("keyslot {slot}"),
                    format!("state {other:#010x} is neither active nor disabled"),
                ))
            }
        }
    }
    Ok(LuksHeader {
        version: 1,
        uuid,
        label: None,
        hash: Some(hash),
        segments: vec![Segment {
            id: "0".into(),
            cipher: format!("{cipher_name}-{cipher_mode}"),
            key_bits: Some(key_bytes * 8),
            sector_size: 512,
            integrity: None,
        }],
        keyslots,
        notes: Vec::new(),
    })
}

/// One LUKS2 header (binary part and JSON area) starting at `at`, with `magic`.
fn parse_luks2_at(b: &[u8], at: usize, magic: &[u8; 6]) -> Result<LuksHeader, LuksError> {
    let end_binary = at.saturating_add(LUKS2_BINARY_LEN);
    let bin = b.get(at..end_binary).ok_or(LuksError::Truncated {
        version: 2,
        needed: end_binary,
        found: b.len(),
    })?;
    if &bin[..6] != magic {
        return Err(LuksError::NoMagic);
    }
    if be_u16(bin, 6) != Some(2) {
        return Err(LuksError::Version(be_u16(bin, 6).unwrap_or(0)));
    }
    let size = be_u64(bin, 8).unwrap_or(0);
    if !valid_luks2_size(size) {
        return Err(LuksError::HeaderSize(size));
    }
    if be_u64(bin, 256) != Some(at as u64) {
        return Err(field(
            2,
            "header offset",
            format!(
                "{} does not match where the header is ({at})",
                be_u64(bin, 256).unwrap_or(0)
            ),
        ));
    }
    let end = at.saturating_add(size as usize);
    let whole = b.get(at..end).ok_or(LuksError::Truncated {
        version: 2,
        needed: end,
        found: b.len(),
    })?;
    let alg = text_field(2, bin, 72, 32, "checksum algorithm")?;
    verify_checksum(whole, &alg)?;
    let label = text_field(2, bin, 24, 48, "label")?;
    let uuid = text_field(2, bin, 168, 40, "uuid")?;
    let json_area = &whole[LUKS2_BINARY_LEN..];
    let json_end = json_area
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(json_area.len());
    let json: serde_json::Value = serde_json::from_slice(&json_area[..json_end])
        .map_err(|e| LuksError::Json(e.to_string()))?;
    let mut header = luks2_json(&json)?;
    header.uuid = uuid;
    header.label = (!label.is_empty()).then_some(label);
    Ok(header)
}

fn verify_checksum(whole: &[u8], alg: &str) -> Result<(), LuksError> {
    let mut zeroed = whole.to_vec();
    let stored = whole.get(448..512).unwrap_or_default();
    zeroed[448..512].fill(0);
    let computed: Vec<u8> = match alg {
        "sha256" => Sha256::digest(&zeroed).to_vec(),
        "sha512" => Sha512::digest(&zeroed).to_vec(),
        other => return Err(LuksError::ChecksumAlgorithm(other.to_string())),
    };
    let (digest, rest) = stored.split_at(computed.len().min(stored.len()));
    if digest != computed.as_slice() || rest.iter().any(|&c| c != 0) {
        return Err(LuksError::Checksum(alg.to_string()));
    }
    Ok(())
}

/// A JSON number, or a decimal string (LUKS2 writes 64-bit sizes as strings).
fn number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

fn json_u64(obj: &serde_json::Value, key: &str, what: &str) -> Result<u64, LuksError> {
    number(obj.get(key).unwrap_or(&serde_json::Value::Null))
        .ok_or_else(|| field(2, format!("{what}.{key}"), "missing or not a number"))
}

fn json_str<'a>(obj: &'a serde_json::Value, key: &str, what: &str) -> Result<&'a str, LuksError> {
    obj.get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| field(2, format!("{what}.{key}"), "missing or not a string"))
}

fn json_object<'a>(
    obj: &'a serde_json::Value,
    key: &str,
) -> Result<&'a serde_json::Map<String, serde_json::Value>, LuksError> {
    obj.get(key)
        .and_then(|v| v.as_object())
        .ok_or_else(|| field(2, key, "missing or not an object"))
}

/// JSON object keys in numeric order (`"2"` before `"10"`).
fn sorted_ids(map: &serde_json::Map<String, serde_json::Value>) -> Vec<&String> {
    let mut ids: Vec<&String> = map.keys().collect();
    ids.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), k.to_string()));
    ids
}

fn luks2_json(json: &serde_json::Value) -> Result<LuksHeader, LuksError> {
    let keyslots_json = json_object(json, "keyslots")?;
    let segments_json = json_object(json, "segments")?;
    let digests_json = json_object(json, "digests")?;
    let mut notes = Vec::new();
    let mut keyslots = Vec::new();
    for id in sorted_ids(keyslots_json) {
        let ks = &keyslots_json[id];
        let what = format!("keyslots.{id}");
        let kind = json_str(ks, "type", &what)?;
        if kind != "luks2" {
            notes.push(format!(
                "keyslot {id} is of type `{kind}` (not a passphrase slot{})",
                if kind == "reencrypt" {
                    ": a reencryption is in progress"
                } else {
                    ""
                }
            ));
            continue;
        }
        let key_size = json_u64(ks, "key_size", &what)?;
        if !(1..=512).contains(&key_size) {
            return Err(field(
                2,
                format!("{what}.key_size"),
                format!("{key_size} is not 1 to 512 bytes"),
            ));
        }
        let kdf_json = ks
            .get("kdf")
            .ok_or_else(|| field(2, format!("{what}.kdf"), "missing"))?;
        let kdf_what = format!("{what}.kdf");
        let kdf = match json_str(kdf_json, "type", &kdf_what)? {
            "pbkdf2" => Kdf::Pbkdf2 {
                hash: json_str(kdf_json, "hash", &kdf_what)?.to_string(),
                iterations: json_u64(kdf_json, "iterations", &kdf_what)?,
            },
            t @ ("argon2i" | "argon2id") => {
                let time = json_u64(kdf_json, "time", &kdf_what)?;
                let memory_kib = json_u64(kdf_json, "memory", &kdf_what)?;
                let threads = json_u64(kdf_json, "cpus", &kdf_what)?;
                if t == "argon2i" {
                    Kdf::Argon2i {
                        time,
                        memory_kib,
                        threads,
                    }
                } else {
                    Kdf::Argon2id {
                        time,
                        memory_kib,
                        threads,
                    }
                }
            }
            other => Kdf::Other {
                name: other.to_string(),
            },
        };
        keyslots.push(Keyslot {
            id: id.clone(),
            key_bits: (key_size * 8) as u32,
            kdf,
        });
    }
    let mut segments = Vec::new();
    for id in sorted_ids(segments_json) {
        let seg = &segments_json[id];
        let what = format!("segments.{id}");
        let cipher = match json_str(seg, "type", &what)? {
            "crypt" => json_str(seg, "encryption", &what)?.to_string(),
            "linear" => "linear".to_string(),
            other => {
                return Err(field(
                    2,
                    format!("{what}.type"),
                    format!("unknown segment type `{other}`"),
                ))
            }
        };
        let sector_size = if cipher == "linear" {
            512
        } else {
            let s = json_u64(seg, "sector_size", &what)?;
            if !s.is_power_of_two() || !(512..=4096).contains(&s) {
                return Err(field(
                    2,
                    format!("{what}.sector_size"),
                    format!("{s} is not 512 to 4096, a power of two"),
                ));
            }
            s as u32
        };
        let integrity = seg
            .get("integrity")
            .and_then(|i| i.get("type"))
            .and_then(|t| t.as_str())
            .map(str::to_string);
        // the volume key size: from a keyslot a digest ties to this segment
        let key_bits = digests_json.values().find_map(|d| {
            let covers = d
                .get("segments")?
                .as_array()?
                .iter()
                .any(|s| s.as_str() == Some(id.as_str()));
            if !covers {
                return None;
            }
            d.get("keyslots")?.as_array()?.iter().find_map(|k| {
                keyslots
                    .iter()
                    .find(|ks| Some(ks.id.as_str()) == k.as_str())
                    .map(|ks| ks.key_bits)
            })
        });
        segments.push(Segment {
            id: id.clone(),
            cipher,
            key_bits,
            sector_size,
            integrity,
        });
    }
    if segments.is_empty() {
        return Err(field(2, "segments", "no data segment"));
    }
    Ok(LuksHeader {
        version: 2,
        uuid: String::new(),
        label: None,
        hash: None,
        segments,
        keyslots,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LUKS2 header built from a JSON text, with a correct checksum (hand-made, for the edge
    /// cases real headers do not produce; real headers are tested in tests/crypt.rs).
    fn luks2(json: &str) -> Vec<u8> {
        let size = 16384usize;
        let mut b = vec![0u8; size];
        b[..6].copy_from_slice(MAGIC);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&(size as u64).to_be_bytes());
        b[72..78].copy_from_slice(b"sha256");
        b[168..172].copy_from_slice(b"abcd");
        b[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        let sum = Sha256::digest(&b);
        b[448..480].copy_from_slice(&sum);
        b
    }

    const JSON: &str = r#"{"keyslots":{"0":{"type":"luks2","key_size":64,"kdf":{"type":"argon2id","time":4,"memory":1048576,"cpus":4,"salt":"x"}},"1":{"type":"luks2","key_size":64,"kdf":{"type":"pbkdf2","hash":"sha512","iterations":2000,"salt":"x"}}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","encryption":"aes-xts-plain64","sector_size":4096}},"digests":{"0":{"type":"pbkdf2","keyslots":["0","1"],"segments":["0"]}},"config":{}}"#;

    #[test]
    fn luks2_fields() {
        let h = parse(&luks2(JSON)).unwrap();
        assert_eq!(h.version, 2);
        assert_eq!(h.uuid, "abcd");
        assert_eq!(h.segments[0].cipher, "aes-xts-plain64");
        assert_eq!(h.segments[0].key_bits, Some(512));
        assert_eq!(h.segments[0].sector_size, 4096);
        assert_eq!(h.keyslots.len(), 2);
        assert_eq!(
            h.keyslots[0].kdf,
            Kdf::Argon2id {
                time: 4,
                memory_kib: 1048576,
                threads: 4
            }
        );
        assert_eq!(
            h.keyslots[1].kdf.describe(),
            "pbkdf2-sha512, 2000 iterations"
        );
    }

    #[test]
    fn edits_without_a_new_checksum_are_damage() {
        let mut b = luks2(JSON);
        b[4100] ^= 1;
        assert_eq!(parse(&b), Err(LuksError::Checksum("sha256".into())));
    }

    #[test]
    fn structural_problems_are_named() {
        let no_segments = r#"{"keyslots":{},"segments":{},"digests":{}}"#;
        assert_eq!(
            parse(&luks2(no_segments)).unwrap_err().to_string(),
            "malformed LUKS2 header: segments: no data segment"
        );
        let bad_kdf = r#"{"keyslots":{"0":{"type":"luks2","key_size":64,"kdf":{"type":"pbkdf2","iterations":"x"}}},"segments":{},"digests":{}}"#;
        assert_eq!(
            parse(&luks2(bad_kdf)).unwrap_err().to_string(),
            "malformed LUKS2 header: keyslots.0.kdf.hash: missing or not a string"
        );
        assert!(matches!(
            parse(&luks2("{not json")),
            Err(LuksError::Json(_))
        ));
        assert_eq!(parse(b"LUKS"), Err(LuksError::NoMagic));
        assert_eq!(parse(b"not luks at all"), Err(LuksError::NoMagic));
        assert!(matches!(
            parse(&MAGIC[..]),
            Err(LuksError::Truncated { .. })
        ));
        let mut v3 = luks2(JSON);
        v3[7] = 3;
        assert_eq!(parse(&v3), Err(LuksError::Version(3)));
        let trunc = &luks2(JSON)[..5000];
        assert_eq!(
            parse(trunc),
            Err(LuksError::Truncated {
                version: 2,
                needed: 16384,
                found: 5000
            })
        );
    }

    #[test]
    fn a_segment_without_a_keyslot_has_no_key_size() {
        let json = r#"{"keyslots":{},"segments":{"0":{"type":"crypt","encryption":"aes-xts-plain64","sector_size":512}},"digests":{}}"#;
        let h = parse(&luks2(json)).unwrap();
        assert_eq!(h.segments[0].key_bits, None);
        assert!(h.keyslots.is_empty());
    }

    #[test]
    fn wanted_len_reads_both_luks2_copies() {
        assert_eq!(wanted_len(&luks2(JSON)), 32768);
        assert_eq!(wanted_len(b"LUKS\xba\xbe\x00\x01"), LUKS2_BINARY_LEN);
        assert_eq!(wanted_len(b""), LUKS2_BINARY_LEN);
    }
}
