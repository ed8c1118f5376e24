//! The verdict of `[[tree_scan]] scan = "suid-sgid"` on each setuid/setgid file: the package
//! database vouches for it, or it fails. A file passes when an installed package ships it
//! unchanged: its content has the digest the package recorded (dpkg's md5sums, rpm's
//! FILEDIGESTS), its mode is the one rpm recorded (dpkg records none), its owner and group are
//! rpm's, and where `dpkg-statoverride` has an entry for the path, owner, group and mode are the
//! entry's. A file no package ships passes only when the rule's `allow` names it (site additions);
//! a packaged file that differs from its record fails whatever `allow` says.
//!
//! The database is looked up once per run, for the walk's setuid/setgid files only
//! ([`crate::host::packages::owners`]), and each file is hashed at most once per algorithm,
//! however many rules judge it.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use crate::checks::Context;
use crate::fim::entry::display_bytes;
use crate::host::accounts::Accounts;
use crate::host::packages::owners::{digest_file, DigestAlgo, NoDigest, Owners, Shipped};
use crate::host::packages::PackageFormat;
use crate::rule::Evidence;

/// The package database's answers for the run's setuid/setgid files, and their digests.
#[derive(Debug)]
pub struct Vouchers {
    owners: Result<Option<Owners>, String>,
    digests: Mutex<HashMap<(Vec<u8>, DigestAlgo), HashResult>>,
}

/// A file's digest as read, or why it could not be.
type HashResult = Result<Hashed, String>;

/// A file as it was read to hash it.
#[derive(Debug, Clone)]
struct Hashed {
    hex: String,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// What one setuid/setgid file is.
#[derive(Debug)]
pub enum Verdict {
    /// An installed package ships it as it is.
    Shipped(Evidence),
    /// No package ships it and `allow` names it.
    Allowed,
    /// Anything else.
    Fails(Evidence),
}

/// `setuid root`, `setgid shadow`, or both.
fn privileges(mode: u32, owner: &str, group: &str) -> String {
    let mut out = Vec::new();
    if mode & 0o4000 != 0 {
        out.push(format!("setuid {owner}"));
    }
    if mode & 0o2000 != 0 {
        out.push(format!("setgid {group}"));
    }
    out.join(", ")
}

impl Vouchers {
    /// Looks up `paths` (the walk's setuid/setgid files) in the sysroot's package database.
    pub fn lookup(cx: &Context<'_>, paths: &[Vec<u8>]) -> Vouchers {
        let started = std::time::Instant::now();
        let owners = Owners::lookup(cx.sysroot, paths).map_err(|e| e.to_string());
        tracing::debug!(
            files = paths.len(),
            ms = started.elapsed().as_millis() as u64,
            "package database looked up for setuid/setgid files"
        );
        Vouchers {
            owners,
            digests: Mutex::default(),
        }
    }

    /// Why no verdict can be given at all: the package database could not be read.
    pub fn unreadable(&self) -> Option<&str> {
        self.owners.as_ref().err().map(String::as_str)
    }

    /// Damage met in the database (the rest was used), for evidence.
    pub fn problems(&self) -> &[String] {
        match &self.owners {
            Ok(Some(o)) => &o.problems,
            _ => &[],
        }
    }

    fn hashed(&self, cx: &Context<'_>, path: &[u8], algo: DigestAlgo) -> Result<Hashed, String> {
        let mut digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        digests
            .entry((path.to_vec(), algo))
            .or_insert_with(|| {
                let at = Path::new(std::ffi::OsStr::from_bytes(path));
                digest_file(cx.sysroot, at, algo)
                    .map(|(hex, md)| Hashed {
                        hex,
                        mode: md.mode() & 0o7777,
                        uid: md.uid(),
                        gid: md.gid(),
                    })
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The verdict on one setuid/setgid file (`mode`, `uid` and `gid` as the walk saw it);
    /// `allowed` says whether the rule's `allow` names it.
    pub fn judge(
        &self,
        cx: &Context<'_>,
        accounts: &Accounts,
        path: &[u8],
        (mode, uid, gid): (u32, u32, u32),
        allowed: bool,
    ) -> Verdict {
        let shown = display_bytes(path);
        let name = |id: u32, of: fn(&Accounts, u32) -> Option<&str>| {
            of(accounts, id).map_or_else(|| id.to_string(), str::to_string)
        };
        let seen = format!(
            "mode {mode:04o}, owner {}, group {}",
            name(uid, Accounts::user),
            name(gid, Accounts::group)
        );
        let owners = match &self.owners {
            Ok(Some(owners)) => owners,
            Ok(None) if allowed => return Verdict::Allowed,
            Ok(None) => {
                return Verdict::Fails(
                    Evidence::new(
                        "setuid/setgid file, and the root has no package database (dpkg or rpm) to vouch for it",
                    )
                    .path(shown)
                    .found(seen)
                    .expected("a file of an installed package, or a path in the rule's allow-list"),
                )
            }
            Err(e) => {
                return Verdict::Fails(
                    Evidence::new(format!(
                        "setuid/setgid file, and the package database could not be read to vouch for it: {e}"
                    ))
                    .path(shown)
                    .found(seen),
                )
            }
        };
        let shipped = owners.shipped(path);
        if shipped.is_empty() {
            if allowed {
                return Verdict::Allowed;
            }
            return Verdict::Fails(
                Evidence::new(format!(
                    "setuid/setgid file that no installed package ships (per {})",
                    owners.database
                ))
                .path(shown)
                .found(seen)
                .expected("a file of an installed package, or a path in the rule's allow-list"),
            );
        }
        let mut first_problem = None;
        for record in shipped {
            match self.check_record(cx, accounts, owners, path, record) {
                Ok(what) => return Verdict::Shipped(what.path(shown)),
                Err(problem) => {
                    first_problem.get_or_insert(problem);
                }
            }
        }
        Verdict::Fails(
            first_problem
                .unwrap_or_else(|| Evidence::new("no package record could be checked"))
                .path(shown),
        )
    }

    /// Whether the file is what `record`'s package shipped: `Ok` with the evidence of it, or the
    /// first difference.
    fn check_record(
        &self,
        cx: &Context<'_>,
        accounts: &Accounts,
        owners: &Owners,
        path: &[u8],
        record: &Shipped,
    ) -> Result<Evidence, Evidence> {
        let pkg = &record.package;
        let source = match owners.format {
            Some(PackageFormat::Rpm) => "rpm record",
            _ => "md5sums",
        };
        let digest = match &record.digest {
            Ok(d) => d,
            Err(NoDigest::NotRecorded) => {
                return Err(Evidence::new(format!(
                    "setuid/setgid file of {pkg}, which records no digest of its content, so it cannot be verified"
                )))
            }
            Err(NoDigest::UnknownAlgorithm(id)) => {
                return Err(Evidence::new(format!(
                    "setuid/setgid file of {pkg}, whose rpm record uses digest algorithm {id}, which ec2-harden does not compute"
                )))
            }
        };
        let file = self.hashed(cx, path, digest.algo).map_err(|e| {
            Evidence::new(format!(
                "setuid/setgid file of {pkg} that could not be read to verify it: {e}"
            ))
        })?;
        let owner = accounts
            .user(file.uid)
            .map_or_else(|| file.uid.to_string(), str::to_string);
        let group = accounts
            .group(file.gid)
            .map_or_else(|| file.gid.to_string(), str::to_string);
        let what = privileges(file.mode, &owner, &group);
        if file.hex != digest.hex {
            return Err(Evidence::new(format!(
                "{what}, listed by {pkg}, but its content differs from the package's {source} ({})",
                digest.algo.name()
            ))
            .found(file.hex)
            .expected(digest.hex.clone()));
        }
        if let Some(recorded) = record.mode {
            if recorded & 0o170000 != 0o100000 {
                return Err(Evidence::new(format!(
                    "{what}: {pkg} records {} as something other than a regular file",
                    record.listed_as
                )));
            }
            if recorded & 0o7777 != file.mode {
                return Err(Evidence::new(format!(
                    "{what}, shipped by {pkg}, but its mode differs from the package's rpm record"
                ))
                .found(format!("{:04o}", file.mode))
                .expected(format!("{:04o}", recorded & 0o7777)));
            }
        }
        for (what_id, recorded, actual) in [
            ("owner", &record.user, &owner),
            ("group", &record.group, &group),
        ] {
            if let Some(recorded) = recorded {
                if recorded != actual {
                    return Err(Evidence::new(format!(
                        "{what}, shipped by {pkg}, but its {what_id} differs from the package's rpm record"
                    ))
                    .found(actual.clone())
                    .expected(recorded.clone()));
                }
            }
        }
        let mut evidence = match owners.format {
            Some(PackageFormat::Rpm) => format!(
                "{what}, shipped by {pkg}, content ({}) and mode match its rpm record{}",
                digest.algo.name(),
                if record.user.is_some() || record.group.is_some() {
                    ", as do owner and group"
                } else {
                    ""
                }
            ),
            _ => format!("{what}, shipped by {pkg}, content matches its md5sums"),
        };
        if let Some(o) = owners.statoverride(path) {
            let e = &o.entry;
            let id_matches = |want: &str, id: u32, name: &str| match want.strip_prefix('#') {
                Some(n) => n.parse() == Ok(id),
                None => want == name,
            };
            let ok = e.mode == file.mode
                && id_matches(&e.user, file.uid, &owner)
                && id_matches(&e.group, file.gid, &group);
            let entry = format!("{} {} {:04o}", e.user, e.group, e.mode);
            if !ok {
                return Err(Evidence::new(format!(
                    "{what}, shipped by {pkg}, but owner, group or mode differ from its dpkg-statoverride entry ({}, line {})",
                    crate::host::packages::dpkg_files::STATOVERRIDE,
                    e.line
                ))
                .found(format!("{owner} {group} {:04o}", file.mode))
                .expected(entry));
            }
            evidence.push_str(&format!(
                ", owner, group and mode match its dpkg-statoverride entry ({entry})"
            ));
        }
        if record.listed_as.as_bytes() != path {
            evidence.push_str(&format!(" (listed as {})", record.listed_as));
        }
        Ok(Evidence::new(evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::packages::rpmheader::HeaderBuilder;
    use std::os::unix::fs::PermissionsExt;

    struct Tree {
        dir: tempfile::TempDir,
        sysroot: crate::sysroot::Sysroot,
    }

    impl Tree {
        fn new(files: &[(&str, &[u8], u32)]) -> Tree {
            let dir = tempfile::tempdir().unwrap();
            for (path, content, mode) in files {
                let p = dir.path().join(path.trim_start_matches('/'));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, content).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            let sysroot = crate::sysroot::Sysroot::open(dir.path()).unwrap();
            Tree { dir, sysroot }
        }

        /// Each path's verdict, by a rule whose `allow` names `allowed`.
        fn verdicts(&self, paths: &[&str], allowed: &[&str]) -> Vec<Verdict> {
            let facts = crate::host::HostFacts::default();
            let cx = Context::new(&self.sysroot, crate::rule::Stage::Run, &facts, true);
            let accounts = Accounts::read(&self.sysroot);
            let wanted: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
            let vouchers = Vouchers::lookup(&cx, &wanted);
            assert_eq!(vouchers.unreadable(), None);
            paths
                .iter()
                .map(|p| {
                    let md = std::fs::metadata(self.dir.path().join(&p[1..])).unwrap();
                    let seen = (md.mode() & 0o7777, md.uid(), md.gid());
                    vouchers.judge(&cx, &accounts, p.as_bytes(), seen, allowed.contains(p))
                })
                .collect()
        }
    }

    fn md5_hex(content: &[u8]) -> String {
        use md5::Digest as _;
        md5::Md5::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn message(v: &Verdict) -> String {
        match v {
            Verdict::Shipped(e) => format!("shipped: {e}"),
            Verdict::Allowed => "allowed".into(),
            Verdict::Fails(e) => format!("fails: {e}"),
        }
    }

    #[test]
    fn dpkg_vouches_for_unchanged_files_of_its_packages() {
        let sums = format!(
            "{}  usr/sbin/exim4\n{}  usr/bin/tampered\n",
            md5_hex(b"exim4"),
            md5_hex(b"original")
        );
        let me = nix::unistd::geteuid().as_raw();
        let my_group = nix::unistd::getegid().as_raw();
        let overrides = format!(
            "#{me} #{my_group} 2755 /usr/bin/crontab\n#{me} #{my_group} 4750 /usr/bin/strict\n"
        );
        let tree = Tree::new(&[
            ("/usr/sbin/exim4", b"exim4", 0o4755),
            ("/usr/bin/tampered", b"patched", 0o4755),
            ("/usr/bin/crontab", b"crontab", 0o2755),
            ("/usr/bin/strict", b"strict", 0o4755),
            ("/usr/local/bin/helper", b"helper", 0o4755),
            ("/usr/local/bin/site", b"site", 0o4755),
            (
                "/var/lib/dpkg/info/exim4-daemon-light.list",
                b"/usr/sbin/exim4\n/usr/bin/tampered\n",
                0o644,
            ),
            (
                "/var/lib/dpkg/info/exim4-daemon-light.md5sums",
                sums.as_bytes(),
                0o644,
            ),
            (
                "/var/lib/dpkg/info/cron:amd64.list",
                b"/usr/bin/crontab\n/usr/bin/strict\n",
                0o644,
            ),
            (
                "/var/lib/dpkg/info/cron:amd64.md5sums",
                format!(
                    "{}  usr/bin/crontab\n{}  usr/bin/strict\n",
                    md5_hex(b"crontab"),
                    md5_hex(b"strict")
                )
                .as_bytes(),
                0o644,
            ),
            ("/var/lib/dpkg/statoverride", overrides.as_bytes(), 0o644),
        ]);
        let paths = [
            "/usr/sbin/exim4",
            "/usr/bin/tampered",
            "/usr/bin/crontab",
            "/usr/bin/strict",
            "/usr/local/bin/helper",
            "/usr/local/bin/site",
        ];
        // the site allows its own program, and (to no avail) the tampered packaged one
        let got: Vec<String> = tree
            .verdicts(&paths, &["/usr/local/bin/site", "/usr/bin/tampered"])
            .iter()
            .map(message)
            .collect();
        assert!(
            got[0].starts_with("shipped: /usr/sbin/exim4: setuid ")
                && got[0].ends_with(", shipped by exim4-daemon-light, content matches its md5sums"),
            "{}",
            got[0]
        );
        assert!(
            got[1].starts_with("fails: /usr/bin/tampered: setuid ")
                && got[1].contains("listed by exim4-daemon-light, but its content differs from the package's md5sums (md5)")
                && got[1].contains(&md5_hex(b"original")),
            "{}",
            got[1]
        );
        assert!(
            got[2].ends_with(&format!(
                "shipped by cron:amd64, content matches its md5sums, owner, group and mode match its dpkg-statoverride entry (#{me} #{my_group} 2755)"
            )),
            "{}",
            got[2]
        );
        assert!(
            got[3].contains(
                "differ from its dpkg-statoverride entry (/var/lib/dpkg/statoverride, line 2)"
            ) && got[3].ends_with(&format!("expected #{me} #{my_group} 4750)")),
            "{}",
            got[3]
        );
        assert!(
            got[4].starts_with(
                "fails: /usr/local/bin/helper: setuid/setgid file that no installed package ships (per /var/lib/dpkg/info)"
            ),
            "{}",
            got[4]
        );
        assert_eq!(got[5], "allowed");
    }

    #[test]
    fn rpm_vouches_for_content_mode_and_owner() {
        use sha2::Digest as _;
        let sha = |b: &[u8]| -> String {
            sha2::Sha256::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect()
        };
        let tree = Tree::new(&[
            ("/usr/bin/sudo", b"sudo", 0o4111),
            ("/usr/bin/passwd", b"passwd", 0o4755),
            ("/usr/bin/newgrp", b"newgrp", 0o4755),
        ]);
        // no /etc/passwd in the tree: owners are their numbers
        let me = nix::unistd::geteuid().as_raw().to_string();
        let other = (nix::unistd::geteuid().as_raw() + 1).to_string();
        let header = HeaderBuilder::new()
            .string(1000, "shadow-utils")
            .strings(1118, &["/usr/bin/"])
            .strings(1117, &["sudo", "passwd", "newgrp"])
            .int32(1116, &[0, 0, 0])
            .int16(1030, &[0o104111, 0o100755, 0o104755])
            .strings(1035, &[sha(b"sudo"), sha(b"passwd"), sha(b"newgrp")])
            .int32(5011, &[8])
            .strings(1039, &[me.as_str(), me.as_str(), other.as_str()])
            .build();
        std::fs::create_dir_all(tree.dir.path().join("var/lib/rpm")).unwrap();
        let conn =
            rusqlite::Connection::open(tree.dir.path().join("var/lib/rpm/rpmdb.sqlite")).unwrap();
        conn.execute(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [header])
            .unwrap();
        let got: Vec<String> = tree
            .verdicts(
                &["/usr/bin/sudo", "/usr/bin/passwd", "/usr/bin/newgrp"],
                &[],
            )
            .iter()
            .map(message)
            .collect();
        assert_eq!(
            got[0],
            format!("shipped: /usr/bin/sudo: setuid {me}, shipped by shadow-utils, content (sha256) and mode match its rpm record, as do owner and group")
        );
        assert!(
            got[1].contains(
                "but its mode differs from the package's rpm record (found 4755, expected 0755)"
            ),
            "{}",
            got[1]
        );
        assert!(
            got[2].contains(&format!("but its owner differs from the package's rpm record (found {me}, expected {other})")),
            "{}",
            got[2]
        );
    }

    #[test]
    fn without_a_package_database_only_the_allow_list_accepts() {
        let tree = Tree::new(&[("/usr/bin/su", b"su", 0o4755), ("/opt/x", b"x", 0o2755)]);
        let got: Vec<String> = tree
            .verdicts(&["/usr/bin/su", "/opt/x"], &["/opt/x"])
            .iter()
            .map(message)
            .collect();
        assert!(
            got[0].starts_with("fails: /usr/bin/su: setuid/setgid file, and the root has no package database (dpkg or rpm) to vouch for it"),
            "{}",
            got[0]
        );
        assert_eq!(got[1], "allowed");
    }
}
