//! The shipped artifacts: the static musl binaries that `scripts/build-static.sh` builds with zig
//! for EC2's two architectures, and the .deb and .rpm that `scripts/dist.sh` (`make dist`) makes of
//! them. The x86_64 binary must run on a real Debian root from outside (`--root`) and from inside
//! (`chroot`, where no host library can help it; the test reads the ELF program headers itself to
//! prove there is no dynamic loader to need). The aarch64 binary runs under `qemu-aarch64-static`
//! (user-mode emulation, invoked directly) and must report exactly what the x86_64 one reports on
//! the same tree. The .deb is installed into a copy of the debootstrapped Debian root by the root's
//! own dpkg (chroot), the .rpm into an rpm root holding only a static busybox (for %post) with
//! `rpm --root ... -i --nodeps`, and the
//! installed binary is run from inside each.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use common::{fixture, static_binary, STATIC_PROFILE};

const X86_64: &str = "x86_64-unknown-linux-musl";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `target/dist/` as `scripts/dist.sh --profile STATIC_PROFILE` leaves it (run once per test
/// binary: the script starts by emptying the directory).
fn dist() -> PathBuf {
    static DIST: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIST.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(repo.join("scripts/dist.sh"))
            .args(["--profile", STATIC_PROFILE])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/dist.sh");
        assert!(
            out.status.success(),
            "scripts/dist.sh failed ({})",
            out.status
        );
        let listed = String::from_utf8(out.stdout).unwrap();
        let dir = repo.join("target/dist");
        for name in [
            format!("ec2-harden-{VERSION}-x86_64-linux-musl"),
            format!("ec2-harden-{VERSION}-aarch64-linux-musl"),
            format!("ec2-harden_{VERSION}-1_amd64.deb"),
            format!("ec2-harden_{VERSION}-1_arm64.deb"),
            format!("ec2-harden-{VERSION}-1.x86_64.rpm"),
            format!("ec2-harden-{VERSION}-1.aarch64.rpm"),
            "SHA256SUMS".to_string(),
        ] {
            let path = dir.join(&name);
            assert!(path.is_file(), "scripts/dist.sh made no {name}");
            assert!(
                listed.contains(path.to_str().unwrap()),
                "{name} not listed:\n{listed}"
            );
        }
        dir
    })
    .clone()
}

/// What the ELF header and program headers of `path` say: (e_machine, has PT_INTERP, has
/// PT_DYNAMIC). Only ELF64 little-endian, which both targets are.
fn elf_facts(path: &Path) -> (u16, bool, bool) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(bytes[4], 2, "not ELF64");
    assert_eq!(bytes[5], 1, "not little-endian");
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let machine = u16_at(0x12);
    let phoff = u64_at(0x20) as usize;
    let phentsize = u16_at(0x36) as usize;
    let phnum = u16_at(0x38) as usize;
    let types: Vec<u32> = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    (
        machine,
        types.contains(&PT_INTERP),
        types.contains(&PT_DYNAMIC),
    )
}

fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

/// Run the binary with the tests' environment (no IMDS, no log filter from the caller).
fn run_bin(cmd: &mut Command) -> (i32, String, String) {
    cmd.env_remove("EC2_HARDEN_LOG")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = output(cmd);
    (
        out.status.code().expect("exit code, not a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A private copy of the cached debootstrap root.
fn root_copy() -> tempfile::TempDir {
    common::debootstrap_copy("ec2h-dist-")
}

/// Rule id -> status, in report order.
fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root, network, tools: the static build and a debootstrapped root (chroot)"]
fn x86_64_binary_is_static_and_audits_a_debian_root_from_outside_and_inside() {
    let bin = static_binary(X86_64);
    let (machine, interp, dynamic) = elf_facts(&bin);
    assert_eq!(machine, 62, "EM_X86_64");
    assert!(
        !interp,
        "a PT_INTERP header: the binary needs a dynamic loader"
    );
    assert!(
        !dynamic,
        "a PT_DYNAMIC header: the binary is dynamically linked"
    );

    let (code, stdout, stderr) = run_bin(Command::new(&bin).arg("--version"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("ec2-harden {}", env!("CARGO_PKG_VERSION"))
    );

    // from outside: the image as a sysroot
    let root = root_copy();
    let (code, stdout, stderr) = run_bin(Command::new(&bin).args([
        "check",
        "--root",
        root.path().to_str().unwrap(),
        "--stage",
        "run",
        "--offline",
        "--format",
        "json",
        "--fail-on",
        "never",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let outside: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(outside["baseline"]["name"], "debian-12");
    assert!(outside["totals"]["rules"].as_u64().unwrap() > 100);
    assert_eq!(outside["totals"]["by_status"]["error"], 0, "{stdout}");

    // from inside: the same binary copied into the root and run under chroot, where only the
    // root's own files exist (no /proc mounted, no host libraries)
    std::fs::copy(&bin, root.path().join("usr/local/bin/ec2-harden")).unwrap();
    let (code, stdout, stderr) = run_bin(Command::new("chroot").arg(root.path()).args([
        "/usr/local/bin/ec2-harden",
        "check",
        "--stage",
        "run",
        "--offline",
        "--format",
        "json",
        "--fail-on",
        "never",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let inside: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(inside["host"]["root"], "/");
    assert_eq!(inside["baseline"]["digest"], outside["baseline"]["digest"]);
    // the same tree judged the same way from both sides
    let (o, i) = (statuses(&outside), statuses(&inside));
    assert_eq!(o.len(), i.len());
    let differing: Vec<_> = o.iter().zip(&i).filter(|(a, b)| a != b).collect();
    assert!(
        differing.is_empty(),
        "outside vs inside differ: {differing:?}"
    );
}

#[test]
#[ignore = "needs network, tools: scripts/dist.sh (zig, cargo-deb, cargo-generate-rpm)"]
fn dist_checksums_cover_every_artifact_and_verify() {
    let dir = dist();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("sha256sum's `HEX  NAME` lines").1)
        .collect();
    listed.sort();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file() && e.file_name() != "SHA256SUMS")
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(listed, files);
    let out = output(
        Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(&dir),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A report with the facts of the run rather than of the tree taken out: when and how long, and
/// the architecture of the scanning binary (`host.arch`, asserted before it goes). Everything else
/// — every rule, status, evidence line, baseline digest, total — must be equal.
fn normalised(mut report: serde_json::Value, arch: &str) -> serde_json::Value {
    assert_eq!(report["host"]["arch"], arch);
    let obj = report.as_object_mut().unwrap();
    for key in ["generated_at", "timings"] {
        assert!(obj.remove(key).is_some(), "no {key} in the report");
    }
    let host = obj["host"].as_object_mut().unwrap();
    host.remove("arch");
    if let Some(imds) = host.get_mut("imds").and_then(|i| i.as_object_mut()) {
        imds.remove("elapsed_ms");
    }
    for r in obj["results"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("duration_us");
    }
    report
}

#[test]
#[ignore = "needs network, tools: the static builds and qemu-aarch64-static"]
fn aarch64_binary_runs_under_qemu_and_reports_what_x86_64_reports() {
    let dir = dist();
    let arm = dir.join(format!("ec2-harden-{VERSION}-aarch64-linux-musl"));
    let x86 = dir.join(format!("ec2-harden-{VERSION}-x86_64-linux-musl"));
    let (machine, interp, dynamic) = elf_facts(&arm);
    assert_eq!(machine, 183, "EM_AARCH64");
    assert!(!interp && !dynamic, "the aarch64 binary is not static");
    let qemu = |args: &[&str]| run_bin(Command::new("qemu-aarch64-static").arg(&arm).args(args));

    let (code, stdout, stderr) = qemu(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("ec2-harden {VERSION}"));

    let (code, arm_list, stderr) = qemu(&["baseline", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(arm_list.contains("debian-12"), "{arm_list}");
    let (_, x86_list, _) = run_bin(Command::new(&x86).args(["baseline", "list"]));
    assert_eq!(arm_list, x86_list);

    let tree = fixture("debian-12-default");
    let args = [
        "check",
        "--root",
        tree.path().to_str().unwrap(),
        "--offline",
        "--format",
        "json",
        "--fail-on",
        "never",
    ];
    let (code, arm_json, stderr) = qemu(&args);
    assert_eq!(code, 0, "{stderr}");
    let (code, x86_json, stderr) = run_bin(Command::new(&x86).args(args));
    assert_eq!(code, 0, "{stderr}");
    let arm_report: serde_json::Value = serde_json::from_str(&arm_json).expect("JSON");
    let x86_report: serde_json::Value = serde_json::from_str(&x86_json).expect("JSON");
    assert!(arm_report["totals"]["rules"].as_u64().unwrap() > 100);
    assert_eq!(
        normalised(arm_report, "aarch64"),
        normalised(x86_report, "x86_64")
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// What both packages must have put in `root`: the binary, the baselines, the man pages and
/// completions, the units starting the installed binary, the config files and the state dir.
fn assert_installed(root: &Path, zsh_dir: &str) {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let bin = at("/usr/bin/ec2-harden");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(std::fs::metadata(&bin).unwrap().uid(), 0);
    for name in ["common", "debian-12", "amazon-linux-2023", "rhel-9"] {
        let shipped = at(&format!("/usr/share/ec2-harden/baseline/{name}.toml"));
        assert_eq!(mode(&shipped), 0o644, "{name}");
    }
    let man = [
        "/usr/share/man/man1/ec2-harden.1",
        "/usr/share/man/man1/ec2-harden.1.gz",
    ]
    .into_iter()
    .map(at)
    .find(|p| p.exists())
    .expect("the ec2-harden(1) man page");
    assert_eq!(mode(&man), 0o644);
    assert!(
        [
            "/usr/share/man/man1/ec2-harden-check.1",
            "/usr/share/man/man1/ec2-harden-check.1.gz"
        ]
        .iter()
        .any(|p| at(p).exists()),
        "the ec2-harden-check(1) man page"
    );
    let bash =
        std::fs::read_to_string(at("/usr/share/bash-completion/completions/ec2-harden")).unwrap();
    assert!(bash.contains("--fail-on") && !bash.contains("__dist-assets"));
    assert!(at(&format!("{zsh_dir}/_ec2-harden")).is_file());
    assert!(at("/usr/share/fish/vendor_completions.d/ec2-harden.fish").is_file());
    let service =
        std::fs::read_to_string(at("/usr/lib/systemd/system/ec2-harden.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    assert!(exec.starts_with("/usr/bin/ec2-harden check "), "{exec}");
    assert!(at("/usr/lib/systemd/system/ec2-harden.timer").is_file());
    assert_eq!(mode(&at("/etc/ec2-harden")), 0o755);
    assert_eq!(mode(&at("/etc/ec2-harden/site.toml")), 0o644);
    let defaults = std::fs::read_to_string(at("/etc/default/ec2-harden")).unwrap();
    assert!(defaults.contains("--baseline /etc/ec2-harden/site.toml"));
    let state = at("/var/lib/ec2-harden");
    assert!(state.is_dir());
    assert_eq!(mode(&state), 0o700);
}

/// Run the installed binary inside `root` (chroot): version, the shipped site layer valid, and a
/// check with it layered on the auto-selected baseline; returns the layers' names.
fn run_inside(root: &Path) -> Vec<String> {
    let chroot = |args: &[&str]| {
        run_bin(
            Command::new("chroot")
                .arg(root)
                .arg("/usr/bin/ec2-harden")
                .args(args),
        )
    };
    let (code, stdout, stderr) = chroot(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("ec2-harden {VERSION}"));
    let (code, stdout, stderr) = chroot(&["baseline", "validate", "/etc/ec2-harden/site.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = chroot(&[
        "check",
        "--offline",
        "--baseline",
        "/etc/ec2-harden/site.toml",
        "--format",
        "json",
    ]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["host"]["root"], "/");
    report["baseline"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

/// The root's own dpkg, run inside it. (`dpkg --root` from the host looks the groups of the
/// root's statoverrides — chrony's `_chrony` — up in the host's group database and aborts when the
/// host has no such group; inside, dpkg and the maintainer scripts see only the root.)
fn dpkg(root: &Path, args: &[&str]) -> String {
    let out = output(
        Command::new("chroot")
            .arg(root)
            .arg("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert!(
        out.status.success(),
        "dpkg {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root, network, tools: scripts/dist.sh and a debootstrapped root (chroot)"]
fn deb_installs_into_a_debian_root_and_runs_from_inside() {
    let deb = dist().join(format!("ec2-harden_{VERSION}-1_amd64.deb"));
    let root = root_copy();
    let r = root.path();
    std::fs::copy(&deb, r.join("var/cache/ec2-harden.deb")).unwrap();
    let deb = "/var/cache/ec2-harden.deb";
    dpkg(r, &["-i", deb]);
    assert_installed(r, "/usr/share/zsh/vendor-completions");
    let status = dpkg(r, &["-s", "ec2-harden"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(status.contains("Architecture: amd64"), "{status}");
    for conffile in ["/etc/default/ec2-harden", "/etc/ec2-harden/site.toml"] {
        assert!(
            status.contains(&format!(" {conffile} ")),
            "{conffile} not a conffile:\n{status}"
        );
    }
    assert_eq!(run_inside(r), ["common", "debian-12", "site"]);

    // an edited conffile survives a reinstall; purge removes config and state
    let site = r.join("etc/ec2-harden/site.toml");
    let edited = std::fs::read_to_string(&site).unwrap() + "\n# edited by the site\n";
    std::fs::write(&site, &edited).unwrap();
    dpkg(r, &["-i", deb]);
    assert_eq!(std::fs::read_to_string(&site).unwrap(), edited);
    dpkg(r, &["--purge", "ec2-harden"]);
    for gone in [
        "usr/bin/ec2-harden",
        "etc/ec2-harden/site.toml",
        "var/lib/ec2-harden",
    ] {
        assert!(!r.join(gone).exists(), "{gone} left after purge");
    }
}

#[test]
#[ignore = "needs root, network, tools: scripts/dist.sh, rpm and busybox-static (chroot)"]
fn rpm_installs_into_a_bare_rpm_root_and_runs_from_inside() {
    let rpm = dist().join(format!("ec2-harden-{VERSION}-1.x86_64.rpm"));
    let root = tempfile::Builder::new()
        .prefix("ec2h-rpmroot-")
        .tempdir()
        .unwrap();
    let r = root.path();
    // the least an rpm-based system has for the package's %post (mkdir, chmod): a shell, here
    // Debian's static busybox
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("busybox-static is installed");
    for applet in ["sh", "mkdir", "chmod"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    let rpm_cmd = |args: &[&str]| {
        let out = output(Command::new("rpm").arg("--root").arg(r).args(args));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = rpm_cmd(&["-i", "--nodeps", rpm.to_str().unwrap()]);
    assert!(ok, "rpm -i: {stdout}{stderr}");
    assert_installed(r, "/usr/share/zsh/site-functions");
    let (ok, config, stderr) = rpm_cmd(&["-qc", "ec2-harden"]);
    assert!(ok, "{stderr}");
    let mut config: Vec<&str> = config.lines().collect();
    config.sort();
    assert_eq!(
        config,
        ["/etc/default/ec2-harden", "/etc/ec2-harden/site.toml"]
    );
    let (ok, arch, _) = rpm_cmd(&["-q", "--qf", "%{ARCH}", "ec2-harden"]);
    assert!(ok);
    assert_eq!(arch, "x86_64");
    // nothing in this root but the package and busybox: the static binary needs no libc to run,
    // and with no os-release it audits against the common baseline
    assert_eq!(run_inside(r), ["common", "site"]);
}
