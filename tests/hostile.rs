//! Hostile and broken input, end to end through the binary: what an image, a spool or a command
//! line can throw at the agent must end in a clear error (or an `error` rule result) within
//! seconds, never a hang, an exhausted memory, a destroyed node, a leaked secret or a false pass.
//! Trees are built by the test in a temporary directory and need no root.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, check_json, result, run};

/// A tree with these files (in-root paths).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

const OS_RELEASE: (&str, &str) = (
    "/etc/os-release",
    "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
);

/// Run the binary with a hard limit; a hang fails the test instead of the suite.
fn run_within(args: &[&str], limit: Duration) -> (i32, String, String) {
    let start = Instant::now();
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("ec2-harden {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check --offline --format json` of `root` with `extra`, within a minute; the parsed report.
fn check_report_within(root: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["check", "--offline", "--format", "json", "--root", root];
    args.extend_from_slice(extra);
    let (_, stdout, stderr) = run_within(&args, Duration::from_secs(60));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stderr}"))
}

/// The results of a report with `status`.
fn with_status<'a>(report: &'a serde_json::Value, status: &str) -> Vec<&'a serde_json::Value> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == status)
        .collect()
}

#[test]
fn a_baseline_that_is_a_fifo_or_a_device_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("site.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["baseline", "validate", fifo],
        vec!["baseline", "show", "--raw", fifo],
        vec!["check", "--offline", "--baseline", fifo],
        vec!["baseline", "validate", "/dev/zero"],
    ] {
        let (code, _, stderr) = run_within(&args, Duration::from_secs(20));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("is a FIFO, not a regular file")
                || stderr.contains("is a character device, not a regular file"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn output_never_replaces_a_device_a_fifo_or_a_link_to_one() {
    let root = tree(&[OS_RELEASE]);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let to_null = dir.path().join("stdout");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    for target in [&fifo, &to_null] {
        let (code, _, stderr) = run_within(
            &[
                "check",
                "--offline",
                "--root",
                root.path().to_str().unwrap(),
                "--only",
                "ssh",
                "--output",
                target.to_str().unwrap(),
            ],
            Duration::from_secs(60),
        );
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("refusing to replace"), "{stderr}");
    }
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(fs::symlink_metadata(&to_null).unwrap().is_symlink());
}

#[test]
fn a_run_that_selects_no_rule_is_a_usage_error_not_a_pass() {
    let root = tree(&[OS_RELEASE]);
    let (code, stdout, stderr) = run(&[
        "check",
        "--offline",
        "--root",
        root.path().to_str().unwrap(),
        "--only",
        "ssh",
        "--skip",
        "ssh",
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("no rule of baseline") && stderr.contains("with --only ssh --skip ssh"),
        "{stderr}"
    );
    assert!(!stdout.contains("PASSED"), "{stdout}");
}

#[test]
fn a_closed_stdout_is_an_error_not_a_silently_lost_report() {
    let root = tree(&[OS_RELEASE]);
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" check --offline --only ssh --root \"$1\" >&-")
        .arg(env!("CARGO_BIN_EXE_ec2-harden"))
        .arg(root.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("stdout is closed"), "{stderr}");
}

#[test]
fn sshd_includes_that_fan_out_end_in_an_error_within_seconds() {
    let mut files: Vec<(String, String)> = (0..13)
        .map(|i| {
            (
                format!("/etc/ssh/f{i}.conf"),
                format!("Include f{}.conf\n", i + 1).repeat(4),
            )
        })
        .collect();
    files.push(("/etc/ssh/f13.conf".into(), "PermitRootLogin no\n".into()));
    files.push(("/etc/ssh/sshd_config".into(), "Include f0.conf\n".into()));
    let mut refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    refs.push(OS_RELEASE);
    let root = tree(&refs);
    let start = Instant::now();
    let (_, report, _) = check_json(root.path(), &["--offline", "--only", "ssh"]);
    assert!(start.elapsed() < Duration::from_secs(30));
    let r = result(&report, "ssh-permit-root-login-no");
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .contains("more than 1024 files"),
        "{r}"
    );
}

#[test]
fn doubling_nft_defines_end_in_an_error_not_an_abort() {
    let mut conf = String::from("define v0 = 169.254.169.254\n");
    for i in 1..44 {
        conf.push_str(&format!("define v{i} = $v{} $v{}\n", i - 1, i - 1));
    }
    conf.push_str("table inet f {\n chain o {\n  type filter hook output priority 0; policy accept;\n  ip daddr $v43 drop\n }\n}\n");
    let root = tree(&[
        OS_RELEASE,
        ("/etc/nftables.conf", &conf),
        (
            "/usr/lib/systemd/system/nftables.service",
            "[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n",
        ),
    ]);
    let wants = root.path().join("etc/systemd/system/sysinit.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/nftables.service",
        wants.join("nftables.service"),
    )
    .unwrap();
    let report = check_report_within(root.path().to_str().unwrap(), &["--only", "firewall"]);
    let errors = with_status(&report, "error");
    assert!(
        errors.iter().any(|r| r["cause"]
            .as_str()
            .unwrap_or("")
            .contains("bytes (defines that grow without bound)")),
        "{errors:?}"
    );
}

#[test]
fn a_password_hash_in_a_malformed_line_never_reaches_the_report() {
    const HASH: &str = "$6$rounds=5000$hostilesalt$Zq0mZ7tVYyQ1Qe3k8Qm5gN0v0Q2z1b3c4d5e6f7g8h9";
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/bash\nalice:{HASH}:1000:1000::/home/alice:/bin/sh:extra\n"
    );
    let shadow = format!("root:*:19000:0:99999:7:::\n{HASH}:alice:1::::::\n");
    let root = tree(&[
        OS_RELEASE,
        ("/etc/passwd", &passwd),
        ("/etc/shadow", &shadow),
    ]);
    for format in ["text", "json", "junit"] {
        let (_, stdout, stderr) = run(&[
            "check",
            "--offline",
            "--root",
            root.path().to_str().unwrap(),
            "--only",
            "accounts",
            "--format",
            format,
        ]);
        assert!(!stdout.contains("hostilesalt"), "{format}: {stdout}");
        assert!(!stderr.contains("hostilesalt"), "{format}: {stderr}");
        assert!(stdout.contains("malformed entry"), "{format}: {stdout}");
    }
}

#[test]
fn megabytes_of_garbage_make_a_short_error_cause() {
    let garbage = "\u{1}\u{1b}[31mPackage q:\u{7f}\n".repeat(100_000);
    let root = tree(&[OS_RELEASE, ("/var/lib/dpkg/status", &garbage)]);
    let (_, stdout, stderr) = run(&[
        "check",
        "--offline",
        "--root",
        root.path().to_str().unwrap(),
        "--only",
        "patch",
        "--format",
        "json",
    ]);
    assert!(stdout.len() < 200_000, "report of {} bytes", stdout.len());
    assert!(stderr.len() < 100_000, "stderr of {} bytes", stderr.len());
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes on stderr");
}

#[test]
fn permission_denied_is_an_error_never_absent() {
    use std::os::unix::fs::PermissionsExt;
    let root = tree(&[
        OS_RELEASE,
        ("/root/.netrc", "machine x login y password z\n"),
    ]);
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.path().join("etc"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.path().join("root"), fs::Permissions::from_mode(0o000)).unwrap();
    // as root, the agent runs as nobody (who cannot look into /root either) from a copy it can
    // reach; as anyone else, it simply runs
    let bin_dir = tempfile::tempdir().unwrap();
    fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let agent = bin_dir.path().join("ec2-harden");
    if fs::hard_link(env!("CARGO_BIN_EXE_ec2-harden"), &agent).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_ec2-harden"), &agent).unwrap();
    }
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&agent);
        c
    } else {
        Command::new(&agent)
    };
    let out = cmd
        .args([
            "check",
            "--offline",
            "--only",
            "accounts",
            "--format",
            "json",
            "--root",
        ])
        .arg(root.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let r = result(&report, "no-root-netrc");
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["cause"].as_str().unwrap().contains("ermission denied"),
        "{r}"
    );
    fs::set_permissions(root.path().join("root"), fs::Permissions::from_mode(0o700)).unwrap();
}

/// A tree with a sealed manifest and one changed at its place by `plant`.
fn fim_tree(plant: impl FnOnce(&Path)) -> tempfile::TempDir {
    let root = tree(&[OS_RELEASE, ("/usr/bin/tool", "#!/bin/sh\n")]);
    let manifest = root.path().join("var/lib/ec2-harden/manifest");
    let (code, _, stderr) = run(&[
        "fim",
        "init",
        "--root",
        root.path().to_str().unwrap(),
        "--path",
        "/usr/bin",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(manifest.is_file());
    plant(&manifest);
    root
}

#[test]
fn a_manifest_that_is_a_fifo_or_a_link_out_of_the_root_is_never_read_or_trusted() {
    let outside = tempfile::tempdir().unwrap();
    // a genuine manifest of another tree, outside the audited root
    let decoy = fim_tree(|_| {});
    let decoy_manifest = decoy.path().join("var/lib/ec2-harden/manifest");
    let fifo = |m: &Path| {
        fs::remove_file(m).unwrap();
        nix::unistd::mkfifo(m, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    };
    let link = |m: &Path| {
        fs::remove_file(m).unwrap();
        std::os::unix::fs::symlink(&decoy_manifest, m).unwrap();
    };
    let device = |m: &Path| {
        fs::remove_file(m).unwrap();
        std::os::unix::fs::symlink("/dev/zero", m).unwrap();
    };
    for (what, root) in [
        ("fifo", fim_tree(fifo)),
        ("link", fim_tree(link)),
        ("device", fim_tree(device)),
    ] {
        let r = root.path().to_str().unwrap();
        let (code, stdout, stderr) =
            run_within(&["fim", "verify", "--root", r], Duration::from_secs(30));
        assert_ne!(code, 0, "{what}: {stdout}{stderr}");
        assert!(
            stderr.contains("not a regular file") || stderr.contains("symbolic link"),
            "{what}: {stderr}"
        );
        let report = check_report_within(r, &["--stage", "boot", "--only", "fim"]);
        let passes = with_status(&report, "pass");
        assert!(passes.is_empty(), "{what}: a fim rule passed: {passes:?}");
    }
    drop(outside);
}

#[test]
fn the_manifest_option_never_replaces_a_device_and_stale_temps_are_removed() {
    let root = tree(&[OS_RELEASE, ("/usr/bin/tool", "#!/bin/sh\n")]);
    let r = root.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("manifest");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, _, stderr) = run_within(
        &[
            "fim",
            "init",
            "--root",
            r,
            "--path",
            "/usr/bin",
            "--manifest",
            fifo.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("refusing to replace"), "{stderr}");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // a bake killed mid-write left its temporary manifest: the next bake removes it
    let target = dir.path().join("sealed");
    let stale = dir.path().join(".sealed.tmp-999999999-0");
    fs::write(&stale, "half a manifest").unwrap();
    let (code, _, stderr) = run(&[
        "fim",
        "init",
        "--root",
        r,
        "--path",
        "/usr/bin",
        "--manifest",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stale.exists(), "the stale temp file is gone");
    assert!(target.is_file());
}
