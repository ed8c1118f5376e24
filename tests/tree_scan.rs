//! `[[tree_scan]]` on fixture trees: each scan passes on the hardened Debian 12 tree and catches
//! its own seeded fault (and only that), evidence is capped and sorted with the true total,
//! non-UTF-8 names are printed escaped, `exclude`/`allow` in a site layer work, the tree is walked
//! once however many rules scan it, and unreadable account databases are errors, not floods.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use common::{apply, bin, check_json, fixture, ids_with, result, run, run_ok, status};

const SCANS: [&str; 5] = [
    "files-no-ungrouped",
    "files-no-unowned",
    "files-no-world-writable",
    "files-suid-sgid-allowlist",
    "files-world-writable-dirs-sticky",
];

fn failing_scans(report: &serde_json::Value) -> Vec<String> {
    ids_with(report, "fail")
        .into_iter()
        .filter(|id| SCANS.contains(&id.as_str()))
        .collect()
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn each_scan_passes_clean_and_catches_its_seeded_fault() {
    let clean = fixture("debian-12-hardened");
    let (_, report, stderr) = check_json(clean.path(), &["--only", "files"]);
    for id in SCANS {
        assert_eq!(status(&report, id), "pass", "{id}: {stderr}");
    }
    let cases: &[(&str, &[&str])] = &[
        (
            "write /usr/local/bin/tool #!/bin/sh\\n\nchmod 0646 /usr/local/bin/tool",
            &["files-no-world-writable"],
        ),
        (
            "mkdir /srv/drop\nchmod 0777 /srv/drop",
            &["files-world-writable-dirs-sticky"],
        ),
        // the sticky bit makes a shared drop directory safe, as /tmp
        ("mkdir /srv/drop\nchmod 1777 /srv/drop", &[]),
        (
            "write /opt/app/data x\nchown 4242:0 /opt/app/data",
            &["files-no-unowned"],
        ),
        (
            "write /opt/app/data x\nchown 0:4242 /opt/app/data",
            &["files-no-ungrouped"],
        ),
        // symlinks are judged themselves (lchown), never followed
        (
            "symlink /etc/passwd /srv/link\nchown 4242:4242 /srv/link",
            &["files-no-ungrouped", "files-no-unowned"],
        ),
        (
            "write /usr/local/bin/rootsh x\nchmod 4755 /usr/local/bin/rootsh",
            &["files-suid-sgid-allowlist"],
        ),
        (
            "write /usr/local/bin/games x\nchmod 2755 /usr/local/bin/games",
            &["files-suid-sgid-allowlist"],
        ),
        // setuid programs that packages ship as they are (tests below: the package database)
        (
            "write /usr/bin/passwd x\nchmod 4755 /usr/bin/passwd\nwrite /usr/bin/crontab x\nchmod 2755 /usr/bin/crontab\npackage dpkg passwd /usr/bin/passwd\npackage dpkg cron /usr/bin/crontab",
            &[],
        ),
        // ... but not without a package database to vouch for them
        (
            "write /usr/bin/passwd x\nchmod 4755 /usr/bin/passwd",
            &["files-suid-sgid-allowlist"],
        ),
        // /proc, /sys, /dev and /run are never walked
        (
            "write /proc/sys/kernel/zz 1\\n\nchmod 0666 /proc/sys/kernel/zz\nwrite /run/x x\nchmod 4777 /run/x",
            &[],
        ),
        // container storage is excluded by the common rules
        (
            "write /var/lib/docker/overlay2/l1/diff/usr/bin/su x\nchmod 4755 /var/lib/docker/overlay2/l1/diff/usr/bin/su\nchown 4242:4242 /var/lib/docker/overlay2/l1/diff/usr/bin/su",
            &[],
        ),
    ];
    for (fault, want) in cases {
        let root = fixture("debian-12-hardened");
        apply(root.path(), fault);
        let (_, report, _) = check_json(root.path(), &["--only", "files"]);
        assert_eq!(failing_scans(&report), *want, "fault `{fault}`");
        assert!(
            ids_with(&report, "error").is_empty(),
            "{fault}: {:?}",
            ids_with(&report, "error")
        );
    }
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn evidence_is_capped_sorted_counted_and_escaped() {
    let root = fixture("debian-12-hardened");
    let dir = root.path().join("srv/share");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..25 {
        let f = dir.join(format!("f{i:02}"));
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // a name that is not UTF-8 and sorts first
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"a\xff\n"));
    std::fs::write(&odd, "x").unwrap();
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o646)).unwrap();
    let (code, report, _) = check_json(root.path(), &["--only", "files", "--fail-on", "medium"]);
    assert_eq!(code, 1);
    let r = result(&report, "files-no-world-writable");
    let ev = r["evidence"].as_array().unwrap();
    assert_eq!(ev.len(), 21, "summary + 20 paths: {r}");
    assert_eq!(ev[0]["found"], "26");
    let summary = ev[0]["message"].as_str().unwrap();
    assert!(
        summary.starts_with("26 world-writable regular files in ")
            && summary.ends_with("; the first 20 in path order follow"),
        "{summary}"
    );
    assert_eq!(ev[1]["path"], "/srv/share/a\\xff\\x0a");
    assert_eq!(ev[1]["found"], "mode 0646");
    let listed: Vec<&str> = ev[2..]
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..19).map(|i| format!("/srv/share/f{i:02}")).collect();
    assert_eq!(listed, want);
    // the text report shows the same, escaped
    let (_, text, _) = run(&[
        "check",
        "--root",
        root.path().to_str().unwrap(),
        "--only",
        "files",
    ]);
    assert!(text.contains("/srv/share/a\\xff\\x0a"), "{text}");
}

#[test]
fn one_walk_serves_every_scan() {
    let root = fixture("debian-12-hardened");
    let out = bin()
        .args(["check", "--only", "files", "--format", "json", "--root"])
        .arg(root.path())
        .env("EC2_HARDEN_LOG", "ec2_harden=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("tree scan walk done").count(),
        1,
        "five rules, one walk:\n{stderr}"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn a_site_layer_excludes_and_allows() {
    let root = fixture("debian-12-hardened");
    apply(
        root.path(),
        "write /srv/scratch/cache/blob x\nchmod 0666 /srv/scratch/cache/blob\n\
         write /opt/vendor/bin/helper x\nchmod 4755 /opt/vendor/bin/helper\n\
         write /opt/vendor/lib/x/agent x\nchmod 4755 /opt/vendor/lib/x/agent",
    );
    let site = tempfile::tempdir().unwrap();
    let file = site.path().join("site.toml");
    std::fs::write(
        &file,
        r#"[baseline]
name = "site"
version = "1"
description = "test site"
extends = ["debian-12"]

[[tree_scan]]
id = "files-no-world-writable"
title = "No world-writable files but the scratch area"
severity = "medium"
rationale = "r"
remediation = "r"
scan = "world-writable-files"
exclude = ["/srv/scr*"]

[[tree_scan]]
id = "files-suid-sgid-allowlist"
title = "Debian's set plus the vendor helper"
severity = "high"
rationale = "r"
remediation = "r"
scan = "suid-sgid"
allow = ["/usr/bin/*", "/opt/vendor/bin/*"]
"#,
    )
    .unwrap();
    let (_, report, stderr) = check_json(
        root.path(),
        &["--baseline", file.to_str().unwrap(), "--only", "files"],
    );
    assert_eq!(
        status(&report, "files-no-world-writable"),
        "pass",
        "{stderr}"
    );
    // `*` stays within one component: /opt/vendor/lib/x/agent is not allowed
    let r = result(&report, "files-suid-sgid-allowlist");
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(r["evidence"][0]["found"], "1");
    assert_eq!(r["evidence"][1]["path"], "/opt/vendor/lib/x/agent");
    assert_eq!(
        r["evidence"][1]["found"],
        "mode 4755, owner root, group root"
    );
}

/// The Debian tree with the setuid programs the comparison with OpenSCAP found failing, shipped by
/// their packages as dpkg records them (`/bin/su` through usrmerge's `/bin -> usr/bin`).
const PACKAGED: &str = "\
write /usr/sbin/exim4 exim4 4.96\\n
chmod 4755 /usr/sbin/exim4
write /usr/lib/x86_64-linux-gnu/utempter/utempter utempter\\n
chmod 2755 /usr/lib/x86_64-linux-gnu/utempter/utempter
write /usr/bin/su su\\n
chmod 4755 /usr/bin/su
symlink usr/bin /bin
package dpkg exim4-daemon-light /usr/sbin/exim4
package dpkg libutempter0:amd64 /usr/lib/x86_64-linux-gnu/utempter/utempter
package dpkg util-linux /bin/su";

/// The suid-sgid rule's result on the packaged Debian tree with `ops` applied after, and the site
/// layer `site` (a TOML rule table) when given.
fn suid_rule(ops: &str, site: Option<&str>) -> serde_json::Value {
    let root = fixture("debian-12-hardened");
    apply(root.path(), PACKAGED);
    apply(root.path(), ops);
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--only", "files"];
    let file = dir.path().join("site.toml");
    if let Some(rule) = site {
        std::fs::write(
            &file,
            format!("[baseline]\nname = \"site\"\nversion = \"1\"\ndescription = \"d\"\nextends = [\"debian-12\"]\n\n{rule}"),
        )
        .unwrap();
        args.extend(["--baseline", file.to_str().unwrap()]);
    }
    let (_, report, stderr) = check_json(root.path(), &args);
    let r = result(&report, "files-suid-sgid-allowlist").clone();
    assert_ne!(r["status"], "error", "{r}\n{stderr}");
    r
}

fn evidence_of<'a>(r: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no evidence for {path}: {r}"))
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn setuid_files_are_judged_against_the_dpkg_database() {
    // shipped unchanged: each passes, naming its package
    let r = suid_rule("", None);
    assert_eq!(r["status"], "pass", "{r}");
    assert!(
        r["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("3 setuid/setgid files in "),
        "{r}"
    );
    assert_eq!(
        evidence_of(&r, "/usr/sbin/exim4")["message"],
        "setuid root, shipped by exim4-daemon-light, content matches its md5sums"
    );
    assert_eq!(
        evidence_of(&r, "/usr/lib/x86_64-linux-gnu/utempter/utempter")["message"],
        "setgid root, shipped by libutempter0:amd64, content matches its md5sums"
    );
    assert_eq!(
        evidence_of(&r, "/usr/bin/su")["message"],
        "setuid root, shipped by util-linux, content matches its md5sums (listed as /bin/su)"
    );

    // content that differs from the package's md5sums
    let r = suid_rule("append /usr/sbin/exim4 patched", None);
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(r["evidence"][0]["found"], "1");
    let ev = evidence_of(&r, "/usr/sbin/exim4");
    assert!(
        ev["message"].as_str().unwrap().contains(
            "listed by exim4-daemon-light, but its content differs from the package's md5sums"
        ),
        "{ev}"
    );

    // a setuid file no package ships
    let unowned = "write /usr/local/sbin/helper x\nchmod 4755 /usr/local/sbin/helper";
    let r = suid_rule(unowned, None);
    assert_eq!(r["status"], "fail", "{r}");
    let ev = evidence_of(&r, "/usr/local/sbin/helper");
    assert_eq!(
        ev["message"],
        "setuid/setgid file that no installed package ships (per /var/lib/dpkg/info)"
    );
    assert_eq!(ev["found"], "mode 4755, owner root, group root");

    // ... accepted when the site's allow-list names it; a changed packaged file is not
    let site = r#"[[tree_scan]]
id = "files-suid-sgid-allowlist"
title = "t"
severity = "high"
rationale = "r"
remediation = "r"
scan = "suid-sgid"
allow = ["/usr/local/sbin/helper", "/usr/sbin/exim4"]
"#;
    let r = suid_rule(unowned, Some(site));
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        evidence_of(&r, "/usr/local/sbin/helper")["message"],
        "setuid/setgid file in the rule's allow-list"
    );
    let r = suid_rule(
        &format!("{unowned}\nappend /usr/sbin/exim4 patched"),
        Some(site),
    );
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(r["evidence"][0]["found"], "1", "only exim4: {r}");
    evidence_of(&r, "/usr/sbin/exim4");

    // dpkg-statoverride: the file must have the entry's owner, group and mode
    let r = suid_rule(
        "write /var/lib/dpkg/statoverride root root 4750 /usr/sbin/exim4\\n",
        None,
    );
    assert_eq!(r["status"], "fail", "{r}");
    let ev = evidence_of(&r, "/usr/sbin/exim4");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("differ from its dpkg-statoverride entry"),
        "{ev}"
    );
    assert_eq!(
        (ev["found"].as_str(), ev["expected"].as_str()),
        (Some("root root 4755"), Some("root root 4750"))
    );
    let r = suid_rule(
        "write /var/lib/dpkg/statoverride root root 4755 /usr/sbin/exim4\\n",
        None,
    );
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        evidence_of(&r, "/usr/sbin/exim4")["message"],
        "setuid root, shipped by exim4-daemon-light, content matches its md5sums, owner, group and mode match its dpkg-statoverride entry (root root 4755)"
    );
}

/// A package built by rpmbuild and installed by rpm into a root: the agent reads the file list,
/// modes, digests and owners rpm itself wrote.
#[test]
#[ignore = "needs root, tools: rpmbuild and rpm"]
fn setuid_files_are_judged_against_a_real_rpm_database() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("root");
    std::fs::write(
        w.join("suidtool.spec"),
        "Name: suidtool\nVersion: 1.0\nRelease: 1\nSummary: t\nLicense: MIT\nBuildArch: noarch\n\
         %description\nt\n%install\nmkdir -p %{buildroot}/usr/bin\n\
         printf 'suid tool\\n' > %{buildroot}/usr/bin/suidtool\n\
         %files\n%attr(4711,root,root) /usr/bin/suidtool\n",
    )
    .unwrap();
    run_ok(
        std::process::Command::new("rpmbuild")
            .args(["-bb", "--define"])
            .arg(format!("_topdir {}", w.join("build").display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", w.join("rpms").display()))
            .arg(w.join("suidtool.spec")),
    );
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let rpm = |args: &[&str]| {
        let mut c = std::process::Command::new("rpm");
        c.arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args);
        c
    };
    run_ok(&mut rpm(&["--initdb"]));
    run_ok(
        rpm(&["-i", "--nodeps", "--noscripts"])
            .arg(w.join("rpms/noarch/suidtool-1.0-1.noarch.rpm")),
    );
    assert_eq!(
        std::fs::metadata(root.join("usr/bin/suidtool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4711
    );
    let judge = || {
        let (_, report, stderr) = check_json(&root, &["--only", "files"]);
        let r = result(&report, "files-suid-sgid-allowlist").clone();
        assert_ne!(r["status"], "error", "{r}\n{stderr}");
        r
    };
    let r = judge();
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        evidence_of(&r, "/usr/bin/suidtool")["message"],
        "setuid root, shipped by suidtool, content (sha256) and mode match its rpm record, as do owner and group"
    );
    // rpm records the mode: a readable copy of the execute-only program is a change
    std::fs::set_permissions(
        root.join("usr/bin/suidtool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let r = judge();
    assert_eq!(r["status"], "fail", "{r}");
    let ev = evidence_of(&r, "/usr/bin/suidtool");
    assert_eq!(
        (ev["found"].as_str(), ev["expected"].as_str()),
        (Some("4755"), Some("4711")),
        "{ev}"
    );
    // ... and so is different content with the recorded mode
    std::fs::write(root.join("usr/bin/suidtool"), "patched\n").unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/suidtool"),
        std::fs::Permissions::from_mode(0o4711),
    )
    .unwrap();
    let r = judge();
    assert_eq!(r["status"], "fail", "{r}");
    assert!(
        evidence_of(&r, "/usr/bin/suidtool")["message"]
            .as_str()
            .unwrap()
            .contains("its content differs from the package's rpm record (sha256)"),
        "{r}"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn unreadable_account_databases_are_errors_not_floods() {
    let root = fixture("debian-12-hardened");
    apply(root.path(), "rm /etc/group\nmkdir /etc/group");
    let (_, report, _) = check_json(root.path(), &["--only", "files"]);
    let r = result(&report, "files-no-ungrouped");
    assert_eq!(r["status"], "error", "{r}");
    assert!(r["cause"].as_str().unwrap().contains("/etc/group"), "{r}");
    // owners are still judged from the readable /etc/passwd
    assert_eq!(status(&report, "files-no-unowned"), "pass");
}

#[test]
fn bad_parameters_are_rejected_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let head = "[baseline]\nname = \"bad\"\nversion = \"1\"\ndescription = \"d\"\n\n\
                [[tree_scan]]\nid = \"a\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\n\
                remediation = \"r\"\n";
    let validate = |name: &str, tail: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, format!("{head}{tail}")).unwrap();
        let (code, _, stderr) = run(&["baseline", "validate", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        stderr
    };
    let e = validate("scan.toml", "scan = \"world-writeable\"\n");
    assert!(
        e.contains("scan.toml:12:8: error: unknown variant `world-writeable`"),
        "{e}"
    );
    let e = validate(
        "paths.toml",
        "scan = \"unowned\"\nexclude = [\"var/lib\", \"/x/[\"]\n",
    );
    assert!(
        e.contains("paths.toml:13:12: error: path `var/lib` must be absolute"),
        "{e}"
    );
    assert!(
        e.contains("paths.toml:13:23: error: path `/x/[` is not a valid glob"),
        "{e}"
    );
}

/// Makes `depth` nested directories named `name` in `top`, each relative to its parent's fd (the
/// path soon outgrows PATH_MAX), and returns an fd of the deepest.
fn fd_chain(top: &std::path::Path, name: &str, depth: usize) -> std::os::fd::OwnedFd {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut fd = open(top, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        mkdirat(&fd, name, Mode::from_bits_truncate(0o755)).unwrap();
        fd = openat(&fd, name, flags, Mode::empty()).unwrap();
    }
    fd
}

/// Creates the file `name` with `mode` in the directory `dir`.
fn file_at(dir: &std::os::fd::OwnedFd, name: &str, mode: u32) {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{fchmod, Mode};
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty()).unwrap();
    fchmod(&fd, Mode::from_bits_truncate(mode)).unwrap();
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn paths_beyond_path_max_are_scanned_and_a_tree_too_deep_is_an_error() {
    // A world-writable file 6 KB deep: found like any other.
    let root = fixture("debian-12-hardened");
    std::fs::create_dir_all(root.path().join("srv/long")).unwrap();
    let bottom = fd_chain(&root.path().join("srv/long"), &"n".repeat(100), 60);
    file_at(&bottom, "shared", 0o666);
    let (_, report, stderr) = check_json(root.path(), &["--only", "files"]);
    let r = result(&report, "files-no-world-writable");
    assert_eq!(r["status"], "fail", "{r}\n{stderr}");
    let path = r["evidence"][1]["path"].as_str().unwrap();
    assert!(path.len() > 6000 && path.ends_with("/shared"), "{path}");
    assert!(ids_with(&report, "error").is_empty(), "{stderr}");

    // Deeper than the walk goes (32 KiB of path): not a pass, an error naming where it stopped.
    let root = fixture("debian-12-hardened");
    std::fs::create_dir_all(root.path().join("srv/deep")).unwrap();
    let bottom = fd_chain(&root.path().join("srv/deep"), &"n".repeat(200), 170);
    file_at(&bottom, "shared", 0o666);
    let (_, report, _) = check_json(root.path(), &["--only", "files"]);
    for id in SCANS {
        let r = result(&report, id);
        assert_eq!(r["status"], "error", "{id}: {r}");
        let cause = r["cause"].as_str().unwrap();
        assert!(
            cause.starts_with("1 entries could not be read (/srv/deep/nnn")
                && cause.contains(
                    ": not entered: the paths of its entries could be longer than 32768 bytes)"
                ),
            "{cause}"
        );
    }
}
