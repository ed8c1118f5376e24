//! The shipped artifacts: the static musl binaries that `scripts/build-static.sh` builds with zig
//! for EC2's two architectures. The x86_64 one must run on a real Debian root from outside
//! (`--root`) and from inside (`chroot`, where no host library can help it); the test reads the
//! ELF program headers itself to prove there is no dynamic loader to need.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{debootstrap_root, static_binary};

const X86_64: &str = "x86_64-unknown-linux-musl";

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

/// A private copy of the cached debootstrap root (owners, modes and links preserved).
fn root_copy() -> tempfile::TempDir {
    let base = debootstrap_root();
    let dir = tempfile::Builder::new()
        .prefix("ec2h-dist-")
        .tempdir()
        .unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", base.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
    dir
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
