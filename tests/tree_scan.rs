//! `[[tree_scan]]` on fixture trees: each scan passes on the hardened Debian 12 tree and catches
//! its own seeded fault (and only that), evidence is capped and sorted with the true total,
//! non-UTF-8 names are printed escaped, `exclude`/`allow` in a site layer work, the tree is walked
//! once however many rules scan it, and unreadable account databases are errors, not floods.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use common::{apply, bin, check_json, fixture, ids_with, result, run, status};

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
        // Debian's own setuid programs are in the debian-12 allow-list
        (
            "write /usr/bin/passwd x\nchmod 4755 /usr/bin/passwd\nwrite /usr/bin/crontab x\nchmod 2755 /usr/bin/crontab",
            &[],
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
