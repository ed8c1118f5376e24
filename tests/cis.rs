//! The CIS profiles end to end: `--profile` selects rules by their recommendations' levels and
//! decides whether a built-in default counts, every report names the profile and benchmark, a CIS
//! profile needs a baseline with a benchmark, `baseline coverage` agrees with itself, and the
//! recommendation lists in baseline/cis/ are what scripts/cis-catalogue.py writes from the pinned
//! ComplianceAsCode snapshot (so a number or level can never drift from the reference); the
//! Amazon Linux 2 list, written from a repository the suite cannot reach, is checked for format
//! and consistency only.

mod common;

use std::path::Path;
use std::process::Command;

use common::{check_json, fixture, result, run};

fn ids(report: &serde_json::Value) -> Vec<String> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn levels(r: &serde_json::Value) -> Vec<u64> {
    r["cis"]
        .as_array()
        .map(|a| a.iter().map(|c| c["level"].as_u64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn profiles_select_rules_by_level_and_reports_name_them() {
    let root = fixture("debian-12-default");
    let (_, ec2, _) = check_json(root.path(), &["--offline"]);
    let (_, l1, _) = check_json(
        root.path(),
        &["--offline", "--profile", "cis-level1-server"],
    );
    let (_, l2, _) = check_json(
        root.path(),
        &["--offline", "--profile", "cis-level2-server"],
    );
    for (report, profile) in [
        (&ec2, "ec2"),
        (&l1, "cis-level1-server"),
        (&l2, "cis-level2-server"),
    ] {
        assert_eq!(report["profile"], profile);
        assert_eq!(report["benchmark"]["name"], "CIS Debian Linux 12 Benchmark");
        assert_eq!(report["benchmark"]["version"], "v1.1.0");
    }
    // Level 1: only rules with a Level 1 recommendation; Level 2 adds the Level 2-only ones
    for r in l1["results"].as_array().unwrap() {
        assert!(
            levels(r).contains(&1),
            "{} under cis-level1-server",
            r["id"]
        );
    }
    for r in l2["results"].as_array().unwrap() {
        assert!(!levels(r).is_empty(), "{} under cis-level2-server", r["id"]);
    }
    let (ec2_ids, l1_ids, l2_ids) = (ids(&ec2), ids(&l1), ids(&l2));
    assert!(l1_ids.iter().all(|id| l2_ids.contains(id)));
    assert!(l2_ids.iter().all(|id| ec2_ids.contains(id)));
    // sctp is a Level 2 recommendation (3.2.3 in CIS Debian 12); FIM and IMDS are EC2-native
    assert!(!l1_ids.contains(&"kmod-sctp-disabled".to_string()));
    assert!(l2_ids.contains(&"kmod-sctp-disabled".to_string()));
    assert!(ec2_ids.contains(&"kmod-sctp-disabled".to_string()));
    assert!(ec2_ids.iter().any(|id| id.starts_with("fim-")));
    assert!(!l2_ids
        .iter()
        .any(|id| id.starts_with("fim-") || id.starts_with("imds-")));
    // the numbers are cited in the stable form
    let passwd = result(&l1, "etc-passwd-permissions");
    assert_eq!(passwd["cis"][0]["number"], "7.1.1");
    assert_eq!(
        passwd["references"][0],
        "CIS Debian Linux 12 Benchmark v1.1.0 7.1.1"
    );
}

#[test]
fn cis_profiles_require_settings_written_down_where_the_ec2_profile_takes_the_default() {
    let root = fixture("debian-12-default");
    // the fixture's sysctl.d does not set tcp_syncookies; the kernel boots with 1
    let (_, ec2, _) = check_json(root.path(), &["--offline", "--only", "kernel"]);
    let r = result(&ec2, "sysctl-tcp-syncookies-on");
    assert_eq!(r["status"], "pass", "{r}");
    let text = r["evidence"].to_string();
    assert!(text.contains("the kernel default applies"), "{text}");
    assert!(text.contains("ec2 profile"), "{text}");
    for profile in ["cis-level1-server", "cis-level2-server"] {
        let (code, cis, _) = check_json(
            root.path(),
            &["--offline", "--only", "kernel", "--profile", profile],
        );
        assert_eq!(code, 1);
        let r = result(&cis, "sysctl-tcp-syncookies-on");
        assert_eq!(r["status"], "fail", "{r}");
        let text = r["evidence"].to_string();
        assert!(text.contains("requires the setting written down"), "{text}");
        assert!(text.contains("built-in default is `1`"), "{text}");
    }
    // written down, it passes under the CIS profile too
    common::apply(
        root.path(),
        "write /etc/sysctl.d/60-cis.conf net.ipv4.tcp_syncookies = 1\\n",
    );
    let (_, cis, _) = check_json(
        root.path(),
        &[
            "--offline",
            "--only",
            "kernel",
            "--profile",
            "cis-level1-server",
        ],
    );
    assert_eq!(status_of(&cis, "sysctl-tcp-syncookies-on"), "pass");
}

#[test]
fn cis_profiles_fail_a_conflicting_sysctl_value_even_where_a_later_file_overrides_it() {
    let root = fixture("debian-12-default");
    common::apply(
        root.path(),
        "write /etc/sysctl.d/10-legacy.conf net.ipv4.tcp_syncookies = 0\\n\n\
         write /etc/sysctl.d/60-cis.conf net.ipv4.tcp_syncookies = 1\\n",
    );
    let (_, ec2, _) = check_json(root.path(), &["--offline", "--only", "kernel"]);
    assert_eq!(status_of(&ec2, "sysctl-tcp-syncookies-on"), "pass");
    let (_, cis, _) = check_json(
        root.path(),
        &[
            "--offline",
            "--only",
            "kernel",
            "--profile",
            "cis-level1-server",
        ],
    );
    let r = result(&cis, "sysctl-tcp-syncookies-on");
    assert_eq!(r["status"], "fail", "{r}");
    let text = r["evidence"].to_string();
    assert!(text.contains("10-legacy.conf"), "{text}");
    assert!(text.contains("even overridden"), "{text}");
    assert!(!text.contains("60-cis.conf"), "{text}");
}

fn status_of<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    result(report, id)["status"].as_str().unwrap()
}

#[test]
fn a_cis_profile_without_a_benchmark_is_a_usage_error() {
    let root = fixture("debian-12-default");
    let root = root.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&[
        "check",
        "--root",
        root,
        "--offline",
        "--baseline",
        "common",
        "--profile",
        "cis-level1-server",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("has no CIS benchmark"), "{stderr}");
    assert!(stderr.contains("debian-12"), "{stderr}");
    let (code, _, stderr) = run(&["baseline", "coverage", "common"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has no CIS benchmark"), "{stderr}");
    let (code, _, stderr) = run(&["check", "--root", root, "--profile", "level1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cis-level1-server"), "{stderr}");
}

#[test]
fn baseline_coverage_lists_every_recommendation_once_with_its_rules_or_a_reason() {
    for name in [
        "debian-12",
        "ubuntu-22.04",
        "ubuntu-24.04",
        "rhel-9",
        "amazon-linux-2023",
        "amazon-linux-2",
    ] {
        let (code, stdout, stderr) = run(&["baseline", "coverage", name, "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let c: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let recs = c["recommendations"].as_array().unwrap();
        let mut numbers: Vec<&str> = recs.iter().map(|r| r["number"].as_str().unwrap()).collect();
        let total = numbers.len();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), total, "{name}: a number listed twice");
        let automated = recs.iter().filter(|r| r["automated"] == true).count();
        let covered = recs
            .iter()
            .filter(|r| r["automated"] == true && !r["rules"].as_array().unwrap().is_empty())
            .count();
        assert_eq!(c["automated"]["automated"], automated);
        assert_eq!(c["automated"]["covered"], covered);
        assert!(
            covered * 100 >= automated * 45,
            "{name}: {covered} of {automated}"
        );
        for r in recs {
            let has_rules = !r["rules"].as_array().unwrap().is_empty();
            assert_eq!(has_rules, r.get("reason").is_none(), "{name} {r}");
        }
        // Level 1 only under cis-level1-server, in text
        let (_, text, _) = run(&[
            "baseline",
            "coverage",
            name,
            "--profile",
            "cis-level1-server",
        ]);
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("NUMBER"))
            .skip(1)
            .collect();
        assert!(!rows.is_empty());
        for row in rows {
            let level = row.split_whitespace().nth(1).unwrap();
            assert_eq!(level, "1", "{name}: {row}");
        }
    }
}

#[test]
#[ignore = "needs tools: the Python venv of tests/run.sh (PyYAML) and ../shared/reference"]
fn recommendation_lists_match_the_pinned_reference() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join("target/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: tests/run.sh creates it",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo.join("scripts/cis-catalogue.py"))
        .arg("--check")
        .output()
        .expect("run scripts/cis-catalogue.py");
    assert!(
        out.status.success(),
        "baseline/cis/ differs from what the reference gives:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
