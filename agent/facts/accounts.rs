//! Users and groups of the audited system, from the sysroot's `/etc/passwd` and `/etc/group` (never
//! the scanner's NSS: an AMI mounted at /mnt/ami has its own ids). Used to name file owners.

use std::collections::HashMap;

use crate::sysroot::Sysroot;

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
        for (path, map) in [
            ("/etc/passwd", &mut acc.users),
            ("/etc/group", &mut acc.groups),
        ] {
            match sysroot.read(path) {
                Ok(bytes) => *map = parse_id_file(&String::from_utf8_lossy(&bytes)),
                Err(e) => acc.problems.push(e.to_string()),
            }
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

/// `name:x:ID:...` lines → id → name (first name wins for a duplicated id, as getpwuid does).
fn parse_id_file(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty()
            || name.starts_with('#')
            || name.starts_with('+')
            || name.starts_with('-')
        {
            continue;
        }
        if let Ok(id) = id.parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_string());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines_first_name_wins() {
        let map = parse_id_file("root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/:/bin/sh\nbad line\n+nis\nshadow:x:42:\n");
        assert_eq!(map.get(&0).map(String::as_str), Some("root"));
        assert_eq!(map.get(&42).map(String::as_str), Some("shadow"));
        assert_eq!(map.len(), 2);
    }
}
