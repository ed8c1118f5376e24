//! Test harness: materialise fixture roots and run the built binary.
//!
//! A fixture root is `tests/fixtures/roots/<name>/` (file contents) plus `<name>.fixture` (ops that
//! git cannot store: modes, owners, FIFOs, symlinks, removals, and a `base` tree to start from).
//! [`fixture`] copies the base chain and overlays into a fresh temp dir and applies the ops; tests
//! add their own seeded faults with [`apply`], in the same op language.
//!
//! Owners need root. Run by another user, [`fixture`] skips its `chown` ops, so every file of the
//! tree belongs to that user, and [`apply`] refuses `chown` (a seeded fault must happen as
//! written). A test whose verdicts depend on the fixture's owners (a permission rule, an unowned
//! file, a gate that only the owners keep clean) is `#[ignore = "needs root: fixture file
//! owners"]`. (A user namespace is no way around it: without `newuidmap` and `/etc/subuid` ranges
//! an unprivileged user maps only its own ids, and the fixtures need 0, 42, 1000 and 4242.)
//!
//! Plain `cargo test`, by any user and offline, runs the unit tests and every integration test
//! that can run there; the others are `#[ignore]`d with a reason in one vocabulary: `needs root:`
//! (file owners, network namespaces, chroot), `needs network:` (Debian's archive, PyPI, toolchain
//! downloads), `needs tools:` (programs `tests/run.sh` installs: cryptsetup, qemu, packer, rpm,
//! dnf, cloud-init, OpenSCAP, its Python venv `target/venv`, ...), several joined as `needs root,
//! network, tools:`. `tests/run.sh` (root, network) runs them all with `--include-ignored`.

#![allow(dead_code)]

pub mod cac;
pub mod packages;
pub mod ssm;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root (the crate's manifest directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run a command that must succeed; its stdout. A failure shows the command and both outputs.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rewrite a file of a fixture copy without the lines that contain `needle`.
pub fn drop_lines(path: &Path, needle: &str) {
    let kept: String = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(path, kept).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

pub fn roots_dir() -> PathBuf {
    repo().join("tests/fixtures/roots")
}

/// A fresh copy of fixture `name` (with its `base` chain) in a temp dir. Not run as root, its
/// `chown` ops are skipped (see the module documentation).
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ec2h-{name}-"))
        .tempdir()
        .expect("temp dir");
    build(name, dir.path());
    dir
}

fn build(name: &str, root: &Path) {
    let spec_path = roots_dir().join(format!("{name}.fixture"));
    let spec = fs::read_to_string(&spec_path).unwrap_or_default();
    if let Some(base) = spec.lines().find_map(|l| l.strip_prefix("base ")) {
        build(base.trim(), root);
    }
    let tree = roots_dir().join(name);
    if tree.is_dir() {
        copy_tree(&tree, root);
    }
    assert!(
        tree.is_dir() || spec_path.is_file(),
        "no fixture named {name}"
    );
    apply_ops(root, &spec, Owners::IfRoot);
}

/// What a `chown` op does when the tests do not run as root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owners {
    /// Skip it: the file keeps the test user's owner ([`fixture`]'s own trees).
    IfRoot,
    /// Fail: a test's seeded fault must happen as written ([`apply`]).
    Exact,
}

/// Copy `from` into `to` (merging), keeping symlinks as symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry.file_type().expect("file type");
        if ft.is_symlink() {
            let _ = fs::remove_file(&dst);
            symlink(fs::read_link(&src).expect("readlink"), &dst).expect("symlink");
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
}

fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\t", "\t")
}

/// Apply fixture ops (see `tests/fixtures/roots/debian-12-default.fixture`) to a root; tests may
/// also `copy SRC DST` a file inside the root (content and mode).
pub fn apply(root: &Path, ops: &str) {
    apply_ops(root, ops, Owners::Exact);
}

fn apply_ops(root: &Path, ops: &str, owners: Owners) {
    for line in ops.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut args = rest.splitn(2, ' ');
        let a = args.next().unwrap_or("");
        let b = args.next().unwrap_or("");
        match op {
            "base" => {}
            "chmod" => {
                let mode = u32::from_str_radix(a, 8).expect("octal mode");
                fs::set_permissions(at(root, b), fs::Permissions::from_mode(mode))
                    .unwrap_or_else(|e| panic!("chmod {b}: {e}"));
            }
            "chown" => {
                let (uid, gid) = a.split_once(':').expect("UID:GID");
                if owners == Owners::IfRoot && !nix::unistd::geteuid().is_root() {
                    continue;
                }
                std::os::unix::fs::lchown(
                    at(root, b),
                    Some(uid.parse().unwrap()),
                    Some(gid.parse().unwrap()),
                )
                .unwrap_or_else(|e| {
                    panic!("chown {b}: {e} (giving files other owners needs root)")
                });
            }
            "rm" => {
                let p = at(root, a);
                if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(&p).unwrap_or_else(|e| panic!("rm {a}: {e}"));
                } else {
                    fs::remove_file(&p).unwrap_or_else(|e| panic!("rm {a}: {e}"));
                }
            }
            "mkdir" => fs::create_dir_all(at(root, a)).expect("mkdir"),
            "symlink" => {
                let p = at(root, b);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).expect("mkdir");
                }
                let _ = fs::remove_file(&p);
                symlink(a, &p).unwrap_or_else(|e| panic!("symlink {b}: {e}"));
            }
            "copy" => {
                let p = at(root, b);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).expect("mkdir");
                }
                fs::copy(at(root, a), &p).unwrap_or_else(|e| panic!("copy {a} {b}: {e}"));
            }
            "fifo" => {
                let p = at(root, a);
                let _ = fs::remove_file(&p);
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .expect("mkfifo");
            }
            "write" | "append" => {
                let p = at(root, a);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).expect("mkdir");
                }
                let mut text = if op == "append" {
                    fs::read_to_string(&p).unwrap_or_default()
                } else {
                    String::new()
                };
                if op == "append" && !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&unescape(b));
                if op == "append" && !text.ends_with('\n') {
                    text.push('\n');
                }
                fs::write(&p, text).unwrap_or_else(|e| panic!("write {a}: {e}"));
            }
            "package" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let [format, name, paths @ ..] = words.as_slice() else {
                    panic!("`package dpkg|rpm NAME PATH...` expected in `{line}`")
                };
                assert!(!paths.is_empty(), "no path in `{line}`");
                packages::record(root, format, name, paths);
            }
            other => panic!("unknown fixture op `{other}` in `{line}`"),
        }
    }
}

/// The built `ec2-harden` binary.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ec2-harden"));
    cmd.env_remove("EC2_HARDEN_LOG");
    // Never reach a real instance metadata service from the tests: tests/imds.rs points the
    // binary at its emulator explicitly.
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    cmd
}

/// Run the binary with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = bin().args(args).output().expect("run ec2-harden");
    (
        out.status
            .code()
            .expect("exit code (not killed by a signal)"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check --format json` on a root; returns (exit code, parsed report, stderr).
pub fn check_json(root: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let root = root.to_str().expect("utf-8 temp path");
    let mut args = vec!["check", "--root", root, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}); exit {code}; stderr:\n{stderr}\nstdout:\n{stdout}")
    });
    (code, json, stderr)
}

/// The status of one rule in a JSON report (panics if the rule is not in it).
pub fn status<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    result(report, id)["status"]
        .as_str()
        .expect("status string")
}

pub fn result<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("rule {id} not in report"))
}

/// Rule ids with the given status, sorted.
pub fn ids_with(report: &serde_json::Value, status: &str) -> Vec<String> {
    let mut ids: Vec<String> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The rules a report did not pass, for the expected-findings snapshots (`tests/snapshots/`): every
/// `fail` and `error` result as `STATUS RULE-ID`, one per line, sorted by rule id.
pub fn findings(report: &serde_json::Value) -> String {
    let mut lines: Vec<(&str, &str)> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "fail" || r["status"] == "error")
        .map(|r| {
            (
                r["id"].as_str().expect("rule id"),
                r["status"].as_str().expect("status"),
            )
        })
        .collect();
    lines.sort();
    lines
        .iter()
        .map(|(id, status)| format!("{status:<5} {id}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Packages of the real Debian 12 root the integration suites share (an EC2 image's set).
/// `linux-base` stands in for the cloud kernel (`linux-image-cloud-amd64`, 105 MB installed, plus
/// an initramfs to build): ComplianceAsCode judges a Debian tree a machine, not a container, by
/// that package alone (its `system_with_kernel` platform), so tests/openscap.rs needs it.
pub const DEBOOTSTRAP_PACKAGES: &str =
    "openssh-server,sudo,cron,chrony,auditd,nftables,libpam-pwquality,rsyslog,linux-base";

/// The real Debian 12 root made by `debootstrap --variant=minbase --include=DEBOOTSTRAP_PACKAGES
/// bookworm` from Debian's archive, built once and cached under `target/debootstrap/` (one to two
/// minutes and 260 MB); every suite that needs it (debootstrap, patch, integrations, dist,
/// openscap) gets the same tree. Callers copy it before changing anything.
pub fn debootstrap_root() -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debootstrap");
    let root = dir.join("bookworm-ec2");
    let marker = dir.join("bookworm-ec2.packages");
    // rebuilt after 20 days, so the root stays a freshly installed system (the patch family
    // judges how old the newest package install is)
    let fresh = fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(20 * 86_400));
    if fresh
        && root.is_dir()
        && fs::read_to_string(&marker).is_ok_and(|m| m == DEBOOTSTRAP_PACKAGES)
    {
        return root;
    }
    fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("bookworm-ec2.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&root);
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={DEBOOTSTRAP_PACKAGES}"),
            "bookworm",
        ])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("debootstrap is installed (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "debootstrap failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &root).unwrap();
    fs::write(&marker, DEBOOTSTRAP_PACKAGES).unwrap();
    root
}

/// A private copy of [`debootstrap_root`] (owners, modes and links preserved, `cp -a`) in a temp
/// dir named `prefix…`, for a test that changes or installs into the root.
#[allow(dead_code)] // not every test crate that includes `common` copies the root
pub fn debootstrap_copy(prefix: &str) -> tempfile::TempDir {
    let base = debootstrap_root();
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", base.display()))
        .arg(dir.path())
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        base.display(),
        dir.path().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The capability bounding set (`setpriv --bounding-set`) under which the suites run
/// ComplianceAsCode's scripts in a chroot (tests/openscap.rs, its remediation; tests/scenarios.rs,
/// its rule scenarios): own, read, write and chmod files, become other users (apt's download
/// method, maintainer scripts, `su`), signal its own processes. Nothing that reaches the kernel's
/// network, module, audit, mount, sysctl or clock state, nor another chroot.
pub const CONFINED_CAPS: &str =
    "-all,+chown,+dac_override,+dac_read_search,+fowner,+fsetid,+kill,+setgid,+setuid,+setfcap";

/// The cargo profile of the static binaries the tests build: `dist` (Cargo.toml: release's
/// settings with thin LTO and parallel codegen, so CI builds both targets in time).
pub const STATIC_PROFILE: &str = "dist";

/// The stripped static binary for `target` (`x86_64-unknown-linux-musl`,
/// `aarch64-unknown-linux-musl`), built by `scripts/build-static.sh` with [`STATIC_PROFILE`]. The
/// script installs its toolchain when missing; cargo's cache makes a second call quick.
pub fn static_binary(target: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-static.sh"))
        .args(["--profile", STATIC_PROFILE, target])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/build-static.sh");
    assert!(
        out.status.success(),
        "scripts/build-static.sh {target} failed ({})",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
    let path = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the script prints the binary's path"),
    );
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}
