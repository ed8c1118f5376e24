//! The `fim` family inside `check`: stage bake seals the manifest with the baseline's `[fim]`
//! policy, boot/run verify it; each change lands in the rule of its severity, a refused
//! manifest fails `fim-manifest-intact`, and site layers add `[[fim.path]]` rules.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{apply, check_json, fixture, ids_with, result, run, status};

const FIM_RULES: [&str; 5] = [
    "fim-critical-changes",
    "fim-high-changes",
    "fim-low-changes",
    "fim-manifest-intact",
    "fim-medium-changes",
];

fn fim_status(report: &serde_json::Value) -> Vec<(String, String)> {
    FIM_RULES
        .iter()
        .map(|id| (id.to_string(), status(report, id).to_string()))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Seal `root` at stage bake and return the digest the report carries.
fn bake(root: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--stage", "bake", "--only", "fim"];
    args.extend_from_slice(extra);
    let (code, report, stderr) = check_json(root, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status(&report, "fim-manifest-sealed"), "pass", "{report:#}");
    let ev = &result(&report, "fim-manifest-sealed")["evidence"][0];
    assert_eq!(ev["path"], "/var/lib/ec2-harden/manifest");
    let found = ev["found"].as_str().unwrap().to_string();
    assert!(found.starts_with("sha256:") && found.len() == 71, "{found}");
    found
}

fn verify(root: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--stage", "run", "--only", "fim"];
    args.extend_from_slice(extra);
    let (code, report, stderr) = check_json(root, &args);
    assert!(code == 0 || code == 1, "{stderr}");
    (code, report)
}

#[test]
fn bake_seals_and_run_verifies_each_severity_in_its_own_rule() {
    let root = fixture("debian-12-default");
    apply(root.path(), "mkdir /usr/sbin");
    let digest = bake(root.path(), &[]);
    let manifest = root.path().join("var/lib/ec2-harden/manifest");
    assert_eq!(
        fs::metadata(&manifest).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (code, clean) = verify(root.path(), &["--fim-expect-digest", &digest]);
    assert_eq!(code, 0);
    assert_eq!(ids_with(&clean, "pass"), FIM_RULES.to_vec());
    assert!(
        result(&clean, "fim-manifest-intact")["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .contains("matches the pinned digest")
    );

    // one change of each severity
    apply(
        root.path(),
        "write /usr/sbin/backdoor #!/bin/sh\\n\nchmod 4755 /usr/sbin/backdoor\nappend /etc/sudoers.d/README ALL ALL=(ALL) NOPASSWD: ALL\\n\nchmod 0666 /etc/passwd",
    );
    let (code, report) = verify(root.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        fim_status(&report),
        expect(&[
            ("fim-critical-changes", "fail"),
            ("fim-high-changes", "fail"),
            ("fim-low-changes", "pass"),
            ("fim-manifest-intact", "pass"),
            ("fim-medium-changes", "fail"),
        ])
    );
    let critical = &result(&report, "fim-critical-changes")["evidence"];
    assert_eq!(critical[0]["path"], "/usr/sbin/backdoor");
    assert_eq!(critical[0]["message"], "added");
    assert!(critical[0]["found"].as_str().unwrap().contains("setuid"));
    let high = &result(&report, "fim-high-changes")["evidence"];
    assert_eq!(high[0]["path"], "/etc/sudoers.d/README");
    let medium = &result(&report, "fim-medium-changes")["evidence"];
    assert_eq!(medium[0]["path"], "/etc/passwd");
    assert_eq!(medium[0]["found"], "mode 0644 -> 0666");

    // --fail-on critical still fails (a new setuid binary), --fail-on never does not
    let (code, _, _) = check_json(
        root.path(),
        &["--stage", "run", "--only", "fim", "--fail-on", "critical"],
    );
    assert_eq!(code, 1);
}

#[test]
fn refused_manifests_fail_the_intact_rule_and_leave_changes_unknown() {
    let root = fixture("debian-12-default");
    // never sealed
    let (code, report) = verify(root.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "fim-manifest-intact"), "fail");
    let msg = result(&report, "fim-manifest-intact")["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("not found"), "{msg}");
    for id in &FIM_RULES[..3] {
        assert_eq!(status(&report, id), "not-applicable", "{id}");
    }

    let digest = bake(root.path(), &[]);
    // a different pinned digest: refused
    let other = format!("sha256:{}", "0".repeat(64));
    let (_, report) = verify(root.path(), &["--fim-expect-digest", &other]);
    assert_eq!(status(&report, "fim-manifest-intact"), "fail");
    assert!(
        result(&report, "fim-manifest-intact")["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not match the expected")
    );
    assert_eq!(status(&report, "fim-critical-changes"), "not-applicable");

    // the pinned digest also comes from the environment
    let out = common::bin()
        .args(["check", "--root"])
        .arg(root.path())
        .args(["--stage", "run", "--only", "fim", "--format", "json"])
        .env("EC2_HARDEN_FIM_DIGEST", &digest)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&report, "fim-manifest-intact"), "pass");

    // a manifest cut short: refused, not trusted
    let manifest = root.path().join("var/lib/ec2-harden/manifest");
    let bytes = fs::read(&manifest).unwrap();
    fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap();
    let (_, report) = verify(root.path(), &[]);
    assert_eq!(status(&report, "fim-manifest-intact"), "fail");
    assert_eq!(status(&report, "fim-high-changes"), "not-applicable");

    // a malformed digest is a usage error
    let (code, _, stderr) = run(&[
        "check",
        "--root",
        root.path().to_str().unwrap(),
        "--fim-expect-digest",
        "abc",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--fim-expect-digest"), "{stderr}");
}

#[test]
fn site_layers_add_fim_paths_and_bad_ones_are_refused_with_file_line_col() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        "mkdir /opt/app\nwrite /opt/app/server app v1\\n\nwrite /etc/app.conf port=80\\n",
    );
    let site = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        site.path(),
        r#"[baseline]
name = "site"
version = "1"

[[fim.path]]
path = "/opt/app"
policy = "full"

[[fim.path]]
path = "/etc/app.conf"
policy = "ignore"
"#,
    )
    .unwrap();
    let site_arg = site.path().to_str().unwrap();
    bake(root.path(), &["--baseline", site_arg]);
    apply(
        root.path(),
        "write /opt/app/server app v2 (tampered)\\n\nwrite /etc/app.conf port=8080\\n",
    );
    let (_, report) = verify(root.path(), &["--baseline", site_arg]);
    // content changes outside system places are medium
    let medium = &result(&report, "fim-medium-changes");
    assert_eq!(medium["status"], "fail", "{report:#}");
    assert_eq!(
        medium["evidence"].as_array().unwrap().len(),
        1,
        "{medium:#}"
    );
    assert_eq!(medium["evidence"][0]["path"], "/opt/app/server");
    assert_eq!(medium["evidence"][0]["found"], "size 7 -> 18");
    // the ignored file is not reported anywhere
    assert!(!report.to_string().contains("/etc/app.conf"));

    // `fim verify` compares with the policy sealed in the manifest, and says the same
    let (code, stdout, _) = run(&["fim", "verify", "--root", root.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("/opt/app/server"), "{stdout}");
    assert!(stdout.contains("baseline site"), "{stdout}");

    // a relative path (at its table) and an unknown policy (at its value) are refused
    let bad = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        bad.path(),
        "[baseline]\nname = \"bad\"\nversion = \"1\"\n\n[[fim.path]]\npath = \"opt/app\"\npolicy = \"full\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["baseline", "validate", bad.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{}:5:1", bad.path().display()))
            && stderr.contains("not an absolute path"),
        "{stderr}"
    );
    fs::write(
        bad.path(),
        "[baseline]\nname = \"bad\"\nversion = \"1\"\n\n[[fim.path]]\npath = \"/opt\"\npolicy = \"sometimes\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["baseline", "validate", bad.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":7:") && stderr.contains("sometimes"),
        "{stderr}"
    );
}

#[test]
fn fim_init_takes_its_paths_from_the_baseline() {
    let root = fixture("debian-12-default");
    apply(root.path(), "mkdir /srv/data\nwrite /srv/data/a one\\n");
    let site = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        site.path(),
        "[baseline]\nname = \"only-srv\"\nversion = \"1\"\n\n[fim]\ndefaults = false\n\n[[fim.path]]\npath = \"/srv\"\npolicy = \"full\"\n",
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let s = site.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["fim", "init", "--root", r, "--baseline", s]);
    assert_eq!(code, 0, "{stderr}");
    // /srv and /srv/data and /srv/data/a; nothing of /etc or /usr
    assert!(stdout.contains("fim init: 3 entries"), "{stdout}");
    let (code, _, stderr) = run(&[
        "fim",
        "init",
        "--root",
        r,
        "--baseline",
        s,
        "--path",
        "/etc",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("give one"), "{stderr}");
}
