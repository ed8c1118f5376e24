//! The `credentials` family on fixture trees: static AWS keys seeded in every place the scan covers
//! (with AWS's documented example key id `AKIAIOSFODNN7EXAMPLE`), in CRLF, binary and very long
//! line files, are each found with redacted evidence naming file and line; secrets never appear in
//! any report format; world-readable credential files are their own finding; unreadable inputs are
//! errors naming the path; the role-aware critical rule follows cloud-init's record of IMDS.

mod common;

use common::{apply, check_json, fixture, result, run, status};

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SESSION_KEY: &str = "ASIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

const RULES: [&str; 5] = [
    "credentials-no-long-term-keys",
    "credentials-no-long-term-keys-with-role",
    "credentials-no-secret-keys",
    "credentials-no-session-keys",
    "credentials-files-not-world-readable",
];

/// `(path, line)` of every evidence item of a rule.
fn places(report: &serde_json::Value, id: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = result(report, id)["evidence"]
        .as_array()
        .unwrap_or_else(|| panic!("{id} has evidence: {}", result(report, id)))
        .iter()
        .filter_map(|e| Some((e["path"].as_str()?.to_string(), e["line"].as_u64()?)))
        .collect();
    v.sort();
    v
}

#[test]
fn clean_debian_tree_passes_and_the_role_rule_needs_a_known_role() {
    let root = fixture("debian-12-default");
    let (_, report, stderr) = check_json(root.path(), &["--only", "credentials"]);
    for id in RULES {
        let want = if id.ends_with("-with-role") {
            "not-applicable"
        } else {
            "pass"
        };
        assert_eq!(status(&report, id), want, "{id}: {stderr}");
    }
    let reason = result(&report, "credentials-no-long-term-keys-with-role")["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("instance role"), "{reason}");
}

#[test]
fn keys_in_every_place_are_found_redacted_with_file_and_line() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        &format!(
            "append /etc/passwd alice:x:1000:1000::/srv/alice:/bin/bash
write /srv/alice/.aws/config [profile ci]\\nregion = eu-west-1\\naws_access_key_id={KEY}\\n
write /etc/environment PATH=/usr/bin\\nAWS_ACCESS_KEY_ID={KEY}\\n
write /etc/profile.d/zz-aws.sh export AWS_SESSION_TOKEN=x\\nexport AWS_ACCESS_KEY_ID={SESSION_KEY}\\n
write /etc/default/backup # nightly\\nBACKUP_KEY=\"{KEY}\"\\n
write /etc/systemd/system/app.service [Service]\\nEnvironment=AWS_ACCESS_KEY_ID={KEY}\\nEnvironmentFile=-/opt/app/env\\nEnvironmentFile=/etc/app-%i.env\\nExecStart=/usr/bin/app\\n
write /opt/app/env AWS_SECRET_ACCESS_KEY={SECRET}\\n
write /etc/systemd/system/ssh.service.d/override.conf [Service]\\nEnvironment=\"K={KEY}\"\\n
write /var/lib/cloud/instances/i-0123456789abcdef0/user-data.txt #cloud-config\\nwrite_files:\\n  - content: |\\n      aws_secret_access_key: {SECRET}\\n
symlink /var/lib/cloud/instances/i-0123456789abcdef0 /var/lib/cloud/instance
write /etc/containers/systemd/web.container [Container]\\nImage=web\\nEnvironment=AWS_ACCESS_KEY_ID={KEY}\\n
write /etc/sysconfig/docker OPTIONS=\\nAWS_ACCESS_KEY_ID={KEY}\\n"
        ),
    );
    // CRLF, as a credentials file edited on Windows has it.
    let creds = root.path().join("root/.aws/credentials");
    std::fs::create_dir_all(creds.parent().unwrap()).unwrap();
    std::fs::write(
        &creds,
        format!("[default]\r\naws_access_key_id = {KEY}\r\naws_secret_access_key = {SECRET}\r\n"),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, report, stderr) = check_json(root.path(), &["--only", "credentials"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        places(&report, "credentials-no-long-term-keys"),
        [
            ("/etc/containers/systemd/web.container", 3),
            ("/etc/default/backup", 2),
            ("/etc/environment", 2),
            ("/etc/sysconfig/docker", 2),
            ("/etc/systemd/system/app.service", 2),
            ("/etc/systemd/system/ssh.service.d/override.conf", 2),
            ("/root/.aws/credentials", 2),
            ("/srv/alice/.aws/config", 3),
        ]
        .map(|(p, l)| (p.to_string(), l))
    );
    // The instance/ link and instances/<id>/ are one file: reported once.
    assert_eq!(
        places(&report, "credentials-no-secret-keys"),
        [
            ("/opt/app/env", 1),
            ("/root/.aws/credentials", 3),
            ("/var/lib/cloud/instance/user-data.txt", 4),
        ]
        .map(|(p, l)| (p.to_string(), l))
    );
    assert_eq!(
        places(&report, "credentials-no-session-keys"),
        [("/etc/profile.d/zz-aws.sh".to_string(), 2)]
    );
    let first = &result(&report, "credentials-no-long-term-keys")["evidence"][0];
    assert_eq!(first["found"], "AKIA****MPLE", "{first}");
    // /etc/environment, /etc/default/backup, ... are 0644 in readable directories; the 0600 root
    // credentials file is not listed.
    let readable: Vec<String> = places_any(&report, "credentials-files-not-world-readable");
    assert!(
        readable.contains(&"/etc/environment".to_string()),
        "{readable:?}"
    );
    assert!(!readable.contains(&"/root/.aws/credentials".to_string()));

    // Nothing of the secret or the whole key id in any format.
    for format in ["json", "text", "junit"] {
        let (_, out, _) = run(&[
            "check",
            "--root",
            root.path().to_str().unwrap(),
            "--only",
            "credentials",
            "--format",
            format,
        ]);
        assert!(!out.contains(SECRET) && !out.contains("wJalr"), "{format}");
        assert!(!out.contains(KEY) && !out.contains(SESSION_KEY), "{format}");
        assert!(out.contains("AKIA****MPLE"), "{format}");
    }
}

fn places_any(report: &serde_json::Value, id: &str) -> Vec<String> {
    result(report, id)["evidence"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["path"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn crlf_binary_and_very_long_line_files_are_scanned() {
    let root = fixture("debian-12-default");
    let dir = root.path().join("etc/default");
    // Binary: NULs and invalid UTF-8 around a key on line 3.
    let mut bin = b"\x7fELF\x00\x01\n\xff\xfe\x00\n".to_vec();
    bin.extend_from_slice(format!("\x00{KEY}\x00\n").as_bytes());
    std::fs::write(dir.join("blob"), bin).unwrap();
    // One 3 MiB line with the key near the end, then a CRLF secret.
    let mut long = vec![b'a'; 3 << 20];
    long.extend_from_slice(format!(" {KEY}\r\naws_secret_access_key={SECRET}\r\n").as_bytes());
    std::fs::write(dir.join("long"), long).unwrap();
    let (_, report, stderr) = check_json(root.path(), &["--only", "credentials"]);
    assert_eq!(
        places(&report, "credentials-no-long-term-keys"),
        [("/etc/default/blob", 3), ("/etc/default/long", 1)].map(|(p, l)| (p.to_string(), l)),
        "{stderr}"
    );
    assert_eq!(
        places(&report, "credentials-no-secret-keys"),
        [("/etc/default/long".to_string(), 2)]
    );
}

#[test]
fn world_readable_credentials_file_is_its_own_finding_and_directories_count() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        "append /etc/passwd bob:x:1001:1001::/home/bob:/bin/bash
write /home/bob/.aws/credentials [default]\\ncredential_process = /usr/bin/helper\\n
chmod 0644 /home/bob/.aws/credentials
chmod 0755 /home/bob
write /root/.aws/credentials [default]\\ncredential_process = /usr/bin/helper\\n
chmod 0644 /root/.aws/credentials
chmod 0700 /root",
    );
    let (_, report, _) = check_json(root.path(), &["--only", "credentials"]);
    // No key in either file, but a shared credentials file readable by all is a finding; root's
    // is behind a 0700 home and is not.
    assert_eq!(status(&report, "credentials-no-long-term-keys"), "pass");
    assert_eq!(
        places_any(&report, "credentials-files-not-world-readable"),
        ["/home/bob/.aws/credentials"]
    );
    apply(root.path(), "chmod 0750 /home/bob");
    let (_, report, _) = check_json(root.path(), &["--only", "credentials"]);
    assert_eq!(
        status(&report, "credentials-files-not-world-readable"),
        "pass"
    );
}

#[test]
fn unreadable_inputs_are_errors_naming_the_path_and_findings_still_win() {
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        "mkdir /root/.aws/credentials
fifo /etc/environment",
    );
    let (_, report, _) = check_json(root.path(), &["--only", "credentials"]);
    let cause = result(&report, "credentials-no-long-term-keys")["cause"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", result(&report, "credentials-no-long-term-keys")))
        .to_string();
    assert!(
        cause.contains("/root/.aws/credentials: not a regular file")
            && cause.contains("/etc/environment: not a regular file"),
        "{cause}"
    );
    // A key found elsewhere is still a failure, with the unreadable paths alongside.
    apply(root.path(), &format!("write /etc/default/app K={KEY}\\n"));
    let (_, report, _) = check_json(root.path(), &["--only", "credentials"]);
    assert_eq!(status(&report, "credentials-no-long-term-keys"), "fail");
    let text = result(&report, "credentials-no-long-term-keys")["evidence"].to_string();
    assert!(text.contains("/etc/default/app") && text.contains("/root/.aws/credentials"));
}

#[test]
fn role_rule_is_critical_only_where_cloud_init_recorded_a_role() {
    let root = fixture("debian-12-default");
    let live = root.path().join("proc/sys/kernel");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("osrelease"), "6.1.0-28-cloud-amd64\n").unwrap();
    apply(
        root.path(),
        &format!(
            "write /etc/default/app K={KEY}\\n
write /run/cloud-init/instance-data.json {{\"ds\": {{\"meta_data\": {{\"instance_id\": \"i-1\"}}}}}}"
        ),
    );
    let (_, report, _) = check_json(root.path(), &["--only", "credentials"]);
    assert_eq!(
        status(&report, "credentials-no-long-term-keys-with-role"),
        "not-applicable"
    );
    apply(
        root.path(),
        "write /run/cloud-init/instance-data.json {\"ds\": {\"meta_data\": {\"iam\": {\"info\": {\"Code\": \"Success\", \"InstanceProfileArn\": \"arn:aws:iam::123456789012:instance-profile/app\"}, \"security-credentials\": \"REDACTED\"}}}}",
    );
    let (code, report, _) = check_json(
        root.path(),
        &["--only", "credentials", "--fail-on", "critical"],
    );
    assert_eq!(code, 1);
    assert_eq!(
        status(&report, "credentials-no-long-term-keys-with-role"),
        "fail"
    );
    let r = result(&report, "credentials-no-long-term-keys-with-role");
    assert_eq!(r["severity"], "critical");
    assert!(r["evidence"].to_string().contains("instance-profile/app"));
}
