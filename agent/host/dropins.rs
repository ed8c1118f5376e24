//! Drop-in configuration directories with the precedence systemd and kmod share: `*.conf` files from
//! several directories (most important first, e.g. `/etc`, `/run`, `/usr/lib`), where a file name in
//! an earlier directory hides the same name in later ones, and the survivors are applied in file-name
//! order regardless of directory. Used for `sysctl.d` and `modprobe.d`.

use std::collections::BTreeMap;

use crate::sysroot::Sysroot;

/// In-root paths of the effective drop-in files, in application order, and the directories that
/// could not be read (absent directories are normal and not reported).
pub fn drop_in_files(sysroot: &Sysroot, dirs: &[&str], suffix: &str) -> (Vec<String>, Vec<String>) {
    let mut by_name = BTreeMap::new();
    let mut errors = Vec::new();
    for dir in dirs {
        match sysroot.read_dir(dir) {
            Ok(entries) => {
                for e in entries {
                    let name = e.name.to_string_lossy().into_owned();
                    if name.ends_with(suffix) {
                        by_name
                            .entry(name.clone())
                            .or_insert_with(|| format!("{dir}/{name}"));
                    }
                }
            }
            Err(e) if e.is_not_found() || e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    (by_name.into_values().collect(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_directories_hide_same_names_and_order_is_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in [
            ("etc/x.d/50-a.conf", "etc"),
            ("usr/lib/x.d/50-a.conf", "vendor"),
            ("usr/lib/x.d/10-b.conf", "vendor"),
            ("usr/lib/x.d/README", "not a drop-in"),
            ("etc/x.d/99-c.conf", "etc"),
        ] {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let root = Sysroot::open(dir.path()).unwrap();
        let (files, errors) =
            drop_in_files(&root, &["/etc/x.d", "/run/x.d", "/usr/lib/x.d"], ".conf");
        assert_eq!(
            files,
            vec![
                "/usr/lib/x.d/10-b.conf",
                "/etc/x.d/50-a.conf",
                "/etc/x.d/99-c.conf"
            ]
        );
        assert!(errors.is_empty());
    }
}
