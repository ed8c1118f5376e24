//! Key/value configuration files as most of `/etc` writes them: `Key value` (login.defs,
//! sshd_config-like files) or `key = value` with `[section]` headers and `;` comments (INI-style:
//! pwquality.conf, journald.conf). Parsed into assignments in file order; which one wins is the
//! caller's rule (first or last).

use regex::Regex;
use serde::Deserialize;

use crate::sysroot::Sysroot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// `Key value` (whitespace), or `Key=value`; `#` comments.
    #[default]
    Space,
    /// `key = value`; `#` and `;` comments; `[section]` headers.
    Equals,
}

/// One `key value` assignment found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parse one file's text into assignments, in order, honouring `section` for the equals format.
pub fn parse_assignments(
    text: &str,
    format: LineFormat,
    section: Option<&str>,
    stop_at: Option<&Regex>,
) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut current_section: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if stop_at.is_some_and(|re| re.is_match(line)) {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pair = match format {
            LineFormat::Space => {
                let end = line
                    .find(|c: char| c.is_whitespace() || c == '=')
                    .unwrap_or(line.len());
                let (key, rest) = line.split_at(end);
                let rest = rest.trim_start();
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                Some((key, rest.trim()))
            }
            LineFormat::Equals => {
                if line.starts_with(';') {
                    continue;
                }
                if line.starts_with('[') && line.ends_with(']') {
                    current_section = Some(line[1..line.len() - 1].trim());
                    continue;
                }
                line.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
            }
        };
        let Some((key, value)) = pair else { continue };
        if section.is_some() && current_section != section {
            continue;
        }
        out.push(Assignment {
            key: key.to_string(),
            value: value.to_string(),
            line: i + 1,
        });
    }
    out
}

/// A value as it is compared: trimmed, whitespace runs collapsed to one space (`1\t 2` is `1 2`).
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The last value of `key` in `/etc/login.defs` (shadow's tools take the last one), if set.
pub fn login_defs_value(sysroot: &Sysroot, key: &str) -> Option<String> {
    let bytes = sysroot.read("/etc/login.defs").ok()?;
    parse_assignments(
        &String::from_utf8_lossy(&bytes),
        LineFormat::Space,
        None,
        None,
    )
    .into_iter()
    .rev()
    .find(|a| a.key == key)
    .map(|a| a.value)
}
