//! The `crypt` family end to end on real dm-crypt: a Debian kernel booted in qemu (this machine's
//! kernel has no device-mapper) from an initramfs that formats a LUKS2 volume on one virtio disk,
//! opens it, puts ext4 on it and mounts it on `/srv`, mounts a second, unencrypted disk on `/data`,
//! then runs the static agent (`ec2-harden check --only crypt --format json`) and prints the report
//! between markers on the serial console before powering off. The test asserts what the agent saw:
//! `/srv` on `CRYPT-LUKS2` `aes-xts-plain64` with the key size `cryptsetup luksDump` reports in the
//! same guest, and `/data` failing as an unencrypted virtio disk.
//!
//! The guest is built from packages, never installed on this host: `apt-get download` of the kernel
//! package `linux-image-amd64` depends on and of `busybox-static`, unpacked with `dpkg -x`;
//! `busybox depmod -b` makes the modules.dep the package does not ship; the initramfs (newc cpio)
//! carries busybox, the modules the volume needs (virtio_pci virtio_blk dm-mod dm-crypt xts ecb
//! af_alg algif_skcipher algif_hash crc32c_generic ext4 and their dependencies, loaded in order) and
//! this host's cryptsetup, dmsetup and mke2fs with the libraries `ldd` lists (called by full path:
//! busybox applets shadow them). That part is cached under `target/crypt-vm/` keyed by the package
//! versions, so a rerun only builds the second cpio archive: the agent (static musl, from
//! `scripts/build-static.sh --profile dist`, the build CI packages) and `/init`.
//!
//! qemu uses KVM only when the CPU advertises VT-x/SVM (`vmx`/`svm` in /proc/cpuinfo) and
//! `/dev/kvm` exists; otherwise TCG (software emulation, about 30 s here). A hard timeout kills
//! qemu; on any failure the whole guest console is printed.
//!
//! Needs qemu-system-x86, cpio, cryptsetup-bin, e2fsprogs, apt access to Debian's archive, and the
//! static build's toolchain; tests/run.sh installs them.

#![allow(clippy::print_stderr)] // progress notes, and the guest console (shown by the harness on failure)

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the guest may take, boot to power-off, before qemu is killed (TCG on a busy 2-core
/// machine takes about a minute).
const GUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Modules the guest loads (their dependencies come first, from modules.dep).
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "dm-mod",
    "dm-crypt",
    "xts",
    "ecb",
    "af_alg",
    "algif_skcipher",
    "algif_hash",
    "crc32c_generic",
    "ext4",
];

/// Host programs the guest runs (with their libraries).
const HOST_TOOLS: &[&str] = &[
    "/usr/sbin/cryptsetup",
    "/usr/sbin/dmsetup",
    "/usr/sbin/mke2fs",
];

const BEGIN: &str = "===EC2H-JSON-BEGIN===";
const END: &str = "===EC2H-JSON-END===";
const DUMP_BEGIN: &str = "===EC2H-LUKSDUMP-BEGIN===";
const DUMP_END: &str = "===EC2H-LUKSDUMP-END===";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run a command; its stdout, or a panic with its stderr.
fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run.sh installs what this test needs)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The candidate version apt would download of `package`.
fn apt_version(package: &str) -> String {
    let show = output(Command::new("apt-cache").args(["show", "--no-all-versions", package]));
    show.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap_or_else(|| panic!("apt-cache show {package}: no Version"))
        .trim()
        .to_string()
}

/// The kernel image package `linux-image-amd64` points at (`linux-image-6.1.0-57-amd64`).
fn kernel_package() -> String {
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]));
    deps.lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .unwrap_or_else(|| panic!("linux-image-amd64 depends on no kernel image:\n{deps}"))
        .trim()
        .to_string()
}

/// Write a newc cpio archive of the tree at `dir` to `out` (with the `cpio` tool).
fn cpio(dir: &Path, out: &Path) {
    let list = output(Command::new("find").arg(".").current_dir(dir));
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(out).unwrap())
        .spawn()
        .expect("cpio (tests/run.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "cpio of {}", dir.display());
}

/// Copy `file` to the same absolute path under `stage`, following links.
fn stage_copy(stage: &Path, file: &Path) {
    let dst = stage.join(file.strip_prefix("/").unwrap());
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::copy(file, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
}

/// The shared libraries `ldd` says `binary` loads (and the dynamic loader).
fn libraries(binary: &str) -> Vec<PathBuf> {
    output(Command::new("ldd").arg(binary))
        .lines()
        .filter_map(|l| {
            let path = l.split_whitespace().find(|w| w.starts_with('/'))?;
            Some(PathBuf::from(path))
        })
        .collect()
}

/// The kernel and the base initramfs (busybox, modules, host tools), built once per package
/// versions under target/crypt-vm/<key>/.
struct Guest {
    kernel_release: String,
    vmlinuz: PathBuf,
    base_cpio: PathBuf,
}

fn guest() -> Guest {
    let kpkg = kernel_package();
    let kver = apt_version(&kpkg);
    let bbver = apt_version("busybox-static");
    let csver =
        output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "cryptsetup-bin"]));
    let release = kpkg.trim_start_matches("linux-image-").to_string();
    let key = format!("{kpkg}_{kver}+busybox_{bbver}+cryptsetup_{csver}").replace([':', '~'], "_");
    let root = manifest_dir().join("target/crypt-vm");
    let dir = root.join(&key);
    let guest = Guest {
        kernel_release: release.clone(),
        vmlinuz: dir.join("vmlinuz"),
        base_cpio: dir.join("base.cpio"),
    };
    if dir.join("complete").exists() {
        return guest;
    }
    eprintln!("crypt_vm: building the guest for {key} (cached after this)");
    let work = root.join(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    output(
        Command::new("apt-get")
            .args([
                "download",
                "-q",
                &format!("{kpkg}={kver}"),
                &format!("busybox-static={bbver}"),
            ])
            .current_dir(&work),
    );
    for deb in fs::read_dir(&work).unwrap().flatten() {
        let name = deb.file_name().to_string_lossy().into_owned();
        let into = if name.starts_with("busybox") {
            "busybox"
        } else {
            "kernel"
        };
        output(
            Command::new("dpkg")
                .arg("-x")
                .arg(deb.path())
                .arg(work.join(into)),
        );
    }
    let busybox = work.join("busybox/bin/busybox");
    let kroot = work.join("kernel");
    output(
        Command::new(&busybox)
            .args(["depmod", "-b"])
            .arg(&kroot)
            .arg(&release),
    );
    let moddir = kroot.join(format!("lib/modules/{release}"));
    let deps = fs::read_to_string(moddir.join("modules.dep")).unwrap();
    let dep_of = |path: &str| -> Vec<String> {
        deps.lines()
            .find_map(|l| l.strip_prefix(path)?.strip_prefix(':'))
            .map(|d| d.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    // dependencies first, each module once
    fn visit(m: &str, dep_of: &dyn Fn(&str) -> Vec<String>, order: &mut Vec<String>) {
        if order.iter().any(|o| o == m) {
            return;
        }
        for d in dep_of(m) {
            visit(&d, dep_of, order);
        }
        order.push(m.to_string());
    }
    let mut order = Vec::new();
    for name in MODULES {
        let path = deps
            .lines()
            .filter_map(|l| l.split(':').next())
            .find(|p| p.ends_with(&format!("/{name}.ko")))
            .unwrap_or_else(|| panic!("{release} has no module {name} (built in?)"));
        visit(path, &dep_of, &mut order);
    }
    let stage = work.join("stage");
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "etc",
        "srv",
        "data",
        "lib/modules",
    ] {
        fs::create_dir_all(stage.join(d)).unwrap();
    }
    fs::copy(&busybox, stage.join("bin/busybox")).unwrap();
    let mut names = String::new();
    for path in &order {
        let file = Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        fs::copy(moddir.join(path), stage.join("lib/modules").join(&file)).unwrap();
        names.push_str(&file);
        names.push('\n');
    }
    fs::write(stage.join("lib/modules/order"), names).unwrap();
    for tool in HOST_TOOLS {
        stage_copy(&stage, Path::new(tool));
        for lib in libraries(tool) {
            stage_copy(&stage, &lib);
        }
    }
    if Path::new("/etc/mke2fs.conf").exists() {
        stage_copy(&stage, Path::new("/etc/mke2fs.conf"));
    }
    let build = work.join("out");
    fs::create_dir_all(&build).unwrap();
    cpio(&stage, &build.join("base.cpio"));
    fs::copy(
        kroot.join(format!("boot/vmlinuz-{release}")),
        build.join("vmlinuz"),
    )
    .unwrap();
    fs::write(build.join("complete"), &key).unwrap();
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&build, &dir).unwrap();
    fs::remove_dir_all(&work).unwrap();
    guest
}

/// The static agent, built by scripts/build-static.sh with the profile CI packages (so the build
/// tests/dist.rs makes is reused).
fn static_agent() -> PathBuf {
    let out = output(
        Command::new("bash")
            .arg(manifest_dir().join("scripts/build-static.sh"))
            .args(["--profile", "dist", "x86_64-unknown-linux-musl"])
            .current_dir(manifest_dir()),
    );
    let path = PathBuf::from(
        out.lines()
            .last()
            .expect("build-static.sh prints the binary")
            .trim(),
    );
    assert!(path.is_file(), "{}", path.display());
    path
}

/// A site layer that names /srv alone, so the report carries a pass for the encrypted mount (the
/// shipped rule fails as a whole on /data).
const SITE: &str = r#"[baseline]
name = "vm-site"
version = "1"
extends = ["common"]

[[crypt]]
id = "vm-srv-encrypted"
title = "/srv is on dm-crypt"
severity = "high"
check = "mounts"
paths = ["/srv"]
rationale = "The guest's encrypted volume."
remediation = "None: a test."
"#;

/// `/init`: format, open, mount, run the agent, print, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run/cryptsetup
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "EC2H: insmod $m failed"; done
# no udev in here: libdevmapper makes its own nodes
export DM_DISABLE_UDEV=1
printf 'a test passphrase' > /tmp/key
step() { echo "EC2H: $*"; "$@" || { echo "EC2H: FAILED: $*"; poweroff -f; }; }
step /usr/sbin/cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 --pbkdf argon2id --pbkdf-memory 65536 --pbkdf-force-iterations 4 --key-file /tmp/key /dev/vda
step /usr/sbin/cryptsetup open --key-file /tmp/key /dev/vda secure
step /usr/sbin/mke2fs -q -t ext4 /dev/mapper/secure
step mount -t ext4 /dev/mapper/secure /srv
step /usr/sbin/mke2fs -q -t ext4 /dev/vdb
step mount -t ext4 /dev/vdb /data
echo "secure /dev/vda /tmp/key luks" > /etc/crypttab
echo ===EC2H-LUKSDUMP-BEGIN===
/usr/sbin/cryptsetup luksDump /dev/vda
echo ===EC2H-LUKSDUMP-END===
/ec2-harden check --only crypt --format json --baseline /site.toml > /tmp/report.json 2> /tmp/agent.log
echo "EC2H: agent exit $?"
cat /tmp/agent.log
echo ===EC2H-JSON-BEGIN===
cat /tmp/report.json
echo
echo ===EC2H-JSON-END===
poweroff -f
"#;

/// `-enable-kvm` only with hardware virtualisation the CPU advertises and a /dev/kvm to use it.
fn accel_args() -> Vec<&'static str> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw && Path::new("/dev/kvm").exists() {
        vec!["-enable-kvm", "-cpu", "host"]
    } else {
        vec!["-accel", "tcg", "-cpu", "max"]
    }
}

fn between<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = text.find(begin)? + begin.len();
    let stop = text[start..].find(end)? + start;
    Some(text[start..stop].trim())
}

#[test]
#[ignore = "needs root, network, tools: a Debian kernel in qemu and the static build"]
fn luks2_volume_in_a_vm_is_reported_and_an_unencrypted_disk_fails() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "apt-get download and the guest build need root"
    );
    let guest = guest();
    let agent = static_agent();
    let run = tempfile::Builder::new()
        .prefix("ec2h-crypt-vm-")
        .tempdir()
        .unwrap();
    let stage = run.path().join("stage");
    fs::create_dir_all(&stage).unwrap();
    fs::copy(&agent, stage.join("ec2-harden")).unwrap();
    fs::write(stage.join("init"), INIT).unwrap();
    fs::write(stage.join("site.toml"), SITE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in ["ec2-harden", "init"] {
        fs::set_permissions(stage.join(f), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let agent_cpio = run.path().join("agent.cpio");
    cpio(&stage, &agent_cpio);
    // the kernel unpacks concatenated newc archives in order
    let initrd = run.path().join("initrd.cpio");
    let mut bytes = fs::read(&guest.base_cpio).unwrap();
    bytes.extend(fs::read(&agent_cpio).unwrap());
    fs::write(&initrd, bytes).unwrap();
    for disk in ["luks.img", "plain.img"] {
        fs::File::create(run.path().join(disk))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
    }
    let console = run.path().join("console.log");
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(accel_args())
        .args([
            "-machine",
            "q35",
            "-m",
            "1024",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&guest.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio",
            run.path().join("luks.img").display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio",
            run.path().join("plain.img").display()
        ))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&console).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (tests/run.sh installs qemu-system-x86)");
    let status = loop {
        if let Some(s) = qemu.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > GUEST_TIMEOUT {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut qemu_err = String::new();
    let _ = qemu.stderr.take().unwrap().read_to_string(&mut qemu_err);
    let log = String::from_utf8_lossy(&fs::read(&console).unwrap()).into_owned();
    let context = format!(
        "qemu {status:?} after {:?} ({})\nqemu stderr:\n{qemu_err}\nguest console:\n{log}",
        started.elapsed(),
        accel_args().join(" ")
    );
    let status = status.unwrap_or_else(|| panic!("guest timed out: {context}"));
    assert!(status.success(), "{context}");
    let json = between(&log, BEGIN, END).unwrap_or_else(|| panic!("no report: {context}"));
    let report: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {context}"));
    // the report as the agent printed it, for the record (README, closing notes)
    fs::write(
        manifest_dir().join("target/crypt-vm/last-report.json"),
        json,
    )
    .unwrap();
    // captured by the test harness, shown only when an assertion below fails
    eprintln!("{context}");
    let dump =
        between(&log, DUMP_BEGIN, DUMP_END).unwrap_or_else(|| panic!("no luksDump: {context}"));
    let dump_field = |name: &str| {
        dump.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in luksDump:\n{dump}"))
    };
    let key_bits = dump_field("Key:");
    assert_eq!(key_bits, "512 bits", "{dump}");
    assert_eq!(dump_field("cipher:"), "aes-xts-plain64");

    assert_eq!(report["host"]["live"], true, "{context}");
    assert_eq!(report["host"]["kernel"], guest.kernel_release.as_str());
    let rule = |id: &str| common::result(&report, id).clone();

    let srv = rule("vm-srv-encrypted");
    assert_eq!(srv["status"], "pass", "{srv}\n{context}");
    assert_eq!(
        srv["evidence"][0]["message"],
        "/srv (ext4) -> dm-0 (CRYPT-LUKS2, secure) -> vda (disk, virtio)"
    );
    let found = srv["evidence"][0]["found"].as_str().unwrap();
    assert!(
        found.starts_with("secure: LUKS2 aes-xts-plain64, 512-bit key, ")
            && found.contains("keyslot 0: argon2id, 4 iterations, 65536 KiB"),
        "{found}"
    );
    let cipher = rule("crypt-cipher-strong");
    assert_eq!(cipher["status"], "pass", "{cipher}");

    let mounts = rule("crypt-mounts-encrypted");
    assert_eq!(mounts["status"], "fail", "{mounts}");
    assert_eq!(
        mounts["evidence"][0]["message"],
        "/data (ext4) -> vdb (disk, virtio)"
    );
    assert_eq!(
        mounts["evidence"][0]["found"],
        "not encrypted: vdb reached without dm-crypt"
    );
    // the initramfs root is memory: not applicable, never an error
    assert_eq!(mounts["evidence"].as_array().unwrap().len(), 1, "{mounts}");
    assert_eq!(rule("crypt-crypttab-active")["status"], "pass");
    assert_eq!(rule("crypt-swap-encrypted")["status"], "not-applicable");
    eprintln!(
        "crypt_vm: guest ran in {:?} ({})",
        started.elapsed(),
        accel_args().join(" ")
    );
}
