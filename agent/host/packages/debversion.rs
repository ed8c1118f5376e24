//! Debian package versions, compared exactly as dpkg compares them (`lib/dpkg/version.c`):
//! `[epoch:]upstream[-revision]`, the epoch numerically, then the upstream version and the
//! revision each with `verrevcmp` — alternating runs of non-digits (compared character by
//! character, letters before non-letters, `~` before everything, even the end of the string) and
//! digits (compared numerically). A missing revision equals `0`.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version. Equality and ordering are dpkg's (`1.0` equals `1.00`, `1:1.0-0`
/// equals `1:1.0`), so use [`DebVersion::as_str`] when the exact text matters.
#[derive(Debug, Clone)]
pub struct DebVersion {
    text: String,
    epoch: u64,
    /// Byte range of the upstream part in `text`.
    upstream: (usize, usize),
    /// Byte range of the revision in `text` (empty when there is none).
    revision: (usize, usize),
}

/// Why a version string is not a Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebVersionError {
    #[error("empty version")]
    Empty,
    #[error("version `{0}` has embedded whitespace")]
    Whitespace(String),
    #[error("version `{0}` has an epoch that is not a number")]
    BadEpoch(String),
    #[error("version `{0}` has an empty upstream part")]
    EmptyUpstream(String),
}

impl DebVersion {
    /// Parses `[epoch:]upstream[-revision]` as dpkg's `parseversion` does (surrounding
    /// whitespace ignored; the revision is what follows the last `-`).
    pub fn parse(text: &str) -> Result<DebVersion, DebVersionError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DebVersionError::Empty);
        }
        if trimmed.contains(char::is_whitespace) {
            return Err(DebVersionError::Whitespace(trimmed.to_string()));
        }
        let text = trimmed.to_string();
        let (epoch, start) = match text.find(':') {
            Some(i) => {
                let e = &text[..i];
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(DebVersionError::BadEpoch(text));
                }
                let epoch = e
                    .parse::<u64>()
                    .map_err(|_| DebVersionError::BadEpoch(text.clone()))?;
                (epoch, i + 1)
            }
            None => (0, 0),
        };
        let (upstream, revision) = match text[start..].rfind('-') {
            Some(i) => ((start, start + i), (start + i + 1, text.len())),
            None => ((start, text.len()), (text.len(), text.len())),
        };
        if upstream.0 == upstream.1 {
            return Err(DebVersionError::EmptyUpstream(text));
        }
        Ok(DebVersion {
            text,
            epoch,
            upstream,
            revision,
        })
    }

    /// The version as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.text[self.upstream.0..self.upstream.1]
    }

    pub fn revision(&self) -> &str {
        &self.text[self.revision.0..self.revision.1]
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream(), other.upstream()))
            .then_with(|| verrevcmp(self.revision(), other.revision()))
    }
}

/// Compares two version strings as `dpkg --compare-versions` does. Strings that do not parse
/// are compared as dpkg would compare their parts anyway: the epoch-less whole as upstream.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (DebVersion::parse(a), DebVersion::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => verrevcmp(a.trim(), b.trim()),
    }
}

/// dpkg's character weight: end of string and digits 0, `~` below everything, letters by their
/// code, other characters after all letters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` over one part (upstream or revision).
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        DebVersion::parse(a)
            .unwrap()
            .cmp(&DebVersion::parse(b).unwrap())
    }

    #[test]
    fn parses_epoch_upstream_revision() {
        let v = DebVersion::parse(" 1:2.30-1.2-3+deb12u1 ").unwrap();
        assert_eq!(
            (v.epoch(), v.upstream(), v.revision(), v.as_str()),
            (1, "2.30-1.2", "3+deb12u1", "1:2.30-1.2-3+deb12u1")
        );
        let v = DebVersion::parse("2.36").unwrap();
        assert_eq!((v.epoch(), v.upstream(), v.revision()), (0, "2.36", ""));
        assert_eq!(DebVersion::parse(""), Err(DebVersionError::Empty));
        assert!(matches!(
            DebVersion::parse("a:1.0"),
            Err(DebVersionError::BadEpoch(_))
        ));
        assert!(matches!(
            DebVersion::parse("1:-1"),
            Err(DebVersionError::EmptyUpstream(_))
        ));
        assert!(matches!(
            DebVersion::parse("1.0 beta"),
            Err(DebVersionError::Whitespace(_))
        ));
    }

    #[test]
    fn dpkg_reference_orderings() {
        // cases from dpkg's own t/version test suite and Debian Policy 5.6.12
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.00", Equal),
            ("1.0-0", "1.0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~~a", "1.0~~", Greater),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0+", Less), // letters sort before non-letters
            ("1.0a", "1.0.", Less),
            ("1.0.", "1.0+", Greater), // '.' (46) > '+' (43)
            ("1.2.3", "1.2.10", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("2.36-9+deb12u10", "2.36-9+deb12u9", Greater),
            ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u5", Less),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
            ("0010", "10", Equal),
            ("1.0-a", "1.0-1", Greater),
            ("a", "1", Greater),
            ("1~", "1", Less),
            ("1.0-1~bpo1", "1.0-1", Less),
            ("5.10.0-28", "5.10.0-28+b1", Less),
        ] {
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
            assert_eq!(compare(a, b), want, "{a} vs {b} (compare)");
        }
    }

    #[test]
    fn equality_follows_the_ordering() {
        assert_eq!(
            DebVersion::parse("1:1.0-0").unwrap(),
            DebVersion::parse("1:1.00").unwrap()
        );
        assert_ne!(
            DebVersion::parse("1.0").unwrap(),
            DebVersion::parse("1.0-1").unwrap()
        );
    }

    #[test]
    fn large_numbers_do_not_overflow() {
        assert_eq!(
            verrevcmp("20260101000000000000000001", "20260101000000000000000002"),
            Less
        );
        assert_eq!(
            verrevcmp("99999999999999999999", "100000000000000000000"),
            Less
        );
    }
}
