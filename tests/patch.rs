//! The `patch` family against real data and real tools: version comparison against
//! `dpkg --compare-versions`; this host's own dpkg status and apt lists (lz4) against
//! `apt list --upgradable` over the same lists restricted to the security sources; the
//! debootstrapped Debian 12 root (real dpkg status) with this host's real security metadata; and
//! constructed trees for each verdict: a missing security update, up to date, stale metadata, no
//! security source, damaged indexes, and the reboot states of a live host.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{check_json, result, run_ok};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A Debian version built from the pieces that matter to the ordering.
fn gen_deb_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.below(5) == 0 {
        v.push_str(rng.pick(&["0:", "1:", "2:", "10:"]));
    }
    v.push_str(rng.pick(&["0", "1", "2", "9", "10", "010"]));
    for _ in 0..rng.below(4) {
        v.push_str(rng.pick(&[".", "+", "~", "~~", "a", "b", "Z", ".0", "1", "10", "-"]));
        v.push_str(rng.pick(&["", "0", "1", "2", "11", "a"]));
    }
    if rng.below(2) == 0 {
        v.push('-');
        v.push_str(rng.pick(&["0", "1", "2", "1~bpo", "1+deb12u", "1+b"]));
        v.push_str(rng.pick(&["", "1", "2", "10", "~1", "a"]));
    }
    v
}

/// One near relative of `v`, so that comparisons exercise the fine print.
fn mutate(rng: &mut Rng, v: &str) -> String {
    let mut out = v.to_string();
    match rng.below(5) {
        0 => out.push_str(rng.pick(&["~", "~rc1", "a", "+", ".1", "0"])),
        1 if !out.is_empty() => {
            out.pop();
            if out.ends_with([':', '-']) || out.is_empty() {
                out.push('1');
            }
        }
        2 => out = out.replacen('1', rng.pick(&["2", "01", "10"]), 1),
        3 => out = format!("{out}-{}", rng.pick(&["1", "0", "~"])),
        _ => out = v.to_string(),
    }
    out
}

#[test]
fn dpkg_version_order_matches_dpkg_compare_versions() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pairs = Vec::new();
    while pairs.len() < 1500 {
        let a = gen_deb_version(&mut rng);
        let b = if rng.below(3) == 0 {
            gen_deb_version(&mut rng)
        } else {
            mutate(&mut rng, &a)
        };
        // only versions dpkg accepts without complaint (digit first after the epoch)
        let ok = |v: &str| {
            let up = v.split_once(':').map_or(v, |(_, r)| r);
            up.starts_with(|c: char| c.is_ascii_digit())
                && !up.ends_with('-')
                && ec2_harden::host::packages::debversion::DebVersion::parse(v).is_ok()
        };
        if ok(&a) && ok(&b) {
            pairs.push((a, b));
        }
    }
    // one shell asks dpkg about every pair: -1, 0 or 1 per line
    let script = "while read -r a b; do \
        if dpkg --compare-versions \"$a\" lt \"$b\"; then echo -1; \
        elif dpkg --compare-versions \"$a\" eq \"$b\"; then echo 0; else echo 1; fi; done";
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sh and dpkg");
    let input: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_agrees_with_oracle(
        "dpkg",
        &pairs,
        &out.stdout,
        ec2_harden::host::packages::debversion::compare,
    );
}

/// `oracle_out` holds the oracle's -1/0/1 for each pair (whitespace-separated, in order): ours must
/// give the same for every pair, and the pairs must cover all three outcomes.
fn assert_agrees_with_oracle(
    oracle: &str,
    pairs: &[(String, String)],
    oracle_out: &[u8],
    ours: fn(&str, &str) -> std::cmp::Ordering,
) {
    let answers: Vec<i32> = std::str::from_utf8(oracle_out)
        .unwrap()
        .split_whitespace()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(answers.len(), pairs.len());
    let mut disagreements = Vec::new();
    let mut seen = BTreeSet::new();
    for ((a, b), want) in pairs.iter().zip(&answers) {
        seen.insert(*want);
        let got = ours(a, b) as i32;
        if got != *want {
            disagreements.push(format!("{a} vs {b}: {oracle} {want}, ours {got}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert_eq!(seen.len(), 3, "the generated pairs cover <, = and >");
}

// --- this host -------------------------------------------------------------------------------

/// `apt list --upgradable` with only the security sources configured: apt's own answer to
/// "which installed packages does a security origin offer a newer version of". The security
/// sources are the index targets whose Release says so (apt-get indextargets reads the same
/// Release fields the agent does). `dir` is an alternative root (`-o Dir=`).
fn apt_security_upgradable(dir: Option<&Path>) -> BTreeSet<String> {
    let mut base: Vec<String> = Vec::new();
    if let Some(dir) = dir {
        base.push("-o".into());
        base.push(format!("Dir={}", dir.display()));
    }
    let out = Command::new("apt-get")
        .args(&base)
        .args([
            "indextargets",
            "--format",
            "$(REPO_URI) $(RELEASE) $(COMPONENT) $(LABEL) $(SUITE) $(CODENAME)",
            "Created-By: Packages",
        ])
        .output()
        .expect("apt-get");
    assert!(out.status.success());
    let mut sources = BTreeSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (uri, release, component, label, suite, codename) = (
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            f.get(5).copied().unwrap_or(""),
        );
        if label == "Debian-Security"
            || suite.ends_with("-security")
            || codename.ends_with("-security")
        {
            sources.insert(format!("deb {uri} {release} {component}\n"));
        }
    }
    assert!(!sources.is_empty(), "apt knows no security index here");
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), sources.into_iter().collect::<String>()).unwrap();
    let out = Command::new("apt")
        .args(&base)
        .args(["list", "--upgradable", "-o"])
        .arg(format!("Dir::Etc::SourceList={}", list.path().display()))
        .args(["-o", "Dir::Etc::SourceParts=/nonexistent"])
        .output()
        .expect("apt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("[upgradable from:"))
        .map(|l| {
            // name/suite version arch [upgradable from: old]
            let mut w = l.split_whitespace();
            let name = w.next().unwrap().split('/').next().unwrap();
            let version = w.next().unwrap();
            let arch = w.next().unwrap();
            let from = w.nth(2).unwrap().trim_end_matches(']');
            format!("{name}:{arch} {from} -> {version}")
        })
        .collect()
}

/// The agent's list, in the same shape (`name:arch installed -> fixed`).
fn agent_security_updates(report: &serde_json::Value) -> BTreeSet<String> {
    let r = result(report, "patch-security-updates");
    if r["status"] == "pass" {
        return BTreeSet::new();
    }
    assert_eq!(r["status"], "fail", "{r}");
    r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let m = e["message"].as_str().unwrap();
            m.split(" from ").next().unwrap().to_string()
        })
        .collect()
}

#[test]
#[ignore = "needs network: this host's apt lists with a security source (apt-get update)"]
fn this_host_lists_exactly_the_security_updates_apt_lists() {
    let lists = Path::new("/var/lib/apt/lists");
    assert!(
        std::fs::read_dir(lists).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("_Packages")),
        "this test needs the host's apt lists (apt-get update)"
    );
    let oracle = apt_security_upgradable(None);
    let (_, report, stderr) = check_json(Path::new("/"), &["--only", "patch"]);
    let ours = agent_security_updates(&report);
    assert_eq!(ours, oracle, "{stderr}");
    // a custom (unpackaged) kernel: the reboot question has no packaged answer
    let reboot = result(&report, "patch-no-pending-reboot");
    if !Path::new("/run/reboot-required").exists() {
        let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let packaged = Path::new("/boot")
            .join(format!("vmlinuz-{}", running.trim()))
            .exists();
        if !packaged {
            assert_eq!(reboot["status"], "not-applicable", "{reboot}");
            assert!(reboot["reason"]
                .as_str()
                .unwrap()
                .contains("was not installed by a package"));
        }
    }
}

// --- the debootstrapped Debian root ------------------------------------------------------------

#[test]
#[ignore = "needs root, network, tools: a debootstrapped Debian 12 root"]
fn debootstrap_root_without_then_with_security_metadata() {
    let root = common::debootstrap_copy("ec2h-patch-");
    // as debootstrap leaves it: only the main suite, no security source
    let (_, report, _) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    let meta = result(&report, "patch-metadata-fresh");
    assert_eq!(meta["status"], "fail", "{meta}");
    assert!(meta["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .contains("none of its 1 sources is a security origin"));
    assert_eq!(
        result(&report, "patch-security-updates")["status"],
        "not-applicable"
    );
    // the security source added and its metadata fetched: this host's real, current lists
    let lists = root.path().join("var/lib/apt/lists");
    let mut copied = 0;
    for entry in std::fs::read_dir("/var/lib/apt/lists").unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .contains("debian-security")
        {
            std::fs::copy(entry.path(), lists.join(entry.file_name())).unwrap();
            copied += 1;
        }
    }
    assert!(
        copied >= 2,
        "this host has no Debian security lists to lend"
    );
    std::fs::write(
        root.path().join("etc/apt/sources.list.d/security.list"),
        "deb http://deb.debian.org/debian-security bookworm-security main\n",
    )
    .unwrap();
    let (code, report, stderr) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    assert_eq!(
        result(&report, "patch-metadata-fresh")["status"],
        "pass",
        "{stderr}"
    );
    let ours = agent_security_updates(&report);
    let oracle = apt_security_upgradable(Some(root.path()));
    assert_eq!(ours, oracle);
    // a point-release root is behind the security archive on this machine's metadata
    if !oracle.is_empty() {
        assert_eq!(code, 1);
    }
}

// --- constructed trees -------------------------------------------------------------------------

const OS_RELEASE: &str =
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

const STATUS: &str = "\
Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: linux-image-6.1.0-28-cloud-amd64
Status: install ok installed
Architecture: amd64
Source: linux-signed-amd64
Version: 6.1.119-1

Package: linux-image-6.1.0-30-cloud-amd64
Status: install ok installed
Architecture: amd64
Source: linux-signed-amd64
Version: 6.1.124-1

Package: linux-image-cloud-amd64
Status: install ok installed
Architecture: amd64
Version: 6.1.124-1
";

fn rfc2822(days_ago: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days_ago);
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// An `InRelease` for `label`/`suite`, clear-signed the way the archive signs it (the agent
/// reads the signed text; apt verified the signature when it fetched it).
fn in_release(label: &str, suite: &str, days_ago: i64, files: &[&str]) -> String {
    let mut text = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: {label}\n\
         Suite: {suite}\nCodename: {suite}\nDate: {}\nArchitectures: amd64\nComponents: main\nSHA256:\n",
        rfc2822(days_ago)
    );
    for f in files {
        text.push_str(&format!(
            " 0000000000000000000000000000000000000000000000000000000000000000 1 {f}\n"
        ));
    }
    text.push_str(
        "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n-----END PGP SIGNATURE-----\n",
    );
    text
}

fn packages(entries: &[(&str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, arch, version)| {
            format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\nDescription: x\n multi\n\n")
        })
        .collect()
}

fn compress(ext: &str, text: &str) -> Vec<u8> {
    match ext {
        "" => text.as_bytes().to_vec(),
        ".lz4" => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap()
        }
        ".gz" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap()
        }
        ".xz" => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut std::io::Cursor::new(text.as_bytes()), &mut out).unwrap();
            out
        }
        other => panic!("{other}"),
    }
}

/// A Debian image tree: os-release, dpkg status, and apt lists for a main suite (whose host name
/// says "security" but whose Release does not) and a security suite (whose host name does not).
struct Tree {
    dir: tempfile::TempDir,
}

const SEC: &str = "mirror.example.org_debian_dists_bookworm-security_";
const MAIN: &str = "security.example.org_debian_dists_bookworm_";

impl Tree {
    fn new() -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        t.write("etc/os-release", OS_RELEASE.as_bytes());
        t.write("var/lib/dpkg/status", STATUS.as_bytes());
        for k in ["6.1.0-28-cloud-amd64", "6.1.0-30-cloud-amd64"] {
            t.write(&format!("lib/modules/{k}/modules.dep"), b"");
        }
        t
    }
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    fn lists(&self, name: &str, bytes: &[u8]) {
        self.write(&format!("var/lib/apt/lists/{name}"), bytes);
    }
    /// The main suite: newer openssl than security offers, which must not count.
    fn main_suite(&self) {
        self.lists(
            &format!("{MAIN}InRelease"),
            in_release("Debian", "bookworm", 120, &["main/binary-amd64/Packages"]).as_bytes(),
        );
        self.lists(
            &format!("{MAIN}main_binary-amd64_Packages.lz4"),
            &compress(
                ".lz4",
                &packages(&[
                    ("openssl", "amd64", "3.0.99-1"),
                    ("libc6", "amd64", "2.36-9+deb12u99"),
                ]),
            ),
        );
    }
    fn security_suite(&self, days_ago: i64, ext: &str, entries: &[(&str, &str, &str)]) {
        self.lists(
            &format!("{SEC}InRelease"),
            in_release(
                "Debian-Security",
                "bookworm-security",
                days_ago,
                &["main/binary-amd64/Packages"],
            )
            .as_bytes(),
        );
        self.lists(
            &format!("{SEC}main_binary-amd64_Packages{ext}"),
            &compress(ext, &packages(entries)),
        );
    }
    fn check(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["--only", "patch"];
        args.extend_from_slice(extra);
        let (code, report, _) = check_json(self.dir.path(), &args);
        (code, report)
    }
}

fn status_of(report: &serde_json::Value, id: &str) -> String {
    result(report, id)["status"].as_str().unwrap().to_string()
}

#[test]
fn a_missing_security_update_fails_naming_the_package_in_every_compression() {
    for ext in ["", ".lz4", ".gz", ".xz"] {
        let tree = Tree::new();
        tree.main_suite();
        tree.security_suite(
            1,
            ext,
            &[
                ("openssl", "amd64", "3.0.15-1~deb12u1"),
                ("openssl", "i386", "3.0.17-1~deb12u1"), // another architecture: not installed
                ("libc6", "amd64", "2.36-9+deb12u4"),    // same as installed
                ("tzdata", "all", "2023c-5+deb12u1"),    // older than installed
                ("curl", "amd64", "7.88.1-10+deb12u12"), // not installed
            ],
        );
        let (code, report) = tree.check(&["--stage", "bake"]);
        assert_eq!(code, 1, "{ext}");
        assert_eq!(
            agent_security_updates(&report),
            BTreeSet::from(["openssl:amd64 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1".to_string()]),
            "{ext}"
        );
        let ev = &result(&report, "patch-security-updates")["evidence"][0];
        assert_eq!(
            ev["message"],
            "openssl:amd64 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1 from Debian-Security bookworm-security"
        );
        assert_eq!(
            ev["path"],
            format!("/var/lib/apt/lists/{SEC}main_binary-amd64_Packages{ext}")
        );
        assert_eq!(status_of(&report, "patch-metadata-fresh"), "pass", "{ext}");
    }
}

#[test]
fn current_packages_pass_and_stale_metadata_is_its_own_finding() {
    let tree = Tree::new();
    tree.main_suite();
    tree.security_suite(2, ".lz4", &[("openssl", "amd64", "3.0.11-1~deb12u2")]);
    let (code, report) = tree.check(&["--stage", "bake", "--fail-on", "low"]);
    assert_eq!(status_of(&report, "patch-security-updates"), "pass");
    assert_eq!(status_of(&report, "patch-metadata-fresh"), "pass");
    assert_eq!(code, 0);
    let pass = result(&report, "patch-security-updates")["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pass.starts_with("no missing security updates for 6 installed packages according to Debian-Security bookworm-security ("),
        "{pass}"
    );

    // the same lists, three weeks later
    tree.security_suite(21, ".lz4", &[("openssl", "amd64", "3.0.11-1~deb12u2")]);
    let (code, report) = tree.check(&["--stage", "bake"]);
    assert_eq!(status_of(&report, "patch-security-updates"), "pass");
    let stale = result(&report, "patch-metadata-fresh");
    assert_eq!(stale["status"], "fail");
    assert!(stale["evidence"][0]["found"]
        .as_str()
        .unwrap()
        .ends_with(", 21 days ago"));
    assert_eq!(code, 0, "medium is below the default --fail-on high");
}

#[test]
fn no_security_origin_or_no_lists_is_never_up_to_date() {
    // a host name that says "security" is not a security origin: only the Release decides
    let tree = Tree::new();
    tree.main_suite();
    let (_, report) = tree.check(&["--stage", "bake"]);
    assert_eq!(status_of(&report, "patch-metadata-fresh"), "fail");
    assert_eq!(
        status_of(&report, "patch-security-updates"),
        "not-applicable"
    );

    let tree = Tree::new();
    let (_, report) = tree.check(&["--stage", "bake"]);
    let meta = result(&report, "patch-metadata-fresh");
    assert_eq!(meta["status"], "fail");
    assert!(meta["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .contains("/var/lib/apt/lists does not exist"));
}

#[test]
fn damaged_inputs_are_errors_naming_the_file_never_a_pass() {
    let tree = Tree::new();
    tree.security_suite(1, ".lz4", &[("openssl", "amd64", "3.0.11-1~deb12u2")]);
    tree.lists(
        &format!("{SEC}main_binary-amd64_Packages.lz4"),
        b"\x04\x22\x4d\x18garbage",
    );
    let (_, report) = tree.check(&["--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "error", "{r}");
    assert!(r["cause"].as_str().unwrap().contains(&format!(
        "/var/lib/apt/lists/{SEC}main_binary-amd64_Packages.lz4: cannot decompress"
    )));

    // a truncated status file with a duplicate stanza: error with file and line, no panic
    let tree = Tree::new();
    tree.security_suite(1, "", &[("openssl", "amd64", "3.0.11-1~deb12u2")]);
    tree.write(
        "var/lib/dpkg/status",
        format!("{STATUS}\nPackage: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u2\n\nPackage: half\nStatus: install ok inst").as_bytes(),
    );
    let (_, report) = tree.check(&["--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "error", "{r}");
    let cause = r["cause"].as_str().unwrap();
    assert!(
        cause.contains(
            "/var/lib/dpkg/status:39: package openssl:amd64 is listed again (first at line 1)"
        ),
        "{cause}"
    );
    assert!(
        cause.contains("the file ends in the middle of a line"),
        "{cause}"
    );

    // an index the Release does not list is not trusted to be what its name says
    let tree = Tree::new();
    tree.security_suite(1, ".lz4", &[("openssl", "amd64", "3.0.11-1~deb12u2")]);
    tree.lists(
        &format!("{SEC}contrib_binary-amd64_Packages"),
        packages(&[("openssl", "amd64", "9.9-1")]).as_bytes(),
    );
    let (_, report) = tree.check(&["--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "error", "{r}");
    assert!(r["cause"]
        .as_str()
        .unwrap()
        .contains("contrib_binary-amd64_Packages: not listed in"));
}

#[test]
fn reboot_states_of_a_live_debian_host() {
    let live = |running: &str| {
        let tree = Tree::new();
        tree.security_suite(1, ".lz4", &[]);
        tree.write(
            "proc/sys/kernel/osrelease",
            format!("{running}\n").as_bytes(),
        );
        tree
    };
    // running the older of two installed kernels
    let tree = live("6.1.0-28-cloud-amd64");
    let (_, report) = tree.check(&[]);
    let r = result(&report, "patch-no-pending-reboot");
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(r["evidence"][0]["found"], "6.1.0-28-cloud-amd64");
    assert_eq!(
        r["evidence"][0]["expected"],
        "6.1.0-30-cloud-amd64 (the newest installed kernel, linux-image-6.1.0-30-cloud-amd64 6.1.124-1): reboot to run it"
    );
    // running the newest
    let tree = live("6.1.0-30-cloud-amd64");
    let (_, report) = tree.check(&[]);
    assert_eq!(status_of(&report, "patch-no-pending-reboot"), "pass");
    // ... but a package asked for a reboot
    tree.write("run/reboot-required", b"*** System restart required ***\n");
    tree.write("run/reboot-required.pkgs", b"libc6\nlibssl3\n");
    let (_, report) = tree.check(&[]);
    let r = result(&report, "patch-no-pending-reboot");
    assert_eq!(r["status"], "fail");
    assert_eq!(r["evidence"][0]["found"], "requested by libc6, libssl3");
    // a kernel no package installed (a container, a custom build)
    let tree = live("6.18.44-custom");
    let (_, report) = tree.check(&[]);
    let r = result(&report, "patch-no-pending-reboot");
    assert_eq!(r["status"], "not-applicable");
    assert!(r["reason"].as_str().unwrap().contains(
        "6.18.44-custom was not installed by a package (a container or a custom kernel; packaged kernels: 6.1.0-28-cloud-amd64, 6.1.0-30-cloud-amd64)"
    ));
    // an image: nothing runs
    let tree = Tree::new();
    let (_, report) = tree.check(&["--stage", "boot"]);
    assert_eq!(
        status_of(&report, "patch-no-pending-reboot"),
        "not-applicable"
    );
}

// --- rpm: a constructed Amazon Linux 2023 tree ----------------------------------------------------

const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="alas@amazon.com" status="final" type="security" version="2.0">
    <id>ALAS2023-2024-481</id><severity>Important</severity>
    <references><reference id="CVE-2023-5678" type="cve"/><reference id="CVE-2023-6129" type="cve"/></references>
    <pkglist><collection short="al2023">
      <package arch="x86_64" epoch="1" name="openssl-libs" release="1.amzn2023.0.12" version="3.0.8"/>
      <package arch="aarch64" epoch="1" name="openssl-libs" release="1.amzn2023.0.12" version="3.0.8"/>
    </collection></pkglist>
  </update>
  <update type="security"><id>ALAS2023-2024-500</id><severity>Low</severity>
    <pkglist><collection><package arch="noarch" epoch="0" name="tzdata" release="1.amzn2023" version="2024a"/></collection></pkglist>
  </update>
  <update type="security"><id>ALAS2023-2023-100</id><severity>Critical</severity>
    <pkglist><collection><package arch="x86_64" epoch="0" name="bash" release="1.amzn2023.0.1" version="5.2.15"/></collection></pkglist>
  </update>
  <update type="bugfix"><id>ALAS2023-2024-600</id>
    <pkglist><collection><package arch="x86_64" epoch="0" name="bash" release="9.amzn2023" version="5.2.15"/></collection></pkglist>
  </update>
</updates>"#;

/// An AL2023 tree: a real SQLite rpmdb whose rows are RPM header blobs built per the header
/// format, and a dnf cache with repomd.xml and a gzipped updateinfo.
fn al2023_tree(btime_offset: Option<i64>) -> tempfile::TempDir {
    use ec2_harden::host::packages::rpmdb::package_header;
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, bytes: &[u8]| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    w(
        "etc/os-release",
        b"NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241010\"\n",
    );
    w(
        "etc/amazon-linux-release",
        b"Amazon Linux release 2023.6.20241010 (Amazon Linux)\n",
    );
    let now = jiff::Timestamp::now().as_second() as u32;
    let db = dir.path().join("var/lib/rpm/rpmdb.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL); PRAGMA journal_mode=WAL;")
        .unwrap();
    let rows: Vec<Vec<u8>> = vec![
        package_header(
            "openssl-libs",
            Some(1),
            "3.0.8",
            "1.amzn2023.0.10",
            "x86_64",
            now - 86_400 * 30,
        ),
        package_header(
            "tzdata",
            None,
            "2024a",
            "1.amzn2023",
            "noarch",
            now - 86_400 * 30,
        ),
        package_header(
            "bash",
            None,
            "5.2.15",
            "1.amzn2023.0.2",
            "x86_64",
            now - 86_400 * 30,
        ),
        package_header(
            "kernel",
            None,
            "6.1.112",
            "122.189.amzn2023",
            "x86_64",
            now - 86_400 * 30,
        ),
        package_header(
            "kernel",
            None,
            "6.1.115",
            "126.197.amzn2023",
            "x86_64",
            now - 3600,
        ),
        package_header(
            "glibc",
            None,
            "2.34",
            "52.amzn2023.0.11",
            "x86_64",
            now - 3600,
        ),
    ];
    for blob in rows {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
            .unwrap();
    }
    drop(conn);
    let repo = "var/cache/dnf/amazonlinux-0123456789abcdef/repodata";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(UPDATEINFO.as_bytes()).unwrap();
    w(
        &format!("{repo}/aa11-updateinfo.xml.gz"),
        &gz.finish().unwrap(),
    );
    w(
        &format!("{repo}/repomd.xml"),
        format!(
            "<?xml version=\"1.0\"?><repomd xmlns=\"http://linux.duke.edu/metadata/repo\"><revision>{now}</revision>\
             <data type=\"primary\"><location href=\"repodata/bb22-primary.xml.gz\"/><timestamp>{now}</timestamp></data>\
             <data type=\"updateinfo\"><location href=\"repodata/aa11-updateinfo.xml.gz\"/><timestamp>{}</timestamp></data></repomd>",
            now - 86_400
        )
        .as_bytes(),
    );
    if let Some(offset) = btime_offset {
        w(
            "proc/sys/kernel/osrelease",
            b"6.1.112-122.189.amzn2023.x86_64\n",
        );
        w(
            "proc/stat",
            format!("cpu  1 2 3\nbtime {}\n", i64::from(now) - offset).as_bytes(),
        );
    }
    dir
}

#[test]
fn rpm_advisories_from_a_real_sqlite_rpmdb_and_dnf_cache() {
    let root = al2023_tree(None);
    let (code, report, stderr) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    assert_eq!(report["baseline"]["name"], "amazon-linux-2023", "{stderr}");
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "fail", "{r}");
    let messages: Vec<&str> = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    // the aarch64 entry, the already-fixed bash and the bugfix advisory do not count
    assert_eq!(
        messages,
        vec![
            "openssl-libs:x86_64 1:3.0.8-1.amzn2023.0.10 -> 1:3.0.8-1.amzn2023.0.12 from amazonlinux, ALAS2023-2024-481 (important, CVE-2023-5678, CVE-2023-6129)",
        ]
    );
    assert_eq!(code, 1);
    let meta = result(&report, "patch-metadata-fresh");
    assert_eq!(meta["status"], "pass", "{meta}");
    assert!(meta["evidence"][0]["found"]
        .as_str()
        .unwrap()
        .ends_with(", 1 days ago"));

    // a site layer that only counts critical advisories: the important one no longer fails
    let site = root.path().join("site.toml");
    std::fs::write(
        &site,
        "[baseline]\nname = \"site\"\nversion = \"1\"\n\n[[security_updates]]\n\
         id = \"patch-security-updates\"\ntitle = \"t\"\nseverity = \"high\"\n\
         rationale = \"r\"\nremediation = \"r\"\nmin_severity = \"critical\"\n",
    )
    .unwrap();
    let (_, critical_only, stderr) = check_json(
        root.path(),
        &[
            "--only",
            "patch",
            "--stage",
            "bake",
            "--baseline",
            site.to_str().unwrap(),
        ],
    );
    assert_eq!(
        result(&critical_only, "patch-security-updates")["status"],
        "pass",
        "{stderr}"
    );

    // "unknown" can never be configured into a pass
    let bad = root.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[baseline]\nname = \"bad\"\nversion = \"1\"\n\n[[package_metadata]]\n\
         id = \"patch-metadata-fresh\"\ntitle = \"t\"\nseverity = \"high\"\n\
         rationale = \"r\"\nremediation = \"r\"\nmissing = \"pass\"\nmax_age_days = 0\n",
    )
    .unwrap();
    let (code, _, stderr) = common::run(&["baseline", "validate", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":11:11: error: `missing = \"pass\"` is not allowed here"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":12:16: error: `max_age_days` must be 1 to 3650, found 0"),
        "{stderr}"
    );

    // a damaged row: reported with its row number next to the findings
    let conn = rusqlite::Connection::open(root.path().join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    conn.execute(
        "INSERT INTO Packages (blob) VALUES (?1)",
        [vec![0u8, 0, 0x10, 0, 0, 0, 0, 4]],
    )
    .unwrap();
    drop(conn);
    let (_, report, _) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "fail");
    let last = r["evidence"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        last.contains("/var/lib/rpm/rpmdb.sqlite: package row 7: header claims 4096 index entries"),
        "{last}"
    );
}

#[test]
fn rpm_reboot_needed_for_an_older_kernel_and_core_packages_after_boot() {
    // booted two hours ago into the older kernel; kernel and glibc updated an hour ago
    let root = al2023_tree(Some(7200));
    let (_, report, _) = check_json(root.path(), &["--only", "patch"]);
    let r = result(&report, "patch-no-pending-reboot");
    assert_eq!(r["status"], "fail", "{r}");
    let messages: Vec<String> = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["message"].as_str().unwrap(),
                e["expected"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            "glibc-2.34-52.amzn2023.0.11.x86_64 was installed after the last boot ",
            "kernel-6.1.115-126.197.amzn2023.x86_64 was installed after the last boot ",
            "running kernel 6.1.115-126.197.amzn2023.x86_64 (the newest installed kernel, kernel 6.1.115-126.197.amzn2023): reboot to run it",
        ]
    );
}

// --- rpm: real rpm, rpmbuild, createrepo_c, modifyrepo_c and dnf ------------------------------------

/// An rpm version from the pieces that matter to `rpmvercmp`: digits, letters, separators, `~`, `^`.
fn gen_rpm_version(rng: &mut Rng) -> String {
    let mut v = String::from(rng.pick(&["0", "1", "2", "10", "01", "a"]));
    for _ in 0..rng.below(5) {
        // no `-`: it separates version from release and is never part of either
        v.push_str(rng.pick(&[".", "_", "+", "~", "^", ""]));
        v.push_str(rng.pick(&["0", "1", "2", "10", "001", "a", "b", "rc", "Z", "git1"]));
    }
    v
}

#[test]
#[ignore = "needs tools: rpm"]
fn rpm_version_order_matches_rpm_vercmp() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut pairs = Vec::new();
    while pairs.len() < 3000 {
        let a = gen_rpm_version(&mut rng);
        let b = match rng.below(3) {
            0 => gen_rpm_version(&mut rng),
            1 => format!("{a}{}", rng.pick(&["~1", "^1", ".0", "a", "1", "_"])),
            _ => a.replacen(
                rng.pick(&["1", "0", "a", "."]),
                rng.pick(&["2", "00", "b", "_"]),
                1,
            ),
        };
        pairs.push((a, b));
    }
    // one rpm process evaluates every pair with rpm's own rpm.vercmp
    let table: String = pairs
        .iter()
        .map(|(a, b)| format!("{{[[{a}]],[[{b}]]}},"))
        .collect();
    let lua = format!(
        "%{{lua: for _, p in ipairs({{{table}}}) do print(rpm.vercmp(p[1], p[2]) .. \" \") end}}"
    );
    let out = Command::new("rpm")
        .args(["--eval", &lua])
        .output()
        .expect("rpm is installed (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_agrees_with_oracle(
        "rpm",
        &pairs,
        &out.stdout,
        ec2_harden::host::packages::rpmversion::rpmvercmp,
    );
}

#[test]
#[ignore = "needs root, tools: rpmbuild, createrepo_c and dnf --installroot"]
fn rpm_root_built_with_real_tools_agrees_with_dnf_updateinfo() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("root");
    // tiny packages built with rpmbuild: older ones installed, newer ones in a repository
    let build = |name: &str, epoch: Option<u32>, version: &str, release: &str, dir: &str| {
        let spec = w.join(format!("{name}-{version}-{release}.spec"));
        let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\n{epoch}Version: {version}\nRelease: {release}\nSummary: t\nLicense: MIT\n\
                 BuildArch: noarch\n%description\nt\n%files\n"
            ),
        )
        .unwrap();
        run_ok(
            Command::new("rpmbuild")
                .args(["-bb", "--define"])
                .arg(format!("_topdir {}", w.join("build").display()))
                .arg("--define")
                .arg(format!("_rpmdir {}", w.join(dir).display()))
                .arg(&spec),
        );
    };
    for (name, epoch, old, new) in [
        ("foo", None, "1.0-1", "1.0-2"),
        ("bar", None, "2.0-1", "2.0-1"),
        ("baz", Some(1), "1.0-1", "1.1-1"),
        ("qux", None, "1.0~rc1-1", "1.0-1"),
    ] {
        for (evr, dir) in [(old, "old"), (new, "new")] {
            let (version, release) = evr.split_once('-').unwrap();
            build(name, epoch, version, release, dir);
        }
    }
    let rpm = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args);
        c
    };
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    run_ok(&mut rpm(&["--initdb"]));
    let olds: Vec<PathBuf> = std::fs::read_dir(w.join("old/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    run_ok(rpm(&["-i", "--nodeps", "--justdb"]).args(&olds));

    // the repository, with a security advisory added the way distributions add theirs
    let repo = w.join("new");
    run_ok(Command::new("createrepo_c").arg("-q").arg(&repo));
    let updateinfo = w.join("updateinfo.xml");
    std::fs::write(
        &updateinfo,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="t" status="final" type="security" version="2.0">
    <id>TEST-2026-001</id><title>foo</title><issued date="2026-11-01 00:00:00"/><severity>Important</severity>
    <references><reference href="https://example/CVE-2026-0001" id="CVE-2026-0001" title="CVE-2026-0001" type="cve"/></references>
    <pkglist><collection short="t"><name>t</name>
      <package arch="noarch" epoch="0" name="foo" release="2" version="1.0"><filename>foo-1.0-2.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="t" status="final" type="bugfix" version="2.0">
    <id>TEST-2026-002</id><title>baz</title><issued date="2026-11-01 00:00:00"/><severity>None</severity>
    <pkglist><collection short="t"><name>t</name>
      <package arch="noarch" epoch="1" name="baz" release="1" version="1.1"><filename>baz-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="t" status="final" type="security" version="2.0">
    <id>TEST-2026-003</id><title>qux</title><issued date="2026-11-02 00:00:00"/><severity>Low</severity>
    <references><reference href="https://example/CVE-2026-0003" id="CVE-2026-0003" title="CVE-2026-0003" type="cve"/></references>
    <pkglist><collection short="t"><name>t</name>
      <package arch="noarch" epoch="0" name="qux" release="1" version="1.0"><filename>qux-1.0-1.noarch.rpm</filename></package>
      <package arch="noarch" epoch="0" name="bar" release="1" version="2.0"><filename>bar-2.0-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
"#,
    )
    .unwrap();
    run_ok(
        Command::new("modifyrepo_c")
            .arg("--mdtype=updateinfo")
            .arg(&updateinfo)
            .arg(repo.join("repodata")),
    );

    // dnf lays its cache out in the root itself; Debian's rpm keeps its database in ~/.rpmdb,
    // so point that (relative, inside the root) at the standard /var/lib/rpm
    std::fs::create_dir_all(root.join("etc/yum.repos.d")).unwrap();
    std::fs::create_dir_all(root.join("root")).unwrap();
    std::os::unix::fs::symlink("../var/lib/rpm", root.join("root/.rpmdb")).unwrap();
    std::fs::write(
        root.join("etc/yum.repos.d/t.repo"),
        format!(
            "[t]\nname=t\nbaseurl=file://{}\ngpgcheck=0\nenabled=1\n",
            repo.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=\"amzn\"\nVERSION_ID=\"2023\"\n",
    )
    .unwrap();
    let dnf = |args: &[&str]| {
        let mut c = Command::new("dnf");
        c.arg("--installroot")
            .arg(&root)
            .args(["--releasever", "2023", "-q"])
            .arg(format!(
                "--setopt=reposdir={}",
                root.join("etc/yum.repos.d").display()
            ))
            .args(args);
        c
    };
    run_ok(&mut dnf(&["makecache"]));
    let listed = run_ok(&mut dnf(&["-C", "updateinfo", "list", "--security"]));
    // TEST-2026-001 Important/Sec. foo-1.0-2.noarch
    let oracle: BTreeSet<String> = listed
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3).then(|| {
                let severity = w[1].split('/').next().unwrap().to_lowercase();
                format!("{} {severity} {}", w[0], w[2])
            })
        })
        .collect();
    assert_eq!(oracle.len(), 2, "{listed}");

    let (code, report, stderr) = check_json(&root, &["--only", "patch", "--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_eq!(r["status"], "fail", "{stderr}\n{r}");
    // foo:noarch 1.0-1 -> 1.0-2 from t, TEST-2026-001 (important, CVE-2026-0001)
    let ours: BTreeSet<String> = r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let m = e["message"].as_str().unwrap();
            let (pkg, rest) = m.split_once(' ').unwrap();
            let (name, arch) = pkg.split_once(':').unwrap();
            let fixed = rest
                .split(" -> ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let (_, adv) = m.split_once(", ").unwrap();
            let (id, notes) = adv.split_once(" (").unwrap();
            let severity = notes.split(',').next().unwrap();
            format!("{id} {severity} {name}-{fixed}.{arch}")
        })
        .collect();
    assert_eq!(ours, oracle);
    assert_eq!(code, 1);
    assert_eq!(result(&report, "patch-metadata-fresh")["status"], "pass");
}

// --- rpm: Amazon Linux 2's Berkeley DB Packages, written by Berkeley DB itself --------------------

/// Real header blobs: tiny packages built with rpmbuild (one with a 20 kB description, so its
/// header spans many overflow pages) and installed with `rpm --justdb` into a scratch database.
fn real_rpm_headers(w: &Path) -> Vec<Vec<u8>> {
    let root = w.join("scratch");
    for (name, epoch, version, release, description) in [
        ("glibc", None, "2.26", "64.amzn2.0.2", "t".to_string()),
        (
            "openssl-libs",
            Some(1),
            "1.0.2k",
            "24.amzn2.0.12",
            "t".into(),
        ),
        (
            "kernel",
            None,
            "4.14.355",
            "275.582.amzn2",
            "x".repeat(20_000),
        ),
        ("bash", None, "4.2.46", "34.amzn2", "y".repeat(3_000)),
    ] {
        let spec = w.join(format!("{name}.spec"));
        let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\n{epoch}Version: {version}\nRelease: {release}\nSummary: t\nLicense: MIT\n\
                 BuildArch: noarch\n%description\n{description}\n%files\n"
            ),
        )
        .unwrap();
        run_ok(
            Command::new("rpmbuild")
                .args(["-bb", "--define"])
                .arg(format!("_topdir {}", w.join("build").display()))
                .arg("--define")
                .arg(format!("_rpmdir {}", w.join("rpms").display()))
                .arg(&spec),
        );
    }
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    let rpm = || {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"]);
        c
    };
    run_ok(rpm().arg("--initdb"));
    let rpms: Vec<PathBuf> = std::fs::read_dir(w.join("rpms/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    run_ok(rpm().args(["-i", "--nodeps", "--justdb"]).args(&rpms));
    let conn = rusqlite::Connection::open(root.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .unwrap();
    let blobs: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(blobs.len(), 4);
    blobs
}

/// Writes `/var/lib/rpm/Packages` under `root` with `db5.3_load` as rpm 4.11 lays it out: key 0
/// holds the next header number, every other key a header number (in the database's byte
/// order) and its header blob. `copies` repeats the headers under more numbers so that the
/// database has many buckets and pages.
fn write_bdb_packages(root: &Path, blobs: &[Vec<u8>], copies: usize, config: &[&str]) {
    let big_endian = config.contains(&"db_lorder=4321");
    let num = |n: u32| {
        if big_endian {
            n.to_be_bytes()
        } else {
            n.to_le_bytes()
        }
    };
    let esc = |b: &[u8]| b.iter().map(|x| format!("\\{x:02x}")).collect::<String>();
    let total = (blobs.len() * copies) as u32;
    let mut dump = format!("{}\n{}\n", esc(&num(0)), esc(&num(total + 1)));
    for n in 1..=total {
        let blob = &blobs[(n as usize - 1) % blobs.len()];
        dump.push_str(&format!("{}\n{}\n", esc(&num(n)), esc(blob)));
    }
    let dir = root.join("var/lib/rpm");
    std::fs::create_dir_all(&dir).unwrap();
    let input = root.join("dump.txt");
    std::fs::write(&input, dump).unwrap();
    let mut cmd = Command::new("db5.3_load");
    cmd.args(["-T", "-t", "hash"]);
    for c in config {
        cmd.args(["-c", c]);
    }
    run_ok(cmd.arg("-f").arg(&input).arg(dir.join("Packages")));
    std::fs::remove_file(input).unwrap();
}

/// `name evr arch` of each installed package, as rpm's own read-only Berkeley DB backend lists them.
fn rpm_bdb_ro_list(root: &Path) -> Vec<String> {
    let out = run_ok(
        Command::new("rpm")
            .arg("--dbpath")
            .arg(root.join("var/lib/rpm"))
            .args(["--define", "_db_backend bdb_ro", "-qa", "--qf"])
            .arg("%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\\n"),
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn agent_inventory(root: &Path) -> Result<ec2_harden::host::packages::Inventory, String> {
    let sysroot = ec2_harden::sysroot::Sysroot::open(root).unwrap();
    ec2_harden::host::packages::Inventory::read(&sysroot)
        .map(|i| i.expect("a database"))
        .map_err(|e| e.to_string())
}

fn inventory_list(inv: &ec2_harden::host::packages::Inventory) -> Vec<String> {
    let mut v: Vec<String> = inv
        .packages
        .iter()
        .map(|p| format!("{} {} {}", p.name, p.version, p.arch))
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs tools: rpmbuild, rpm and db5.3_load"]
fn berkeley_db_packages_agree_with_rpm_bdb_ro() {
    let work = tempfile::tempdir().unwrap();
    let blobs = real_rpm_headers(work.path());
    // 4 kB pages as rpm uses them (headers on overflow chains), 64 kB pages (headers in place),
    // 512-byte pages (long chains), page checksums, and a big-endian database. rpm's bdb_ro
    // lists nothing from a checksummed database: there the oracle is its list of the same
    // records without checksums.
    let mut unchecksummed = Vec::new();
    for (i, (copies, config)) in [
        (1, vec!["db_pagesize=4096"]),
        (60, vec!["db_pagesize=4096"]),
        (30, vec!["db_pagesize=65536"]),
        (10, vec!["db_pagesize=512"]),
        (60, vec!["db_pagesize=4096", "chksum=1"]),
        (20, vec!["db_pagesize=4096", "db_lorder=4321"]),
    ]
    .into_iter()
    .enumerate()
    {
        let root = work.path().join(format!("root{i}"));
        write_bdb_packages(&root, &blobs, copies, &config);
        let oracle = if config.contains(&"chksum=1") {
            std::mem::take(&mut unchecksummed)
        } else {
            rpm_bdb_ro_list(&root)
        };
        assert_eq!(oracle.len(), 4 * copies, "{config:?}: {oracle:?}");
        if copies == 60 {
            unchecksummed = oracle.clone();
        }
        let inv = agent_inventory(&root).unwrap_or_else(|e| panic!("{config:?}: {e}"));
        assert!(inv.problems.is_empty(), "{config:?}: {:?}", inv.problems);
        assert_eq!(inv.path, "/var/lib/rpm/Packages");
        assert_eq!(inventory_list(&inv), oracle, "{config:?}");
    }
    let root = work.path().join("root0");
    let inv = agent_inventory(&root).unwrap();
    assert_eq!(
        inventory_list(&inv),
        [
            "bash 4.2.46-34.amzn2 noarch",
            "glibc 2.26-64.amzn2.0.2 noarch",
            "kernel 4.14.355-275.582.amzn2 noarch",
            "openssl-libs 1:1.0.2k-24.amzn2.0.12 noarch",
        ]
    );
}

#[test]
#[ignore = "needs tools: rpmbuild, rpm and db5.3_load"]
fn damaged_berkeley_db_packages_are_errors_naming_the_file() {
    let work = tempfile::tempdir().unwrap();
    let blobs = real_rpm_headers(work.path());
    let root = work.path().join("root");
    write_bdb_packages(&root, &blobs, 5, &["db_pagesize=4096"]);
    let db = root.join("var/lib/rpm/Packages");
    let good = std::fs::read(&db).unwrap();
    let page_size = 4096;
    let pages = good.len() / page_size;

    // truncated: shorter than its metadata's last page
    std::fs::write(&db, &good[..good.len() - page_size]).unwrap();
    let e = agent_inventory(&root).unwrap_err();
    assert!(
        e.starts_with("/var/lib/rpm/Packages: truncated: the metadata says the last page is"),
        "{e}"
    );
    std::fs::write(&db, &good[..100]).unwrap();
    let e = agent_inventory(&root).unwrap_err();
    assert!(
        e.starts_with("/var/lib/rpm/Packages: not a Berkeley DB file"),
        "{e}"
    );

    // an overflow chain turned into a loop: the kernel's header spans several pages
    let mut looped = good.clone();
    let chained = (1..pages)
        .find(|&p| {
            let page = &good[p * page_size..(p + 1) * page_size];
            page[25] == 7 && u32::from_le_bytes(page[16..20].try_into().unwrap()) != 0
        })
        .expect("an overflow page with a successor");
    looped[chained * page_size + 16..chained * page_size + 20]
        .copy_from_slice(&(chained as u32).to_le_bytes());
    std::fs::write(&db, &looped).unwrap();
    let inv = agent_inventory(&root).unwrap();
    assert!(
        inv.problems
            .iter()
            .any(|p| p.starts_with("/var/lib/rpm/Packages: page ") && p.contains("overflow")),
        "{:?}",
        inv.problems
    );
    // the other records are still read
    assert!(inv.packages.iter().any(|p| p.name == "glibc"));

    // and through check: the damage is reported, never a pass
    let (_, report, stderr) = check_json(&root, &["--only", "patch", "--stage", "bake"]);
    let r = result(&report, "patch-security-updates");
    assert_ne!(r["status"], "pass", "{stderr}\n{r}");

    // any byte flipped anywhere: an error or problems, never a panic
    let mut rng = Rng(0x05ee_dbdb);
    for _ in 0..400 {
        let mut bad = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&db, &bad).unwrap();
        let _ = agent_inventory(&root);
    }
}

// --- check --refresh-metadata: real apt-get update against a file:// repository ------------------

#[test]
#[ignore = "needs tools: dpkg-scanpackages (dpkg-dev)"]
fn refresh_metadata_runs_apt_get_update_for_the_root() {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // apt downloads as _apt: the tree must be readable
    std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).unwrap();
    // a newer hello in a security-labelled flat repository, indexed by dpkg-scanpackages
    let repo = w.join("repo");
    let pkg = w.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: t\n",
    )
    .unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&pkg)
            .arg(repo.join("hello_2.10-3_amd64.deb")),
    );
    let packages = run_ok(
        Command::new("dpkg-scanpackages")
            .arg(".")
            .current_dir(&repo),
    );
    std::fs::write(repo.join("Packages"), &packages).unwrap();
    let sha = hex(&sha2::Sha256::digest(packages.as_bytes()));
    std::fs::write(
        repo.join("Release"),
        format!(
            "Origin: Debian\nLabel: Debian-Security\nSuite: bookworm-security\nCodename: bookworm-security\n\
             Date: {}\nSHA256:\n {sha} {} Packages\n",
            rfc2822(0),
            packages.len()
        ),
    )
    .unwrap();
    // the root: hello 2.10-2 installed, the repository configured, no lists yet
    let root = w.join("root");
    for d in [
        "var/lib/dpkg",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-2\n\n",
    )
    .unwrap();
    let sources = root.join("etc/apt/sources.list");
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .unwrap();

    // without a refresh there is nothing to judge by
    let (_, report, _) = check_json(&root, &["--only", "patch", "--stage", "bake"]);
    assert_eq!(status_of(&report, "patch-metadata-fresh"), "fail");
    assert_ne!(status_of(&report, "patch-security-updates"), "pass");
    assert!(report["host"]["package_refresh"].is_null());

    // with it, apt-get update fills the root's lists and the update is seen
    let (code, report, stderr) = check_json(
        &root,
        &["--only", "patch", "--stage", "bake", "--refresh-metadata"],
    );
    let refresh = report["host"]["package_refresh"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        refresh.starts_with("package metadata refreshed by `apt-get -q -o Dir="),
        "{refresh}\n{stderr}"
    );
    assert_eq!(
        status_of(&report, "patch-metadata-fresh"),
        "pass",
        "{stderr}"
    );
    let r = result(&report, "patch-security-updates");
    let first = r["evidence"][0]["message"].as_str().unwrap();
    assert!(
        first.starts_with("hello:amd64 2.10-2 -> 2.10-3 from Debian-Security bookworm-security"),
        "{r}"
    );
    assert_eq!(code, 1);

    // a refresh that fails is a warning and a line in the report; the stale lists are judged
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{}/missing ./\n", w.display()),
    )
    .unwrap();
    for f in std::fs::read_dir(root.join("var/lib/apt/lists")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::remove_file(f).unwrap();
        }
    }
    let (_, report, stderr) = check_json(
        &root,
        &["--only", "patch", "--stage", "bake", "--refresh-metadata"],
    );
    let refresh = report["host"]["package_refresh"].as_str().unwrap();
    assert!(refresh.contains("failed"), "{refresh}");
    assert!(
        stderr.contains("package metadata refresh failed"),
        "{stderr}"
    );
    let fresh = result(&report, "patch-metadata-fresh");
    assert_eq!(fresh["status"], "fail", "{fresh}");

    // never with --offline
    let (code, _, _) = common::run(&[
        "check",
        "--root",
        root.to_str().unwrap(),
        "--offline",
        "--refresh-metadata",
    ]);
    assert_eq!(code, 2);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn yum_cache_layout_and_the_release_lock_are_read() {
    let root = al2023_tree(None);
    let evidence_of = |report: &serde_json::Value, id: &str| -> Vec<String> {
        result(report, id)["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    // dnf locked to a release, or following the newest one: the metadata verdict says which
    std::fs::create_dir_all(root.path().join("etc/dnf/vars")).unwrap();
    std::fs::write(
        root.path().join("etc/dnf/vars/releasever"),
        "2023.6.20241010\n",
    )
    .unwrap();
    let (_, report, _) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    let notes = evidence_of(&report, "patch-metadata-fresh");
    assert!(
        notes.iter().any(|n| n.contains(
            "dnf locked to release 2023.6.20241010 (/etc/dnf/vars/releasever): advisories fixed only in newer releases are not in this metadata"
        )),
        "{notes:#?}"
    );
    std::fs::write(root.path().join("etc/dnf/vars/releasever"), "latest\n").unwrap();
    let (_, report, _) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    let notes = evidence_of(&report, "patch-metadata-fresh");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("dnf releasever = latest: dnf follows the newest release")),
        "{notes:#?}"
    );

    // the same repository kept the way yum keeps it: repomd.xml and the files by base name
    let dnf = root
        .path()
        .join("var/cache/dnf/amazonlinux-0123456789abcdef/repodata");
    let yum = root.path().join("var/cache/yum/x86_64/2023/amazonlinux");
    std::fs::create_dir_all(&yum).unwrap();
    for f in ["repomd.xml", "aa11-updateinfo.xml.gz"] {
        std::fs::rename(dnf.join(f), yum.join(f)).unwrap();
    }
    std::fs::remove_dir_all(root.path().join("var/cache/dnf")).unwrap();
    let (code, report, stderr) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    assert_eq!(
        evidence_of(&report, "patch-security-updates"),
        vec![
            "openssl-libs:x86_64 1:3.0.8-1.amzn2023.0.10 -> 1:3.0.8-1.amzn2023.0.12 from amazonlinux, ALAS2023-2024-481 (important, CVE-2023-5678, CVE-2023-6129)",
        ],
        "{stderr}"
    );
    assert_eq!(code, 1);
    assert_eq!(result(&report, "patch-metadata-fresh")["status"], "pass");
}

#[test]
fn the_age_of_the_newest_package_install_is_judged() {
    let tree = Tree::new();
    let touch = |rel: &str, when: &str| {
        let ok = Command::new("touch")
            .args(["-h", "-d", when])
            .arg(tree.dir.path().join(rel))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    // dpkg: the newest package file list is the newest install
    tree.write("var/lib/dpkg/info/openssl.list", b"/usr/bin/openssl\n");
    tree.write(
        "var/lib/dpkg/info/libc6:amd64.list",
        b"/usr/lib/libc.so.6\n",
    );
    touch("var/lib/dpkg/info/openssl.list", "45 days ago");
    touch("var/lib/dpkg/info/libc6:amd64.list", "90 days ago");
    let (_, report) = tree.check(&[]);
    let r = result(&report, "patch-recent-package-install");
    assert_eq!(r["status"], "fail", "{r}");
    let ev = &r["evidence"][0];
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .starts_with("newest package install or upgrade: openssl, "),
        "{ev}"
    );
    assert_eq!(ev["found"], "45 days ago");
    assert_eq!(ev["expected"], "at most 30 days");
    // a site that patches quarterly
    let site = tree.dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[baseline]\nname = \"site\"\nversion = \"1\"\n\n[[package_age]]\n\
         id = \"patch-recent-package-install\"\ntitle = \"t\"\nseverity = \"low\"\n\
         rationale = \"r\"\nremediation = \"r\"\nmax_days = 92\n",
    )
    .unwrap();
    let (_, report) = tree.check(&["--baseline", site.to_str().unwrap()]);
    assert_eq!(status_of(&report, "patch-recent-package-install"), "pass");
    // an upgrade today
    touch("var/lib/dpkg/info/libc6:amd64.list", "now");
    let (_, report) = tree.check(&[]);
    let r = result(&report, "patch-recent-package-install");
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(r["evidence"][0]["found"], "0 days ago");
    assert!(r["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .contains(": libc6:amd64, "));
    // rpm: INSTALLTIME of the newest package (the kernel, an hour ago, in this tree)
    let root = al2023_tree(None);
    let (_, report, _) = check_json(root.path(), &["--only", "patch", "--stage", "bake"]);
    let r = result(&report, "patch-recent-package-install");
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(r["evidence"][0]["path"], "/var/lib/rpm/rpmdb.sqlite");
    // a bad limit is refused at its position
    std::fs::write(
        &site,
        "[baseline]\nname = \"site\"\nversion = \"1\"\n\n[[package_age]]\n\
         id = \"patch-recent-package-install\"\ntitle = \"t\"\nseverity = \"low\"\n\
         rationale = \"r\"\nremediation = \"r\"\nmax_days = 0\n",
    )
    .unwrap();
    let (code, _, stderr) = common::run(&["baseline", "validate", site.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":11:12: error: `max_days` must be 1 to 3650, found 0"),
        "{stderr}"
    );
}
