//! What dpkg records about the files of installed packages, beside its status file: in
//! `/var/lib/dpkg/info/`, `PKG.list` (or `PKG:ARCH.list` for a Multi-Arch: same package) lists every
//! path the package installed, one absolute path a line, and `PKG.md5sums` the MD5 of its regular
//! files (`<32 hex digits>  <path without the leading slash>`); `/var/lib/dpkg/statoverride` holds
//! the owner, group and mode `dpkg-statoverride` imposes on a path (`user group mode path`, a user
//! or group written `#ID` when numeric). dpkg records no file modes: a mode is only known when a
//! statoverride sets it. The parsers take raw bytes (paths need not be UTF-8) and report damaged
//! lines with their number, reading the rest.

/// Where dpkg keeps the per-package files.
pub const INFO_DIR: &str = "/var/lib/dpkg/info";
/// `dpkg-statoverride`'s database.
pub const STATOVERRIDE: &str = "/var/lib/dpkg/statoverride";

/// One line of an `md5sums` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Line {
    /// The path, absolute (the file writes it without the leading `/`).
    pub path: Vec<u8>,
    /// Lowercase hex.
    pub md5: String,
}

/// One entry of the statoverride database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatOverride {
    /// A user name, or `#UID`.
    pub user: String,
    /// A group name, or `#GID`.
    pub group: String,
    /// Permission bits, setuid, setgid and sticky included.
    pub mode: u32,
    pub path: Vec<u8>,
    pub line: usize,
}

/// The package a `.list` or `.md5sums` file name belongs to (`exim4-daemon-light`,
/// `libutempter0:amd64`), or `None` for another file of the directory.
pub fn package_of<'a>(file_name: &'a [u8], extension: &str) -> Option<&'a [u8]> {
    let stem = file_name.strip_suffix(extension.as_bytes())?;
    let stem = stem.strip_suffix(b".")?;
    (!stem.is_empty()).then_some(stem)
}

/// The paths of a `.list` file (blank lines skipped; `/.`, the root every package lists, kept).
pub fn list_paths(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Parses an `md5sums` file; damaged lines come back as `(line, reason)`.
pub fn parse_md5sums(text: &[u8]) -> (Vec<Md5Line>, Vec<(usize, String)>) {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let (hex, rest) = raw.split_at(raw.len().min(32));
        let valid_hex = hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit);
        // two spaces (md5sum's text mode) or a space and `*` (binary mode)
        let path = rest
            .strip_prefix(b"  ")
            .or_else(|| rest.strip_prefix(b" *"))
            .map(|p| p.strip_prefix(b"/").unwrap_or(p));
        match (valid_hex, path) {
            (true, Some(path)) if !path.is_empty() => {
                let mut abs = Vec::with_capacity(path.len() + 1);
                abs.push(b'/');
                abs.extend_from_slice(path);
                lines.push(Md5Line {
                    path: abs,
                    md5: String::from_utf8_lossy(hex).to_ascii_lowercase(),
                });
            }
            _ => bad.push((
                i + 1,
                format!(
                    "not `<md5>  <path>`: {}",
                    String::from_utf8_lossy(&raw[..raw.len().min(120)])
                ),
            )),
        }
    }
    (lines, bad)
}

/// Parses the statoverride database; damaged lines come back as `(line, reason)`.
pub fn parse_statoverride(text: &[u8]) -> (Vec<StatOverride>, Vec<(usize, String)>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // user, group and mode are single words; the path is the rest of the line
        let mut fields = raw.splitn(4, |&b| b == b' ');
        let (user, group, mode, path) =
            (fields.next(), fields.next(), fields.next(), fields.next());
        let mode = mode
            .and_then(|m| std::str::from_utf8(m).ok())
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .filter(|m| *m <= 0o7777);
        match (user, group, mode, path) {
            (Some(user), Some(group), Some(mode), Some(path))
                if !user.is_empty() && !group.is_empty() && path.starts_with(b"/") =>
            {
                entries.push(StatOverride {
                    user: String::from_utf8_lossy(user).into_owned(),
                    group: String::from_utf8_lossy(group).into_owned(),
                    mode,
                    path: path.to_vec(),
                    line: i + 1,
                })
            }
            _ => bad.push((
                i + 1,
                format!(
                    "not `user group mode /path`: {}",
                    String::from_utf8_lossy(&raw[..raw.len().min(120)])
                ),
            )),
        }
    }
    (entries, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_come_from_the_file_names() {
        assert_eq!(
            package_of(b"exim4-daemon-light.list", "list"),
            Some(&b"exim4-daemon-light"[..])
        );
        assert_eq!(
            package_of(b"libutempter0:amd64.md5sums", "md5sums"),
            Some(&b"libutempter0:amd64"[..])
        );
        assert_eq!(package_of(b"cron.postinst", "list"), None);
        assert_eq!(package_of(b".list", "list"), None);
        assert_eq!(package_of(b"xlist", "list"), None);
    }

    #[test]
    fn md5sums_lines_parse_and_damage_is_reported() {
        let text = b"bf3f1799b2782402b9bbe1d16fba90e5  bin/su\n\
            A00CD433005B1662C9A07D4E1CEBFB89 *sbin/unix_chkpwd\n\
            \n\
            xyz  usr/bin/x\n\
            7d24fc24a9173a10530389da76588acd usr/one-space\n\
            7d24fc24a9173a10530389da76588acd  usr/share/a b\xff\n";
        let (lines, bad) = parse_md5sums(text);
        assert_eq!(
            lines,
            vec![
                Md5Line {
                    path: b"/bin/su".to_vec(),
                    md5: "bf3f1799b2782402b9bbe1d16fba90e5".into()
                },
                Md5Line {
                    path: b"/sbin/unix_chkpwd".to_vec(),
                    md5: "a00cd433005b1662c9a07d4e1cebfb89".into()
                },
                Md5Line {
                    path: b"/usr/share/a b\xff".to_vec(),
                    md5: "7d24fc24a9173a10530389da76588acd".into()
                },
            ]
        );
        assert_eq!(
            bad.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            [4, 5]
        );
    }

    #[test]
    fn statoverride_entries_parse_and_damage_is_reported() {
        let text = b"root crontab 2755 /usr/bin/crontab\n\
            _chrony _chrony 750 /var/lib/chrony\n\
            #0 #42 4750 /usr/lib/with space/helper\n\
            root root 9999 /bad/mode\n\
            root root 0755 relative\n\
            root\n";
        let (entries, bad) = parse_statoverride(text);
        let got: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.user.as_str(),
                    e.group.as_str(),
                    e.mode,
                    e.path.as_slice(),
                    e.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("root", "crontab", 0o2755, &b"/usr/bin/crontab"[..], 1),
                ("_chrony", "_chrony", 0o750, &b"/var/lib/chrony"[..], 2),
                ("#0", "#42", 0o4750, &b"/usr/lib/with space/helper"[..], 3),
            ]
        );
        assert_eq!(
            bad.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            [4, 5, 6]
        );
    }

    #[test]
    fn list_files_are_paths_a_line() {
        let paths: Vec<_> =
            list_paths(b"/.\n/bin\n/bin/su\n\n/usr/share/doc/util-linux\n").collect();
        assert_eq!(
            paths,
            vec![
                &b"/."[..],
                b"/bin",
                b"/bin/su",
                b"/usr/share/doc/util-linux"
            ]
        );
    }
}
