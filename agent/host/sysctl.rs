//! Kernel parameters as the sysroot persists them: what `systemd-sysctl` applies at boot, from the
//! `*.conf` files of `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`, `/usr/lib/sysctl.d`
//! and `/lib/sysctl.d` (a file name in an earlier directory hiding the same name in a later one, all
//! read in file-name order, the last assignment of a key winning, an explicit key beating any glob
//! that matches it), and the names of the live values under `/proc/sys`. A root without
//! `systemd-sysctl` but with procps's `sysctl` boots with `sysctl --system` instead (procps's init
//! script), which reads the same directories and then `/etc/sysctl.conf`; systemd reads that file
//! only through a link in a directory (`/etc/sysctl.d/99-sysctl.conf` on Debian and RHEL).

use crate::sysroot::{Sysroot, SysrootError};

/// systemd's normalisation to the `/proc/sys` path form: if the first separator is `/`, the name is
/// already a path (dots are part of names, e.g. VLAN `eth0.100`); otherwise dots are separators and
/// any slash stands for a dot.
pub fn normalize_key(key: &str) -> String {
    let key = key.trim().trim_start_matches('-').trim_start_matches('/');
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key.to_string(),
        _ => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
    }
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`.
pub fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", normalize_key(key))
}

/// One `key = value` line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Normalised slash form; may be a glob.
    pub key: String,
    pub value: String,
    pub path: String,
    pub line: usize,
}

/// The persisted sysctl configuration of the sysroot, in application order.
#[derive(Debug, Default)]
pub struct Persisted {
    pub assignments: Vec<Assignment>,
    /// Files read, in order.
    pub files: Vec<String>,
    pub errors: Vec<String>,
}

/// The file procps's `sysctl --system` reads after the directories.
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// Where systemd keeps `systemd-sysctl` (merged-/usr and split layouts).
const SYSTEMD_SYSCTL: &[&str] = &[
    "/usr/lib/systemd/systemd-sysctl",
    "/lib/systemd/systemd-sysctl",
];

/// Where procps keeps `sysctl`.
const PROCPS_SYSCTL: &[&str] = &["/usr/sbin/sysctl", "/sbin/sysctl"];

const SYSCTL_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

impl Persisted {
    pub fn read(sysroot: &Sysroot) -> Persisted {
        let mut p = Persisted::default();
        let (mut files, errors) =
            crate::host::dropins::drop_in_files(sysroot, SYSCTL_DIRS, ".conf");
        p.errors = errors;
        if procps_applies(sysroot) {
            files.push(SYSCTL_CONF.to_string());
        }
        for path in files {
            match sysroot.read(&path) {
                Ok(bytes) => {
                    p.parse(&path, &String::from_utf8_lossy(&bytes));
                    p.files.push(path);
                }
                Err(e) if e.is_not_found() => {} // a dangling link is skipped, as systemd does
                Err(e) => p.errors.push(e.to_string()),
            }
        }
        p
    }

    pub fn parse(&mut self, path: &str, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue; // systemd logs and ignores such lines
            };
            self.assignments.push(Assignment {
                key: normalize_key(key),
                value: crate::host::keyvalue::normalize(value),
                path: path.to_string(),
                line: i + 1,
            });
        }
    }

    /// The assignment that applies to `path_key`: the last explicit one, else the last glob match.
    pub fn lookup(&self, path_key: &str) -> Option<&Assignment> {
        let is_glob = |k: &str| k.contains(['*', '?', '[']);
        self.assignments
            .iter()
            .rev()
            .find(|a| !is_glob(&a.key) && a.key == path_key)
            .or_else(|| {
                self.assignments.iter().rev().find(|a| {
                    is_glob(&a.key)
                        && glob::Pattern::new(&a.key).is_ok_and(|p| {
                            p.matches_with(
                                path_key,
                                glob::MatchOptions {
                                    require_literal_separator: true,
                                    ..glob::MatchOptions::new()
                                },
                            )
                        })
                })
            })
    }
}

/// Whether procps's `sysctl --system` applies the configuration at boot (and so reads
/// `/etc/sysctl.conf` last): the root has procps's `sysctl` and no `systemd-sysctl`.
fn procps_applies(sysroot: &Sysroot) -> bool {
    !SYSTEMD_SYSCTL.iter().any(|p| sysroot.exists(p))
        && PROCPS_SYSCTL.iter().any(|p| sysroot.exists(p))
}

/// The running kernel's value of a parameter (`/proc/sys/...` of the sysroot), given in the slash
/// form of [`normalize_key`]; `Ok(None)` when the kernel has no such parameter.
pub fn live_value(sysroot: &Sysroot, path_key: &str) -> Result<Option<String>, SysrootError> {
    match sysroot.read(format!("/proc/sys/{path_key}")) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_like_systemd() {
        assert_eq!(normalize_key("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            normalize_key("net/ipv4/conf/eth0.100/rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            normalize_key("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            normalize_key(" -kernel.yama.ptrace_scope "),
            "kernel/yama/ptrace_scope"
        );
        assert_eq!(proc_path("fs.suid_dumpable"), "/proc/sys/fs/suid_dumpable");
    }

    fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, Sysroot) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let sysroot = Sysroot::open(dir.path()).unwrap();
        (dir, sysroot)
    }

    #[test]
    fn sysctl_conf_counts_where_procps_applies_the_configuration() {
        let files = [
            ("/usr/sbin/sysctl", ""),
            (
                "/etc/sysctl.d/50-site.conf",
                "fs.suid_dumpable = 1\nkernel.sysrq = 0\n",
            ),
            ("/etc/sysctl.conf", "# procps\nfs.suid_dumpable = 0\n"),
        ];
        // procps's `sysctl --system` reads /etc/sysctl.conf after the directories
        let (_dir, sysroot) = root(&files);
        let p = Persisted::read(&sysroot);
        assert_eq!(p.files.last().map(String::as_str), Some(SYSCTL_CONF));
        let a = p.lookup("fs/suid_dumpable").unwrap();
        assert_eq!(
            (a.value.as_str(), a.path.as_str(), a.line),
            ("0", SYSCTL_CONF, 2)
        );
        assert_eq!(p.lookup("kernel/sysrq").unwrap().value, "0");
        // systemd-sysctl reads it only through a link in a directory, and this root has none
        let mut with_systemd = files.to_vec();
        with_systemd.push(("/usr/lib/systemd/systemd-sysctl", ""));
        let (_dir, sysroot) = root(&with_systemd);
        let p = Persisted::read(&sysroot);
        assert!(!p.files.iter().any(|f| f == SYSCTL_CONF), "{:?}", p.files);
        assert_eq!(p.lookup("fs/suid_dumpable").unwrap().value, "1");
        // nothing applies it without either program
        let (_dir, sysroot) = root(&files[1..]);
        assert!(!Persisted::read(&sysroot)
            .files
            .iter()
            .any(|f| f == SYSCTL_CONF));
    }

    #[test]
    fn last_explicit_assignment_wins_and_beats_globs() {
        let mut p = Persisted::default();
        p.parse(
            "/usr/lib/sysctl.d/50-default.conf",
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.ip_forward=1\n",
        );
        p.parse(
            "/etc/sysctl.d/60-site.conf",
            "; comment\nnet.ipv4.ip_forward = 0\nnet.ipv4.conf.all.rp_filter = 1\ngarbage line\n",
        );
        p.parse(
            "/etc/sysctl.d/70-late-glob.conf",
            "net.ipv4.conf.*.rp_filter = 0\n",
        );
        let fwd = p.lookup("net/ipv4/ip_forward").unwrap();
        assert_eq!(
            (fwd.value.as_str(), fwd.path.as_str(), fwd.line),
            ("0", "/etc/sysctl.d/60-site.conf", 2)
        );
        // the explicit `all` assignment wins over a later glob
        assert_eq!(p.lookup("net/ipv4/conf/all/rp_filter").unwrap().value, "1");
        // other interfaces take the last glob
        assert_eq!(p.lookup("net/ipv4/conf/eth0/rp_filter").unwrap().value, "0");
        assert!(p.lookup("kernel/randomize_va_space").is_none());
        // a glob never crosses a separator
        assert!(p.lookup("net/ipv4/conf/a/b/rp_filter").is_none());
    }
}
