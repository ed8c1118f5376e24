//! Verdicts that once went wrong on states ComplianceAsCode's rule scenarios put a Debian 12 system
//! in, each pinned on a fixture tree: a value stricter than required passes; audit rules count where
//! auditd loads them from; a login banner must exist and say something; dot files are looked for in
//! every interactive user's home, wherever /etc/passwd puts it; SSH private keys are found by what
//! they are, not by their name; sshd's Banner names a file by its absolute path; /etc/sysctl.conf
//! counts where procps applies the kernel parameters at boot. No root needed: the fixture trees are copies owned by the test user.

mod common;

use common::{apply, check_json, fixture, result};

fn status(report: &serde_json::Value, id: &str) -> String {
    result(report, id)["status"].as_str().unwrap().to_string()
}

fn evidence(report: &serde_json::Value, id: &str) -> String {
    result(report, id)["evidence"].to_string()
}

#[test]
fn a_stricter_umask_than_required_passes() {
    let root = fixture("debian-12-default");
    let login_defs = "/etc/login.defs";
    for (umask, want) in [
        ("022", "fail"),
        ("027", "pass"),
        ("077", "pass"),
        ("177", "pass"),
        ("0027", "pass"),
        ("002", "fail"),
    ] {
        apply(
            root.path(),
            &format!("write {login_defs} UMASK\\t\\t{umask}\\n"),
        );
        let (_, r, _) = check_json(root.path(), &["--offline", "--only", "accounts"]);
        assert_eq!(status(&r, "login-defs-umask"), want, "UMASK {umask}");
    }
}

#[test]
fn audit_rules_count_where_auditd_loads_them_from() {
    let root = fixture("debian-12-default");
    let run = |root: &std::path::Path| check_json(root, &["--offline", "--only", "logging"]).1;
    // only /etc/audit/audit.rules, as a host that never used rules.d has it: augenrules keeps it
    apply(
        root.path(),
        "write /etc/audit/audit.rules -D\\n-w /etc/passwd -p wa -k identity\\n-e 2\\n",
    );
    let r = run(root.path());
    assert_eq!(
        status(&r, "audit-watch-passwd"),
        "pass",
        "{}",
        evidence(&r, "audit-watch-passwd")
    );
    assert_eq!(status(&r, "audit-rules-immutable"), "pass");
    assert!(evidence(&r, "audit-watch-passwd").contains("holds no rule"));
    assert_eq!(status(&r, "audit-watch-shadow"), "fail");
    // a rules.d with rules replaces it: augenrules compiles rules.d into audit.rules at start
    apply(
        root.path(),
        "write /etc/audit/rules.d/10-base.rules -D\\n-b 8192\\n",
    );
    let r = run(root.path());
    assert_eq!(status(&r, "audit-watch-passwd"), "fail");
    assert!(evidence(&r, "audit-watch-passwd").contains("augenrules compiles"));
    apply(
        root.path(),
        "append /etc/audit/rules.d/10-base.rules -w /etc/passwd -p wa -k identity\\n",
    );
    assert_eq!(status(&run(root.path()), "audit-watch-passwd"), "pass");
}

#[test]
fn a_login_banner_must_exist_and_say_something() {
    let root = fixture("debian-12-default");
    let run = |root: &std::path::Path| check_json(root, &["--offline", "--only", "banners"]).1;
    for (banner, rule) in [
        ("/etc/issue", "banner-issue-no-os-leak"),
        ("/etc/issue.net", "banner-issue-net-no-os-leak"),
    ] {
        apply(
            root.path(),
            &format!("write {banner} Authorised users only.\\n"),
        );
        assert_eq!(status(&run(root.path()), rule), "pass", "{banner}");
        apply(root.path(), &format!("write {banner} \\n\\n"));
        let r = run(root.path());
        assert_eq!(status(&r, rule), "fail", "{banner} blank");
        assert!(
            evidence(&r, rule).contains("no line matches"),
            "{}",
            evidence(&r, rule)
        );
        apply(root.path(), &format!("rm {banner}"));
        let r = run(root.path());
        assert_eq!(status(&r, rule), "fail", "{banner} missing");
        assert!(
            evidence(&r, rule).contains("none of"),
            "{}",
            evidence(&r, rule)
        );
        apply(
            root.path(),
            &format!("write {banner} Debian GNU/Linux 12 \\\\n \\\\l\\n"),
        );
        assert_eq!(
            status(&run(root.path()), rule),
            "fail",
            "{banner} leaks the OS"
        );
    }
}

#[test]
fn the_ssh_banner_is_a_file_named_by_its_absolute_path() {
    let root = fixture("debian-12-default");
    let run = |root: &std::path::Path| check_json(root, &["--offline", "--only", "ssh"]).1;
    for (line, want) in [
        ("Banner /etc/issue.net", "pass"),
        ("Banner none", "fail"),
        ("Banner wrong_value", "fail"),
        ("Banner issue.net", "fail"),
    ] {
        apply(
            root.path(),
            &format!("write /etc/ssh/sshd_config.d/50-banner.conf {line}\n"),
        );
        let r = run(root.path());
        assert_eq!(
            status(&r, "ssh-banner-set"),
            want,
            "{line}: {}",
            evidence(&r, "ssh-banner-set")
        );
    }
}

#[test]
fn sysctl_conf_counts_where_procps_applies_kernel_parameters_at_boot() {
    let root = fixture("debian-12-default");
    let rule = "sysctl-suid-dumpable-off";
    let run = |root: &std::path::Path| {
        check_json(
            root,
            &[
                "--offline",
                "--profile",
                "cis-level2-server",
                "--rule",
                rule,
            ],
        )
        .1
    };
    // a root without systemd's link to it: systemd-sysctl never reads /etc/sysctl.conf
    apply(
        root.path(),
        "rm /etc/sysctl.d/99-sysctl.conf\nwrite /etc/sysctl.conf fs.suid_dumpable = 0\n",
    );
    assert_eq!(status(&run(root.path()), rule), "fail");
    // procps's `sysctl --system` (its init script, where systemd-sysctl is absent) reads it last
    apply(root.path(), "write /usr/sbin/sysctl #!/bin/sh\n");
    let r = run(root.path());
    assert_eq!(status(&r, rule), "pass", "{}", evidence(&r, rule));
    assert!(evidence(&r, rule).contains("/etc/sysctl.conf"));
    apply(
        root.path(),
        "write /usr/lib/systemd/systemd-sysctl #!/bin/sh\n",
    );
    assert_eq!(status(&run(root.path()), rule), "fail");
}

#[test]
fn dot_files_are_looked_for_in_every_interactive_users_home() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        "append /etc/passwd deploy:x:1500:1500::/srv/deploy:/bin/bash\\nsvc:x:999:999::/var/lib/svc:/usr/sbin/nologin\\n\n\
         write /srv/deploy/.netrc machine example.com login deploy password hunter2\\n\n\
         write /srv/deploy/.forward |/usr/local/bin/handler\\n\n\
         write /var/lib/svc/.netrc x\\n",
    );
    let (_, r, _) = check_json(root.path(), &["--offline", "--only", "accounts"]);
    for rule in ["no-user-netrc", "no-user-forward"] {
        assert_eq!(status(&r, rule), "fail", "{rule}");
        let ev = evidence(&r, rule);
        assert!(ev.contains("/srv/deploy/"), "{rule}: {ev}");
        assert!(ev.contains("interactive user deploy"), "{rule}: {ev}");
        assert!(
            !ev.contains("/var/lib/svc"),
            "{rule}: a nologin account is not interactive: {ev}"
        );
    }
    assert_eq!(status(&r, "no-user-rhosts"), "pass");
}

#[test]
fn ssh_private_keys_are_found_by_content_and_host_key_lines() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        "write /etc/ssh/backup.key -----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaA==\\n-----END OPENSSH PRIVATE KEY-----\\n\n\
         chmod 0644 /etc/ssh/backup.key\n\
         write /srv/keys/host -----BEGIN EC PRIVATE KEY-----\\nMHcC\\n-----END EC PRIVATE KEY-----\\n\n\
         chmod 0644 /srv/keys/host\n\
         append /etc/ssh/sshd_config HostKey /srv/keys/host\\n\n\
         write /etc/ssh/notes.txt not a key\\n\n\
         chmod 0644 /etc/ssh/notes.txt",
    );
    let (_, r, _) = check_json(root.path(), &["--offline", "--only", "files"]);
    let rule = "ssh-host-private-key-permissions";
    assert_eq!(status(&r, rule), "fail");
    let ev = evidence(&r, rule);
    assert!(ev.contains("/etc/ssh/backup.key"), "{ev}");
    assert!(ev.contains("a private key by its content"), "{ev}");
    assert!(ev.contains("/srv/keys/host"), "{ev}");
    assert!(
        ev.contains("named by HostKey at /etc/ssh/sshd_config"),
        "{ev}"
    );
    assert!(!ev.contains("notes.txt"), "{ev}");
}
