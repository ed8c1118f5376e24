//! `/etc/os-release` (falling back to `/usr/lib/os-release`, as os-release(5) says): the distro id and
//! version that select a baseline. Parsed with the shell-like quoting rules the spec allows.

use serde::{Deserialize, Serialize};

use crate::sysroot::{Sysroot, SysrootError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`, `ubuntu`, `amzn`, `rhel`. Empty when unknown.
    pub id: String,
    /// `ID_LIKE`, split on whitespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_like: Vec<String>,
    /// `VERSION_ID`, e.g. `12`, `22.04`, `2023`. Empty when absent (e.g. Debian testing).
    pub version_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pretty_name: String,
}

impl OsRelease {
    pub fn read(sysroot: &Sysroot) -> Result<OsRelease, SysrootError> {
        match sysroot.read_to_string("/etc/os-release") {
            Ok(text) => Ok(OsRelease::parse(&text)),
            Err(e) if e.is_not_found() => Ok(OsRelease::parse(
                &sysroot.read_to_string("/usr/lib/os-release")?,
            )),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match key.trim() {
                "ID" => os.id = value,
                "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_string).collect(),
                "VERSION_ID" => os.version_id = value,
                "PRETTY_NAME" => os.pretty_name = value,
                _ => {}
            }
        }
        os
    }
}

/// Remove one level of shell quoting: `"..."` with backslash escapes, or `'...'` taken literally.
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return value[1..value.len() - 1].to_string();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = value[1..value.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_unquoted_values() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Amazon Linux 2023.6.20241010\"\nNAME=\"Amazon Linux\"\nVERSION_ID=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\n# comment\n",
        );
        assert_eq!(os.id, "amzn");
        assert_eq!(os.version_id, "2023");
        assert_eq!(os.id_like, vec!["fedora"]);
        assert_eq!(os.pretty_name, "Amazon Linux 2023.6.20241010");

        let os = OsRelease::parse(
            "ID=ubuntu\nID_LIKE=debian\nVERSION_ID='22.04'\nPRETTY_NAME=\"Say \\\"hi\\\"\"",
        );
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id, "22.04");
        assert_eq!(os.pretty_name, "Say \"hi\"");
    }

    #[test]
    fn missing_keys_stay_empty() {
        let os = OsRelease::parse("garbage\n=\nNAME=x");
        assert_eq!(os, OsRelease::default());
    }
}
