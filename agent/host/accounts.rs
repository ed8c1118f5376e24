//! Users and groups of the audited system, from the sysroot's `/etc/passwd`, `/etc/shadow` and
//! `/etc/group` (never the scanner's NSS: an AMI mounted at /mnt/ami has its own ids). One parser
//! serves both the uid/gid → name maps used to name file owners and the `[[accounts]]` rules.

use std::collections::HashMap;

use crate::sysroot::Sysroot;

/// Parsed entries plus, for each line that could not be parsed, its number and what is wrong with
/// it. The description never quotes the line: a malformed line of these files may hold a password
/// hash in any field, so only its shape and a field that is a plausible user name are shown.
pub type Parsed<T> = (Vec<T>, Vec<(usize, String)>);

/// `name` when it is a plausible user name (letters, digits, `_`, `-`, `.`, `@`, a final `$`, at
/// most 32 characters, not starting with `-`): a line whose name field is anything else (a hash
/// written there, `$6$...`) is malformed, and its name is never echoed.
fn shown_name(name: &str) -> Option<&str> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 32
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    ok.then_some(name)
}

/// What is wrong with a line of `fields`, naming the entry only by a plausible user name.
fn malformed(fields: &[&str], expected: usize, what: &str) -> String {
    let who = fields
        .first()
        .and_then(|n| shown_name(n))
        .map(|n| format!("entry `{n}`: "))
        .unwrap_or_default();
    if fields.len() != expected {
        format!("{who}{} fields, {expected} expected", fields.len())
    } else {
        format!("{who}{what}")
    }
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    /// Field 2: `x` when the hash is in /etc/shadow; empty means no password at all.
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub line: usize,
}

/// One `/etc/shadow` line (name and hash field only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub hash: String,
    pub line: usize,
}

impl ShadowEntry {
    /// `!`- or `*`-prefixed (or exactly `!`/`*`/`!!`) hashes cannot be used to log in.
    pub fn is_locked(&self) -> bool {
        self.hash.starts_with('!') || self.hash.starts_with('*')
    }
}

/// Blank and comment lines, and NIS compat entries (`+name`, `-name`, `+`): not local accounts.
fn skipped_line(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with(['#', '+', '-'])
}

/// Parse `/etc/passwd` text; malformed lines (wrong field count, non-numeric ids) are returned as
/// `(line, text)` problems instead of being guessed at.
pub fn parse_passwd(text: &str) -> Parsed<PasswdEntry> {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skipped_line(line) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let parsed = (f.len() == 7)
            .then(|| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?)))
            .flatten();
        match parsed {
            Some((uid, gid)) if shown_name(f[0]).is_some() => entries.push(PasswdEntry {
                name: f[0].to_string(),
                password: f[1].to_string(),
                uid,
                gid,
                home: f[5].to_string(),
                shell: f[6].to_string(),
                line: i + 1,
            }),
            _ => bad.push((
                i + 1,
                malformed(
                    &f,
                    7,
                    "a user name that is not a name, or a uid or gid that is not a number",
                ),
            )),
        }
    }
    (entries, bad)
}

/// Parse `/etc/shadow` text (9 fields; only name and hash are kept).
pub fn parse_shadow(text: &str) -> Parsed<ShadowEntry> {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skipped_line(line) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 9 || shown_name(f[0]).is_none() {
            bad.push((i + 1, malformed(&f, 9, "a user name that is not a name")));
            continue;
        }
        entries.push(ShadowEntry {
            name: f[0].to_string(),
            hash: f[1].to_string(),
            line: i + 1,
        });
    }
    (entries, bad)
}

/// uid/gid → name maps; a missing or unreadable file leaves its map empty and records why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accounts {
    pub users: HashMap<u32, String>,
    pub groups: HashMap<u32, String>,
    pub problems: Vec<String>,
}

impl Accounts {
    pub fn read(sysroot: &Sysroot) -> Accounts {
        let mut acc = Accounts::default();
        match sysroot.read("/etc/passwd") {
            Ok(bytes) => {
                for e in parse_passwd(&String::from_utf8_lossy(&bytes)).0 {
                    acc.users.entry(e.uid).or_insert(e.name);
                }
            }
            Err(e) => acc.problems.push(e.to_string()),
        }
        match sysroot.read("/etc/group") {
            Ok(bytes) => acc.groups = parse_group_ids(&String::from_utf8_lossy(&bytes)),
            Err(e) => acc.problems.push(e.to_string()),
        }
        acc
    }

    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

/// `name:x:GID:members` lines → gid → name (first name wins for a duplicated gid, as getgrgid does).
pub(crate) fn parse_group_ids(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || skipped_line(line) {
            continue;
        }
        if let Ok(id) = id.parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_string());
        }
    }
    map
}

/// Read and parse one account database of the sysroot (`/etc/passwd`, `/etc/shadow`): a malformed
/// entry makes it an error naming the file, the line and how many are malformed.
pub fn read_database<T>(
    sysroot: &Sysroot,
    path: &str,
    parse: fn(&str) -> Parsed<T>,
) -> Result<Vec<T>, String> {
    let bytes = sysroot.read(path).map_err(|e| e.to_string())?;
    let (entries, bad) = parse(&String::from_utf8_lossy(&bytes));
    match bad.first() {
        Some((line, what)) => Err(format!(
            "{path}:{line}: malformed entry ({what}); {} malformed in all",
            bad.len()
        )),
        None => Ok(entries),
    }
}

/// The entries of the sysroot's `/etc/passwd` that parse; none when it is missing or unreadable
/// (for readers that only name uids, never for judging the accounts themselves).
pub fn passwd_entries(sysroot: &Sysroot) -> Vec<PasswdEntry> {
    parse_passwd(&sysroot.read_to_string("/etc/passwd").unwrap_or_default()).0
}

/// Shells that mean "no login" even where /etc/shells is missing.
const NO_LOGIN: &[&str] = &["nologin", "false", "sync", "shutdown", "halt"];

/// The interactive accounts of the sysroot's `/etc/passwd`: a login shell that `/etc/shells`
/// lists and that is not `nologin` (where `/etc/shells` is missing: any shell but `nologin`,
/// `false`, `sync`, `shutdown` and `halt`), as the CIS audits select the users whose dot files
/// they look at. `Err` when the database cannot be read or has a malformed entry.
pub fn interactive_users(sysroot: &Sysroot) -> Result<Vec<PasswdEntry>, String> {
    let users = read_database(sysroot, "/etc/passwd", parse_passwd)?;
    let shells: Option<Vec<String>> = match sysroot.read_to_string("/etc/shells") {
        Ok(text) => Some(
            text.lines()
                .map(str::trim)
                .filter(|l| l.starts_with('/'))
                .map(str::to_string)
                .collect(),
        ),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.to_string()),
    };
    let base = |shell: &str| shell.rsplit('/').next().unwrap_or_default().to_string();
    Ok(users
        .into_iter()
        .filter(|u| {
            let name = base(&u.shell);
            !u.shell.is_empty()
                && name != "nologin"
                && match &shells {
                    Some(list) => list.contains(&u.shell),
                    None => !NO_LOGIN.contains(&name.as_str()),
                }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_users_have_a_login_shell() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/bash\nsync:x:4:65534::/bin:/bin/sync\nwww:x:33:33::/var/www:/usr/sbin/nologin\nalice:x:1000:1000::/srv/alice:/bin/zsh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
        )
        .unwrap();
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let names = |s: &Sysroot| -> Vec<String> {
            interactive_users(s)
                .unwrap()
                .into_iter()
                .map(|u| u.name)
                .collect()
        };
        // no /etc/shells: everything but the no-login shells
        assert_eq!(names(&sysroot), ["root", "alice", "bob"]);
        // /etc/shells decides when present: zsh is not listed
        std::fs::write(
            etc.join("shells"),
            "# comment\n/bin/sh\n/bin/bash\n/usr/sbin/nologin\n",
        )
        .unwrap();
        assert_eq!(names(&sysroot), ["root", "bob"]);
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/bash\nbroken line\n",
        )
        .unwrap();
        assert!(interactive_users(&sysroot)
            .unwrap_err()
            .contains("/etc/passwd:2"));
    }

    #[test]
    fn passwd_lines_parse_and_bad_lines_are_kept_aside() {
        let (e, bad) = parse_passwd("root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/:/bin/sh\nbad line\n+nis\nweird:x:a:0::/:/bin/sh\n");
        assert_eq!(
            e.iter()
                .map(|e| (e.name.as_str(), e.uid, e.line))
                .collect::<Vec<_>>(),
            vec![("root", 0, 1), ("toor", 0, 2)]
        );
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![3, 5]);
    }

    #[test]
    fn shadow_lock_state() {
        let (e, bad) = parse_shadow("root:*:1:0:99999:7:::\nadmin:!$6$x:1::::::\nuser:$6$abc:1::::::\nempty::1::::::\nshort:x\n");
        let locked: Vec<bool> = e.iter().map(ShadowEntry::is_locked).collect();
        assert_eq!(locked, vec![true, true, false, false]);
        assert_eq!(
            bad,
            vec![(5, "entry `short`: 2 fields, 9 expected".to_string())]
        );
    }

    #[test]
    fn malformed_lines_never_show_a_hash() {
        const HASH: &str = "$6$rounds=5000$saltsalt$0123456789abcdefABCDEF";
        // a hash in field 2 of an 8-field passwd line, a hash before the first colon of shadow
        let (_, bad) = parse_passwd(&format!("alice:{HASH}:1000:1000::/home/alice:/bin/sh:x\n"));
        assert_eq!(
            bad,
            vec![(1, "entry `alice`: 8 fields, 7 expected".to_string())]
        );
        let (_, bad) = parse_shadow(&format!("{HASH}:bob:1::::::\n"));
        assert_eq!(bad, vec![(1, "a user name that is not a name".to_string())]);
        let (_, bad) = parse_passwd(&format!("{HASH}\n"));
        assert!(!bad[0].1.contains("rounds"), "{bad:?}");
        for (_, what) in parse_shadow(&format!("{HASH}\n")).1 {
            assert!(!what.contains("salt"), "{what}");
        }
    }

    #[test]
    fn group_ids_first_name_wins() {
        let map = parse_group_ids("root:x:0:\nwheel:x:0:\nshadow:x:42:\nbad\n");
        assert_eq!(map.get(&0).map(String::as_str), Some("root"));
        assert_eq!(map.get(&42).map(String::as_str), Some("shadow"));
    }
}
