//! The `crypt` family on fixture trees shaped like a live host's `/sys` and `/proc` (built here by
//! [`Host`]: sysfs directories under `/sys/devices`, with `/sys/dev/block/MAJ:MIN`,
//! `/sys/class/block/NAME`, `device` and `slaves/` as relative symlinks, as the kernel lays them
//! out), with real LUKS1/LUKS2 headers made by `cryptsetup luksFormat` on sparse files (no
//! device-mapper needed to format) placed where the device nodes would be (`/dev/vda2`). Scenarios:
//! a plain disk, a LUKS2 root, LVM on LUKS, LUKS on LVM, encrypted and unencrypted swap, an
//! unencrypted EBS data volume, NVMe EBS and instance store, btrfs (one and two devices), pseudo
//! filesystems, unreadable stacks and headers, crypttab, the cipher policy, and offline images.
//! The header parser is also checked against `cryptsetup luksDump` and under truncation and
//! mutation.
//!
//! Needs `cryptsetup` (cryptsetup-bin; tests/run.sh installs it).

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::{check_json, result, run, status};
use ec2_harden::host::storage::luks::{self, Kdf, LuksError};

const ROOT_UUID: &str = "33c8406e-b8df-44a9-a05b-452c86739125";
const PV_UUID: &str = "0f2e6a51-7c3d-4b8e-9a1f-5d6c7b8a9e0f";
const FAST_ARGON2: &[&str] = &[
    "--type",
    "luks2",
    "--pbkdf",
    "argon2id",
    "--pbkdf-memory",
    "32",
    "--pbkdf-force-iterations",
    "4",
];

// ------------------------------------------------------------------------------------------------
// Real LUKS headers

/// The first MiB of a sparse 20 MiB file formatted by `cryptsetup luksFormat ARGS --uuid UUID`
/// (made once per argument list per test process).
fn luks_header(args: &[&str], uuid: &str) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let key = format!("{args:?} {uuid}");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().unwrap().get(&key) {
        return h.clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("volume.img");
    let keyfile = dir.path().join("key");
    fs::write(&keyfile, "correct horse battery staple").unwrap();
    fs::File::create(&img).unwrap().set_len(20 << 20).unwrap();
    let out = Command::new("cryptsetup")
        .args(["luksFormat", "-q", "--key-file"])
        .arg(&keyfile)
        .args(["--uuid", uuid])
        .args(args)
        .arg(&img)
        .output()
        .expect("cryptsetup (cryptsetup-bin; tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "cryptsetup luksFormat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = fs::read(&img).unwrap();
    bytes.truncate(1 << 20);
    cache.lock().unwrap().insert(key, bytes.clone());
    bytes
}

/// `cryptsetup luksDump` of a header image, as the oracle for the parser.
fn luks_dump(header: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("h.img");
    fs::write(&img, header).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(20 << 20).unwrap();
    let out = Command::new("cryptsetup")
        .arg("luksDump")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Replace `from` by `to` (same length or shorter, NUL-padded) in a LUKS2 header's JSON area and
/// recompute the checksum: a consistent header cryptsetup would have to be patched to write
/// (cipher_null needs device-mapper to format).
fn edit_luks2(header: &[u8], from: &str, to: &str) -> Vec<u8> {
    use sha2::Digest;
    let size = u64::from_be_bytes(header[8..16].try_into().unwrap()) as usize;
    let mut h = header[..size].to_vec();
    let json_end = h[4096..].iter().position(|&b| b == 0).unwrap() + 4096;
    let json = String::from_utf8(h[4096..json_end].to_vec()).unwrap();
    assert!(json.contains(from), "{json}");
    let edited = json.replace(from, to);
    h[4096..json_end].fill(0);
    h[4096..4096 + edited.len()].copy_from_slice(edited.as_bytes());
    h[448..512].fill(0);
    let sum = sha2::Sha256::digest(&h);
    h[448..480].copy_from_slice(&sum);
    // no secondary copy: only the edited primary
    h
}

// ------------------------------------------------------------------------------------------------
// Fixture hosts

/// A fixture root laid out like a live host: `/proc/self/mountinfo`, `/proc/swaps`, sysfs block
/// devices, device nodes (header images) under `/dev`.
struct Host {
    dir: tempfile::TempDir,
    /// kernel name → its sysfs directory (absolute, in the root)
    sysfs: HashMap<String, String>,
    mounts: Vec<String>,
    swaps: Vec<String>,
    next_pci: u32,
}

/// `to` relative to the directory holding `link` (both absolute in-root paths), as sysfs writes
/// its links.
fn relative(link: &str, to: &str) -> PathBuf {
    let from: Vec<Component> = Path::new(link).parent().unwrap().components().collect();
    let to_c: Vec<Component> = Path::new(to).components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c);
    }
    out
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("ec2h-crypt-")
            .tempdir()
            .unwrap();
        let h = Host {
            dir,
            sysfs: HashMap::new(),
            mounts: vec![],
            swaps: vec![],
            next_pci: 2,
        };
        h.write("/proc/sys/kernel/osrelease", "6.1.0-28-cloud-amd64\n");
        fs::create_dir_all(h.at("/sys/dev/block")).unwrap();
        fs::create_dir_all(h.at("/sys/class/block")).unwrap();
        h
    }

    fn at(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.at(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn write_bytes(&self, path: &str, bytes: &[u8]) {
        let p = self.at(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    fn link(&self, link: &str, to: &str) {
        let p = self.at(link);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(relative(link, to), p).unwrap();
    }

    /// The common part of every block device: `dev`, `uevent`, `holders/`, `slaves/`, and the
    /// `/sys/dev/block` and `/sys/class/block` links.
    fn block(&mut self, name: &str, dev: &str, dir: &str, devtype: &str) {
        let (major, minor) = dev.split_once(':').unwrap();
        self.write(&format!("{dir}/dev"), &format!("{dev}\n"));
        self.write(
            &format!("{dir}/uevent"),
            &format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE={devtype}\n"),
        );
        fs::create_dir_all(self.at(&format!("{dir}/holders"))).unwrap();
        fs::create_dir_all(self.at(&format!("{dir}/slaves"))).unwrap();
        self.link(&format!("/sys/dev/block/{dev}"), dir);
        self.link(&format!("/sys/class/block/{name}"), dir);
        self.sysfs.insert(name.to_string(), dir.to_string());
    }

    /// A disk on `bus` (`virtio`, `scsi`); NVMe disks are [`Host::nvme`].
    fn disk(&mut self, name: &str, dev: &str, bus: &str) -> &mut Self {
        let pci = format!("/sys/devices/pci0000:00/0000:00:{:02x}.0", self.next_pci);
        self.next_pci += 1;
        let ctrl = format!("{pci}/{bus}{}", self.next_pci);
        let dir = format!("{ctrl}/block/{name}");
        self.block(name, dev, &dir, "disk");
        self.link(&format!("{dir}/device"), &ctrl);
        self.link(&format!("{ctrl}/subsystem"), &format!("/sys/bus/{bus}"));
        self
    }

    /// An NVMe namespace with EC2's model and serial on its controller.
    fn nvme(&mut self, name: &str, dev: &str, model: &str, serial: &str) -> &mut Self {
        let pci = format!("/sys/devices/pci0000:00/0000:00:{:02x}.0", self.next_pci);
        self.next_pci += 1;
        let ctrl_name = name.split('n').take(2).collect::<Vec<_>>().join("n");
        let ctrl = format!("{pci}/nvme/{ctrl_name}");
        let dir = format!("{ctrl}/{name}");
        self.block(name, dev, &dir, "disk");
        self.link(&format!("{dir}/device"), &ctrl);
        self.link(&format!("{ctrl}/subsystem"), "/sys/class/nvme");
        // the kernel pads both to their field widths
        self.write(&format!("{ctrl}/model"), &format!("{model:<40}\n"));
        self.write(&format!("{ctrl}/serial"), &format!("{serial:<20}\n"));
        self
    }

    fn partition(&mut self, disk: &str, name: &str, dev: &str, number: u32) -> &mut Self {
        let dir = format!("{}/{name}", self.sysfs[disk]);
        self.block(name, dev, &dir, "partition");
        self.write(&format!("{dir}/partition"), &format!("{number}\n"));
        self
    }

    /// A device-mapper device on `slaves` (kernel names), with its dm name and UUID.
    fn dm(
        &mut self,
        name: &str,
        dev: &str,
        mapping: &str,
        uuid: &str,
        slaves: &[&str],
    ) -> &mut Self {
        let dir = format!("/sys/devices/virtual/block/{name}");
        self.block(name, dev, &dir, "disk");
        self.write(&format!("{dir}/dm/name"), &format!("{mapping}\n"));
        self.write(&format!("{dir}/dm/uuid"), &format!("{uuid}\n"));
        for s in slaves {
            let sdir = self.sysfs[*s].clone();
            self.link(&format!("{dir}/slaves/{s}"), &sdir);
            self.link(&format!("{sdir}/holders/{name}"), &dir);
        }
        self
    }

    fn zram(&mut self, name: &str, dev: &str) -> &mut Self {
        let dir = format!("/sys/devices/virtual/block/{name}");
        self.block(name, dev, &dir, "disk");
        self.write(&format!("{dir}/comp_algorithm"), "[lzo-rle] zstd\n");
        self
    }

    fn mount(&mut self, point: &str, dev: &str, fstype: &str, source: &str) -> &mut Self {
        let id = 20 + self.mounts.len();
        self.mounts.push(format!(
            "{id} 1 {dev} / {point} rw,relatime shared:{id} - {fstype} {source} rw"
        ));
        self
    }

    fn swap(&mut self, path: &str, kind: &str) -> &mut Self {
        self.swaps
            .push(format!("{path:<40}{kind}\t\t1048572\t\t0\t\t-2"));
        self
    }

    /// The device node of `name` holding `bytes` (a header image standing in for the device).
    fn device(&self, name: &str, bytes: &[u8]) -> &Self {
        self.write_bytes(&format!("/dev/{name}"), bytes);
        self
    }

    fn check(&self, extra: &[&str]) -> serde_json::Value {
        self.write("/proc/self/mountinfo", &(self.mounts.join("\n") + "\n"));
        let mut swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_string();
        for s in &self.swaps {
            swaps.push_str(s);
            swaps.push('\n');
        }
        self.write("/proc/swaps", &swaps);
        let mut args = vec!["--only", "crypt"];
        args.extend_from_slice(extra);
        let (_, report, stderr) = check_json(self.dir.path(), &args);
        assert_eq!(report["host"]["live"], true, "{stderr}");
        report
    }
}

/// The LUKS2 dm UUID cryptsetup gives a mapping: `CRYPT-LUKS2-<uuid without dashes>-<name>`.
fn dm_uuid(kind: &str, uuid: &str, name: &str) -> String {
    format!("CRYPT-{kind}-{}-{name}", uuid.replace('-', ""))
}

fn evidence_text(r: &serde_json::Value) -> String {
    r["evidence"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|e| {
            format!(
                "{} | found: {} | expected: {}",
                e["message"].as_str().unwrap_or(""),
                e["found"].as_str().unwrap_or(""),
                e["expected"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A LUKS2 root: / on dm-0 (cryptroot) on vda2 on a virtio disk.
fn luks2_root(host: &mut Host) {
    host.disk("vda", "254:0", "virtio")
        .partition("vda", "vda1", "254:1", 1)
        .partition("vda", "vda2", "254:2", 2)
        .dm(
            "dm-0",
            "253:0",
            "cryptroot",
            &dm_uuid("LUKS2", ROOT_UUID, "cryptroot"),
            &["vda2"],
        )
        .mount("/", "253:0", "ext4", "/dev/mapper/cryptroot")
        .mount("/boot", "254:1", "ext4", "/dev/vda1")
        .mount("/proc", "0:21", "proc", "proc")
        .mount("/tmp", "0:27", "tmpfs", "tmpfs");
    host.device("vda2", &luks_header(FAST_ARGON2, ROOT_UUID));
}

/// A virtio disk `vda` whose partition `vda2` carries the dm-crypt mapping `cryptroot` (dm-0,
/// 253:0) of type `kind` (LUKS1, LUKS2, PLAIN, ...); the caller mounts it and writes its header.
fn cryptroot_on_vda2<'h>(host: &'h mut Host, kind: &str) -> &'h mut Host {
    host.disk("vda", "254:0", "virtio")
        .partition("vda", "vda2", "254:2", 2)
        .dm(
            "dm-0",
            "253:0",
            "cryptroot",
            &dm_uuid(kind, ROOT_UUID, "cryptroot"),
            &["vda2"],
        )
}

// ------------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn plain_virtio_disk_fails_naming_its_chain() {
    let mut host = Host::new();
    host.disk("vda", "254:0", "virtio")
        .partition("vda", "vda1", "254:1", 1)
        .mount("/", "254:1", "ext4", "/dev/vda1")
        .mount("/proc", "0:21", "proc", "proc")
        .mount("/sys", "0:22", "sysfs", "sysfs");
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "fail", "{r}");
    let ev = &r["evidence"][0];
    assert_eq!(
        ev["message"],
        "/ (ext4) -> vda1 (partition) -> vda (disk, virtio)"
    );
    assert_eq!(ev["path"], "/proc/self/mountinfo");
    assert_eq!(ev["line"], 1);
    assert_eq!(ev["found"], "not encrypted: vda reached without dm-crypt");
    assert_eq!(
        r["evidence"][1]["message"],
        "/var, /home, /srv are not separate mounts: they are on /"
    );
    assert_eq!(status(&report, "crypt-swap-encrypted"), "not-applicable");
    assert_eq!(
        result(&report, "crypt-cipher-strong")["reason"],
        "no dm-crypt mapping under any mounted filesystem or active swap area"
    );
    assert_eq!(
        result(&report, "crypt-crypttab-active")["reason"],
        "no /etc/crypttab entries"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn luks2_root_passes_with_cipher_key_size_and_kdf() {
    let mut host = Host::new();
    luks2_root(&mut host);
    host.write(
        "/etc/crypttab",
        &format!("cryptroot UUID={ROOT_UUID} none luks,discard\n"),
    );
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    let ev = &r["evidence"][0];
    assert_eq!(
        ev["message"],
        "/ (ext4) -> dm-0 (CRYPT-LUKS2, cryptroot) -> vda2 (partition) -> vda (disk, virtio)"
    );
    let found = ev["found"].as_str().unwrap();
    assert!(
        found.starts_with("cryptroot: LUKS2 aes-xts-plain64, 512-bit key, ")
            && found.contains("keyslot 0: argon2id, 4 iterations, 32 KiB, "),
        "{found}"
    );
    let cipher = result(&report, "crypt-cipher-strong");
    assert_eq!(cipher["status"], "pass", "{cipher}");
    assert!(
        cipher["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("dm-0 (cryptroot, under /): LUKS2 aes-xts-plain64, 512-bit key"),
        "{cipher}"
    );
    let ct = result(&report, "crypt-crypttab-active");
    assert_eq!(ct["status"], "pass", "{ct}");
    assert_eq!(ct["evidence"][0]["found"], "active as dm-0 (CRYPT-LUKS2)");

    // the header belongs to another volume: the mapping was not opened from it
    host.device("vda2", &luks_header(FAST_ARGON2, PV_UUID));
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .contains(&format!("has UUID {PV_UUID}")),
        "{r}"
    );

    // a truncated header, and none at all (a detached header): errors, never a pass
    host.device("vda2", &luks_header(FAST_ARGON2, ROOT_UUID)[..10000]);
    let report = host.check(&[]);
    for id in ["crypt-mounts-encrypted", "crypt-cipher-strong"] {
        let r = result(&report, id);
        assert_eq!(r["status"], "error", "{r}");
        assert!(
            r["cause"].as_str().unwrap().contains(
                "/dev/vda2: truncated LUKS2 header: 10000 bytes, expected at least 16384"
            ),
            "{r}"
        );
    }
    host.device("vda2", &[0u8; 8192]);
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "error");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .contains("/dev/vda2: no LUKS header"),
        "{r}"
    );
    fs::remove_file(host.at("/dev/vda2")).unwrap();
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "error");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .contains("/dev/vda2: No such file or directory"),
        "{r}"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn lvm_on_luks_and_luks_on_lvm_both_resolve() {
    // LVM on LUKS: / on vg0-root (dm-1) on cryptpv (dm-0) on vda2
    let mut host = Host::new();
    host.disk("vda", "254:0", "virtio")
        .partition("vda", "vda2", "254:2", 2)
        .dm(
            "dm-0",
            "253:0",
            "cryptpv",
            &dm_uuid("LUKS2", PV_UUID, "cryptpv"),
            &["vda2"],
        )
        .dm(
            "dm-1",
            "253:1",
            "vg0-root",
            "LVM-k3jvYb2dQZfq0hV2cW7xT1aN9pL4sE6rM8gH5jK0tY3uI7oP1qW2eR4tY6uI8oP0",
            &["dm-0"],
        )
        .dm(
            "dm-2",
            "253:2",
            "vg0-home",
            "LVM-k3jvYb2dQZfq0hV2cW7xT1aN9pL4sE6rAbCdEfGhIjKlMnOpQrStUvWxYz012345",
            &["dm-0"],
        )
        .mount("/", "253:1", "xfs", "/dev/mapper/vg0-root")
        .mount("/home", "253:2", "xfs", "/dev/mapper/vg0-home");
    host.device("vda2", &luks_header(FAST_ARGON2, PV_UUID));
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    let text = evidence_text(r);
    assert!(
        text.contains("/ (xfs) -> dm-1 (LVM, vg0-root) -> dm-0 (CRYPT-LUKS2, cryptpv) -> vda2 (partition) -> vda (disk, virtio)")
            && text.contains("/home (xfs) -> dm-2 (LVM, vg0-home) -> dm-0 (CRYPT-LUKS2, cryptpv)"),
        "{text}"
    );
    // one volume under both mounts: judged once
    let cipher = result(&report, "crypt-cipher-strong");
    assert_eq!(cipher["status"], "pass", "{cipher}");
    assert_eq!(cipher["evidence"].as_array().unwrap().len(), 1, "{cipher}");

    // LUKS on LVM: / on cryptroot (dm-1, LUKS1) on vg0-root (dm-0) on vda2; the header is read
    // from the LV's node, /dev/dm-0
    let mut host = Host::new();
    host.disk("vda", "254:0", "virtio")
        .partition("vda", "vda2", "254:2", 2)
        .dm(
            "dm-0",
            "253:0",
            "vg0-root",
            "LVM-abcdefghijklmnopqrstuvwxyz012345ABCDEFGHIJKLMNOPQRSTUVWXYZ6789",
            &["vda2"],
        )
        .dm(
            "dm-1",
            "253:1",
            "cryptroot",
            &dm_uuid("LUKS1", ROOT_UUID, "cryptroot"),
            &["dm-0"],
        )
        .mount("/", "253:1", "ext4", "/dev/mapper/cryptroot");
    let luks1 = &["--type", "luks1", "--pbkdf-force-iterations", "1000"];
    host.device("dm-0", &luks_header(luks1, ROOT_UUID));
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "/ (ext4) -> dm-1 (CRYPT-LUKS1, cryptroot) -> dm-0 (LVM, vg0-root) -> vda2 (partition) -> vda (disk, virtio)"
    );
    assert!(
        r["evidence"][0]["found"]
            .as_str()
            .unwrap()
            .starts_with("cryptroot: LUKS1 aes-xts-plain64, 512-bit key, 512-byte sectors; keyslot 0: pbkdf2-sha256, 1000 iterations"),
        "{r}"
    );
    // 1000 PBKDF2 iterations were forced down: the cipher policy (at least 100,000) fails it
    let cipher = result(&report, "crypt-cipher-strong");
    assert_eq!(cipher["status"], "fail", "{cipher}");
    assert_eq!(
        cipher["evidence"][0]["found"],
        "keyslot 0: pbkdf2 with 1000 iterations, below 100000"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn swap_encrypted_with_a_random_key_unencrypted_zram_and_swap_files() {
    let mut host = Host::new();
    luks2_root(&mut host);
    host.disk("vdb", "254:16", "virtio")
        .dm("dm-1", "253:1", "cswap", "CRYPT-PLAIN-cswap", &["vdb"])
        .swap("/dev/dm-1", "partition");
    host.write(
        "/etc/crypttab",
        "cswap /dev/vdb /dev/urandom swap,cipher=aes-xts-plain64,size=512\n",
    );
    let report = host.check(&[]);
    let r = result(&report, "crypt-swap-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "swap /dev/dm-1 -> dm-1 (CRYPT-PLAIN, cswap) -> vdb (disk, virtio)"
    );
    assert_eq!(r["evidence"][0]["path"], "/proc/swaps");
    assert_eq!(r["evidence"][0]["line"], 2);
    // a plain mapping has no header: its cipher is judged on the crypttab entry that opened it
    let cipher = result(&report, "crypt-cipher-strong");
    assert_eq!(cipher["status"], "pass", "{cipher}");
    let text = evidence_text(cipher);
    assert!(
        text.contains("dm-1 (cswap, under swap /dev/dm-1): plain dm-crypt (no header), opened by /etc/crypttab:1")
            && text.contains("found: aes-xts-plain64, 512-bit key"),
        "{text}"
    );
    // without cipher= and size= the plain mapping's cipher cannot be known: an error
    host.write("/etc/crypttab", "cswap /dev/vdb /dev/urandom swap\n");
    let cipher = result(&host.check(&[]), "crypt-cipher-strong").clone();
    assert_eq!(cipher["status"], "error", "{cipher}");
    assert!(
        cipher["cause"]
            .as_str()
            .unwrap()
            .contains("does not give both cipher= and size="),
        "{cipher}"
    );

    // zram swap is RAM; a swap file on the LUKS root is as encrypted as /
    let mut host = Host::new();
    luks2_root(&mut host);
    host.zram("zram0", "252:0")
        .swap("/dev/zram0", "partition")
        .swap("/swapfile", "file");
    let r = result(&host.check(&[]), "crypt-swap-encrypted").clone();
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(r["evidence"].as_array().unwrap()[0]["message"], "swap file /swapfile (on /) -> dm-0 (CRYPT-LUKS2, cryptroot) -> vda2 (partition) -> vda (disk, virtio)");
    let mut only_zram = Host::new();
    luks2_root(&mut only_zram);
    only_zram
        .zram("zram0", "252:0")
        .swap("/dev/zram0", "partition");
    let r = result(&only_zram.check(&[]), "crypt-swap-encrypted").clone();
    assert_eq!(r["status"], "not-applicable");
    assert_eq!(
        r["reason"],
        "swap /dev/zram0 is on RAM (zram0): nothing of it is at rest"
    );

    // an unencrypted swap partition fails
    let mut host = Host::new();
    luks2_root(&mut host);
    host.disk("vdb", "254:16", "virtio")
        .partition("vdb", "vdb1", "254:17", 1)
        .swap("/dev/vdb1", "partition");
    let r = result(&host.check(&[]), "crypt-swap-encrypted").clone();
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "swap /dev/vdb1 -> vdb1 (partition) -> vdb (disk, virtio)"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn unencrypted_ebs_data_volume_fails_naming_the_volume_and_describe_volumes() {
    let mut host = Host::new();
    host.nvme(
        "nvme0n1",
        "259:0",
        "Amazon Elastic Block Store",
        "vol0123456789abcdef0",
    )
    .partition("nvme0n1", "nvme0n1p1", "259:1", 1)
    .dm(
        "dm-0",
        "253:0",
        "cryptroot",
        &dm_uuid("LUKS2", ROOT_UUID, "cryptroot"),
        &["nvme0n1p1"],
    )
    .nvme(
        "nvme1n1",
        "259:2",
        "Amazon Elastic Block Store",
        "vol0fedcba9876543210",
    )
    .mount("/", "253:0", "ext4", "/dev/mapper/cryptroot")
    .mount("/data", "259:2", "xfs", "/dev/nvme1n1");
    host.device("nvme0n1p1", &luks_header(FAST_ARGON2, ROOT_UUID));
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "fail", "{r}");
    let ev = r["evidence"].as_array().unwrap();
    assert_eq!(ev[0]["message"], "/data (xfs) -> nvme1n1 (disk, nvme, EBS)");
    assert_eq!(
        ev[0]["found"],
        "not encrypted: nvme1n1 reached without dm-crypt"
    );
    assert_eq!(
        ev[1]["message"],
        "nvme1n1 is EBS volume vol-0fedcba9876543210: EBS encryption is not visible from inside the instance; confirm it with ec2:DescribeVolumes (aws ec2 describe-volumes --volume-ids vol-0fedcba9876543210 --query 'Volumes[0].[Encrypted,KmsKeyId]')"
    );
    // the encrypted root is not a failure, and nothing claims either volume's EBS encryption
    assert_eq!(ev.len(), 2, "{r}");
    let all = serde_json::to_string(&report).unwrap();
    assert!(
        !all.contains("EBS volume is encrypted") && !all.contains("EBS volume is not encrypted")
    );

    // with /data encrypted too, the pass names both volumes for DescribeVolumes
    let mut host2 = Host::new();
    host2
        .nvme(
            "nvme0n1",
            "259:0",
            "Amazon Elastic Block Store",
            "vol0123456789abcdef0",
        )
        .partition("nvme0n1", "nvme0n1p1", "259:1", 1)
        .dm(
            "dm-0",
            "253:0",
            "cryptroot",
            &dm_uuid("LUKS2", ROOT_UUID, "cryptroot"),
            &["nvme0n1p1"],
        )
        .mount("/", "253:0", "ext4", "/dev/mapper/cryptroot");
    host2.device("nvme0n1p1", &luks_header(FAST_ARGON2, ROOT_UUID));
    let r = result(&host2.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "pass", "{r}");
    assert!(
        evidence_text(&r)
            .contains("nvme0n1 is EBS volume vol-0123456789abcdef0: EBS encryption is not visible"),
        "{r}"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn nvme_instance_store_is_hardware_encrypted_and_accepted_by_policy() {
    let mut host = Host::new();
    luks2_root(&mut host);
    host.nvme(
        "nvme1n1",
        "259:0",
        "Amazon EC2 NVMe Instance Storage",
        "AWS1A2B3C4D5E6F7A8B9",
    )
    .mount("/mnt", "259:0", "ext4", "/dev/nvme1n1");
    let report = host.check(&[]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    let text = evidence_text(r);
    assert!(
        text.contains("/mnt (ext4) -> nvme1n1 (disk, nvme, instance store) | found: instance store only (hardware-encrypted, accepted by accept_instance_store)")
            && text.contains("nvme1n1 is an EC2 NVMe instance-store volume: always encrypted by the instance's hardware"),
        "{text}"
    );
    // a site that wants dm-crypt everywhere
    let site = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        site.path(),
        "[baseline]\nname = \"site\"\nversion = \"1\"\nextends = [\"common\"]\n\n[[crypt]]\nid = \"crypt-mounts-encrypted\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"mounts\"\nprefixes = [\"/mnt\"]\nrationale = \"r\"\nremediation = \"m\"\n",
    )
    .unwrap();
    let report = host.check(&["--baseline", site.path().to_str().unwrap()]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["evidence"][0]["found"],
        "not encrypted: nvme1n1 reached without dm-crypt"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn btrfs_resolves_through_its_source_and_every_device() {
    let mut host = Host::new();
    cryptroot_on_vda2(&mut host, "LUKS2")
        // btrfs reports an anonymous device number: the mount source names the device
        .mount("/", "0:33", "btrfs", "/dev/mapper/cryptroot")
        .mount("/home", "0:33", "btrfs", "/dev/mapper/cryptroot");
    host.device("vda2", &luks_header(FAST_ARGON2, ROOT_UUID));
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "/ (btrfs) -> dm-0 (CRYPT-LUKS2, cryptroot) -> vda2 (partition) -> vda (disk, virtio)"
    );
    // a second, unencrypted device added to the filesystem (btrfs device add /dev/vdc /)
    host.disk("vdc", "254:32", "virtio");
    let fsid = "/sys/fs/btrfs/5b3e6f0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/devices";
    host.link(&format!("{fsid}/dm-0"), "/sys/devices/virtual/block/dm-0");
    let vdc = host.sysfs["vdc"].clone();
    host.link(&format!("{fsid}/vdc"), &vdc);
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "/ (btrfs) -> dm-0 (CRYPT-LUKS2, cryptroot) -> vda2 (partition) -> vda (disk, virtio) + vdc (disk, virtio)"
    );
    assert_eq!(
        r["evidence"][0]["found"],
        "not encrypted: vdc reached without dm-crypt"
    );
}

#[test]
fn memory_overlay_and_network_filesystems_are_not_applicable() {
    let mut host = Host::new();
    host.mount("/", "0:2", "rootfs", "rootfs")
        .mount("/home", "0:40", "overlay", "overlay")
        .mount("/srv", "0:41", "tmpfs", "tmpfs")
        .mount(
            "/data",
            "0:42",
            "nfs4",
            "fs-0123.efs.eu-west-1.amazonaws.com:/",
        );
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "not-applicable", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("/: rootfs lives in memory: nothing of it is at rest")
            && reason.contains("/home: overlay: its layers are directories of other filesystems")
            && reason.contains("/srv: tmpfs lives in memory: nothing of it is at rest")
            && reason.contains("/data: nfs4 is a network filesystem"),
        "{reason}"
    );
}

#[test]
fn a_stack_that_cannot_be_read_is_an_error_never_a_pass() {
    let mut host = Host::new();
    host.mount("/", "254:9", "ext4", "/dev/vdz1")
        .mount("/srv", "0:50", "zfs", "tank/srv");
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(
        r["cause"],
        "/ (ext4): the device stack cannot be read: no block device 254:9 in /sys/dev/block; /srv (zfs): device 0:50 is no block device the kernel names, and the mount source `tank/srv` is not one"
    );
    // a dm device whose slave is missing from sysfs
    let mut host = Host::new();
    cryptroot_on_vda2(&mut host, "LUKS2").mount("/", "253:0", "ext4", "/dev/mapper/cryptroot");
    fs::remove_file(host.at("/sys/class/block/vda2")).unwrap();
    let r = result(&host.check(&[]), "crypt-mounts-encrypted").clone();
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .ends_with("no block device named `vda2` in /sys/class/block"),
        "{r}"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn crypttab_entries_must_be_active_mappings() {
    let mut host = Host::new();
    luks2_root(&mut host);
    host.write(
        "/etc/crypttab",
        &format!("# <target> <source> <key> <options>\ncryptroot UUID={ROOT_UUID} none luks\nbackup UUID=1234 /etc/keys/backup luks,noauto\ndata UUID=5678 /etc/keys/data luks\n"),
    );
    let r = result(&host.check(&[]), "crypt-crypttab-active").clone();
    assert_eq!(r["status"], "fail", "{r}");
    let ev = r["evidence"].as_array().unwrap();
    assert_eq!(ev.len(), 1, "only the missing one fails: {r}");
    assert_eq!(ev[0]["path"], "/etc/crypttab");
    assert_eq!(ev[0]["line"], 4);
    assert_eq!(ev[0]["found"], "no active mapping /dev/mapper/data");
    host.write(
        "/etc/crypttab",
        &format!(
            "cryptroot UUID={ROOT_UUID} none luks\nbackup UUID=1234 /etc/keys/backup luks,noauto\n"
        ),
    );
    let r = result(&host.check(&[]), "crypt-crypttab-active").clone();
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        r["evidence"][1]["found"],
        "not active: noauto (opened on demand, not at boot)"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn cipher_policy_rejects_weak_real_headers() {
    let ecb = &[
        "--type",
        "luks2",
        "--pbkdf",
        "pbkdf2",
        "--pbkdf-force-iterations",
        "1000",
        "--cipher",
        "aes-ecb",
        "--key-size",
        "128",
    ];
    let cbc = &[
        "--type",
        "luks1",
        "--pbkdf-force-iterations",
        "200000",
        "--cipher",
        "aes-cbc-essiv:sha256",
        "--key-size",
        "256",
    ];
    let null = edit_luks2(
        &luks_header(FAST_ARGON2, ROOT_UUID),
        "aes-xts-plain64",
        "cipher_null-ecb",
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "LUKS2",
            luks_header(ecb, ROOT_UUID),
            "segment 0: cipher aes-ecb is not accepted; segment 0: 128-bit key, below 256; keyslot 0: pbkdf2 with 1000 iterations, below 100000",
        ),
        ("LUKS1", luks_header(cbc, ROOT_UUID), "segment 0: cipher aes-cbc-essiv:sha256 is not accepted"),
        ("LUKS2", null, "segment 0: cipher cipher_null-ecb is not accepted"),
    ];
    for (kind, header, want) in cases {
        let mut host = Host::new();
        cryptroot_on_vda2(&mut host, kind).mount("/", "253:0", "ext4", "/dev/mapper/cryptroot");
        host.device("vda2", &header);
        let report = host.check(&[]);
        // encrypted in name: the mount rule passes, the cipher rule says why it is weak
        assert_eq!(status(&report, "crypt-mounts-encrypted"), "pass");
        let r = result(&report, "crypt-cipher-strong");
        assert_eq!(r["status"], "fail", "{r}");
        assert_eq!(r["evidence"][0]["found"], want, "{r}");
        assert!(
            r["evidence"][0]["expected"]
                .as_str()
                .unwrap()
                .starts_with("cipher aes-xts-plain64 or aes-xts-plain or serpent-xts-plain64"),
            "{r}"
        );
    }

    // a site that requires Argon2id rejects PBKDF2 key slots
    let mut host = Host::new();
    cryptroot_on_vda2(&mut host, "LUKS2").mount("/", "253:0", "ext4", "/dev/mapper/cryptroot");
    host.device(
        "vda2",
        &luks_header(
            &[
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "500000",
            ],
            ROOT_UUID,
        ),
    );
    assert_eq!(status(&host.check(&[]), "crypt-cipher-strong"), "pass");
    let site = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        site.path(),
        "[baseline]\nname = \"site\"\nversion = \"1\"\nextends = [\"common\"]\n\n[[crypt]]\nid = \"crypt-cipher-strong\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"cipher\"\nciphers = [\"aes-xts-*\"]\nmin_key_bits = 512\nkdfs = [\"argon2id\"]\nrationale = \"r\"\nremediation = \"m\"\n",
    )
    .unwrap();
    let r = result(
        &host.check(&["--baseline", site.path().to_str().unwrap()]),
        "crypt-cipher-strong",
    )
    .clone();
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["evidence"][0]["found"],
        "keyslot 0: KDF pbkdf2 is not accepted"
    );
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn offline_image_and_bake_stage_judge_fstab_and_crypttab() {
    // an image: no /sys, no /proc
    let image = tempfile::tempdir().unwrap();
    let w = |p: &str, t: &str| {
        let p = image.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, t).unwrap();
    };
    w("etc/fstab", "/dev/mapper/cryptroot / ext4 defaults 0 1\nUUID=77aa /data xfs defaults 0 2\n/dev/mapper/cswap none swap sw 0 0\ntmpfs /tmp tmpfs nodev 0 0\n");
    w("etc/crypttab", "cryptroot UUID=33c8 none luks\ncswap /dev/nvme1n1 /dev/urandom swap,cipher=aes-xts-plain64,size=512\n");
    let (_, report, _) = check_json(image.path(), &["--only", "crypt"]);
    assert_eq!(report["host"]["live"], false);
    let r = result(&report, "crypt-mounts-encrypted");
    // / is encrypted by intent, /data names a filesystem by UUID: that cannot be told offline
    assert_eq!(r["status"], "error", "{r}");
    let cause = r["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("/data at boot: UUID=77aa is not named as a dm-crypt mapping; whether it is the filesystem inside one of /etc/crypttab's mappings (cryptroot, cswap) cannot be told without the devices")
            && cause.contains("offline image: the sysroot has no /sys/dev/block and /proc/self/mountinfo, so the live device stack is not applicable"),
        "{cause}"
    );
    let swap = result(&report, "crypt-swap-encrypted");
    assert_eq!(swap["status"], "pass", "{swap}");
    assert_eq!(swap["evidence"][0]["path"], "/etc/fstab");
    assert_eq!(swap["evidence"][0]["line"], 3);
    assert_eq!(
        swap["evidence"][0]["message"],
        "swap /dev/mapper/cswap at boot: /dev/mapper/cswap is opened at boot by /etc/crypttab:2 (cswap /dev/nvme1n1 /dev/urandom swap,cipher=aes-xts-plain64,size=512)"
    );
    for id in ["crypt-cipher-strong", "crypt-crypttab-active"] {
        assert_eq!(
            result(&report, id)["reason"],
            "offline image: the sysroot has no /sys/dev/block and /proc/self/mountinfo, so the live device stack is not applicable",
            "{id}"
        );
    }
    // /data on the encrypted mapping: everything passes by intent
    w(
        "etc/fstab",
        "/dev/mapper/cryptroot / ext4 defaults 0 1\n/dev/mapper/data /data xfs defaults 0 2\n",
    );
    w(
        "etc/crypttab",
        "cryptroot UUID=33c8 none luks\ndata UUID=77aa /etc/keys/data luks\n",
    );
    let (_, report, _) = check_json(image.path(), &["--only", "crypt"]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "pass", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "/ at boot (holding /var, /home, /srv): /dev/mapper/cryptroot is opened at boot by /etc/crypttab:1 (cryptroot UUID=33c8 none luks)"
    );
    assert_eq!(status(&report, "crypt-swap-encrypted"), "not-applicable");
    // a stock image: no crypttab, nothing is unlocked at boot
    fs::remove_file(image.path().join("etc/crypttab")).unwrap();
    w("etc/fstab", "UUID=6f1a / ext4 defaults 0 1\n");
    let (_, report, _) = check_json(image.path(), &["--only", "crypt"]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["evidence"][0]["message"],
        "/ at boot (holding /var, /home, /srv): UUID=6f1a is not a dm-crypt mapping, and /etc/crypttab opens nothing at boot"
    );

    // at bake the live stack of the build instance is not the image's: intent is judged
    let mut host = Host::new();
    luks2_root(&mut host);
    let report = host.check(&["--stage", "bake"]);
    let r = result(&report, "crypt-mounts-encrypted");
    assert_eq!(r["status"], "fail", "{r}");
    assert!(
        evidence_text(r).contains("stage bake: the build instance's volumes are not the ones the image's instances will have"),
        "{r}"
    );
    assert_eq!(status(&report, "crypt-swap-encrypted"), "not-applicable");
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn crypt_reports_validate_against_the_schema_and_explain_works() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut host = Host::new();
    luks2_root(&mut host);
    host.nvme(
        "nvme1n1",
        "259:2",
        "Amazon Elastic Block Store",
        "vol0fedcba9876543210",
    )
    .mount("/data", "259:2", "xfs", "/dev/nvme1n1");
    let report = host.check(&[]);
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    for id in [
        "crypt-mounts-encrypted",
        "crypt-swap-encrypted",
        "crypt-cipher-strong",
        "crypt-crypttab-active",
    ] {
        let (code, stdout, stderr) = run(&["explain", id]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with(id)
                && stdout.contains("family:      crypt (kind crypt)")
                && stdout.contains("Why:")
                && stdout.contains("Fix:")
                && stdout.contains("References:"),
            "{stdout}"
        );
    }
    let (_, stdout, _) = run(&["explain", "crypt-cipher-strong"]);
    assert!(stdout.contains("stages:      boot, run"), "{stdout}");
}

#[test]
fn invalid_crypt_parameters_point_at_file_line_col() {
    let bad = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        bad.path(),
        "[baseline]\nname = \"bad\"\nversion = \"1\"\n\n\
[[crypt]]\nid = \"c1\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"mounts\"\npaths = [\"var\"]\nciphers = [\"aes-xts-plain64\"]\nrationale = \"r\"\nremediation = \"m\"\n\n\
[[crypt]]\nid = \"c2\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"cipher\"\nciphers = [\"aes xts\"]\nkdfs = [\"scrypt\"]\nmin_key_bits = 100\nrationale = \"r\"\nremediation = \"m\"\n\n\
[[crypt]]\nid = \"c3\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"mounts\"\nrationale = \"r\"\nremediation = \"m\"\n",
    )
    .unwrap();
    let path = bad.path().display().to_string();
    let (code, _, stderr) = run(&["baseline", "validate", &path]);
    assert_eq!(code, 2, "{stderr}");
    for want in [
        format!("{path}:10:10: error: `var` must be an absolute, normalised path"),
        format!("{path}:11:11: error: `ciphers` does not apply to check `mounts` (only to cipher)"),
        format!("{path}:20:12: error: `aes xts` is not a dm-crypt cipher spec"),
        format!("{path}:21:9: error: unknown KDF `scrypt`, expected one of argon2id, argon2i, pbkdf2"),
        format!("{path}:22:16: error: `min_key_bits` must be a multiple of 8 from 64 to 4096, found 100"),
        format!("{path}:27:6: error: check `mounts` needs `paths` or `prefixes`"),
    ] {
        assert!(stderr.contains(&want), "missing `{want}` in:\n{stderr}");
    }
    fs::write(
        bad.path(),
        "[baseline]\nname = \"bad\"\nversion = \"1\"\n\n[[crypt]]\nid = \"c4\"\ntitle = \"t\"\nseverity = \"high\"\ncheck = \"disks\"\nrationale = \"r\"\nremediation = \"m\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["baseline", "validate", &path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:9:9: error: unknown variant `disks`, expected one of `mounts`, `swap`, `cipher`, `crypttab`")),
        "{stderr}"
    );
}

// ------------------------------------------------------------------------------------------------
// The header parser on real headers

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn real_headers_parse_as_cryptsetup_dumps_them() {
    let cases: &[&[&str]] = &[
        FAST_ARGON2,
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "argon2i",
            "--pbkdf-memory",
            "64",
            "--pbkdf-force-iterations",
            "5",
            "--key-size",
            "256",
        ],
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--hash",
            "sha512",
            "--sector-size",
            "512",
        ],
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--label",
            "data",
        ],
        &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
        &[
            "--type",
            "luks1",
            "--pbkdf-force-iterations",
            "2000",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--hash",
            "sha1",
        ],
    ];
    for args in cases {
        let header = luks_header(args, ROOT_UUID);
        let h = luks::parse(&header).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let dump = luks_dump(&header);
        let field = |name: &str| -> Vec<String> {
            dump.lines()
                .filter_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
                .collect()
        };
        assert_eq!(h.uuid, ROOT_UUID);
        assert_eq!(field("UUID:"), [ROOT_UUID], "{dump}");
        if h.version == 1 {
            assert_eq!(field("Version:"), ["1"]);
            let cipher = format!("{}-{}", field("Cipher name:")[0], field("Cipher mode:")[0]);
            assert_eq!(h.segments[0].cipher, cipher, "{args:?}");
            assert_eq!(
                format!("{}", h.segments[0].key_bits.unwrap()),
                field("MK bits:")[0]
            );
            assert_eq!(h.hash.as_deref(), Some(field("Hash spec:")[0].as_str()));
            let Kdf::Pbkdf2 { iterations, .. } = &h.keyslots[0].kdf else {
                panic!("LUKS1 is PBKDF2")
            };
            assert_eq!(field("Iterations:")[0], iterations.to_string());
            assert_eq!(h.keyslots.len(), dump.matches(": ENABLED").count());
        } else {
            assert_eq!(field("Version:"), ["2"]);
            assert_eq!(field("cipher:"), [h.segments[0].cipher.clone()], "{dump}");
            assert_eq!(
                field("sector:"),
                [format!("{} [bytes]", h.segments[0].sector_size)]
            );
            assert_eq!(
                field("Key:"),
                [format!("{} bits", h.segments[0].key_bits.unwrap())]
            );
            assert_eq!(field("PBKDF:"), [h.keyslots[0].kdf.name().to_string()]);
            match &h.keyslots[0].kdf {
                Kdf::Pbkdf2 { hash, iterations } => {
                    assert_eq!(field("Iterations:")[0], iterations.to_string());
                    assert_eq!(field("Hash:")[0], *hash);
                }
                Kdf::Argon2i {
                    time,
                    memory_kib,
                    threads,
                }
                | Kdf::Argon2id {
                    time,
                    memory_kib,
                    threads,
                } => {
                    assert_eq!(field("Time cost:"), [time.to_string()]);
                    assert_eq!(field("Memory:"), [memory_kib.to_string()]);
                    assert_eq!(field("Threads:"), [threads.to_string()]);
                }
                other => panic!("{other:?}"),
            }
            let label = field("Label:");
            assert_eq!(h.label.as_deref().unwrap_or("(no label)"), label[0]);
        }
    }
}

/// A small deterministic generator (xorshift64*) so the mutation runs are the same every time.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
#[ignore = "needs tools: cryptsetup luksFormat"]
fn truncated_and_mutated_headers_are_errors_or_the_intact_copy_never_a_panic() {
    // LUKS2: every byte of the primary is under its checksum, so damage there is either refused or
    // recovered from the intact secondary, never parsed into something else
    let v2 = luks_header(FAST_ARGON2, ROOT_UUID);
    let good = luks::parse(&v2).unwrap();
    let size = 16384;
    for len in (0..2 * size)
        .step_by(97)
        .chain([size - 1, size, 2 * size - 1])
    {
        match luks::parse(&v2[..len]) {
            Ok(h) => {
                assert!(len >= size, "{len}: parsed from a truncated primary");
                assert_eq!(h.segments, good.segments);
            }
            Err(e) => assert!(len < 2 * size, "{len}: {e}"),
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut recovered, mut refused) = (0, 0);
    for round in 0..3000 {
        let mut m = v2[..2 * size].to_vec();
        let flips = 1 + rng.below(4);
        let in_secondary_too = round % 5 == 0;
        for _ in 0..flips {
            let at = rng.below(size);
            m[at] ^= 1 << rng.below(8);
        }
        if in_secondary_too {
            let at = size + rng.below(size);
            m[at] ^= 1 << rng.below(8);
        }
        match luks::parse(&m) {
            Ok(h) => {
                // only through the secondary, which must then be intact
                assert!(!in_secondary_too || m[size..] == v2[size..2 * size]);
                assert_eq!(h.segments, good.segments, "round {round}");
                assert_eq!(h.keyslots, good.keyslots, "round {round}");
                if m[..size] != v2[..size] {
                    assert!(
                        h.notes.iter().any(|n| n.contains("secondary copy")),
                        "round {round}"
                    );
                }
                recovered += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        recovered > 0 && refused > 0,
        "{recovered} recovered, {refused} refused"
    );
    // both copies damaged: refused with the primary's reason
    let mut both = v2[..2 * size].to_vec();
    both[5000] ^= 1;
    both[size + 5000] ^= 1;
    assert_eq!(
        luks::parse(&both),
        Err(LuksError::Checksum("sha256".into()))
    );

    // LUKS1 has no checksum: any byte may change, the parser must still never panic, and every
    // truncation short of the header is refused
    let v1 = luks_header(
        &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
        ROOT_UUID,
    );
    for len in 0..luks::LUKS1_LEN {
        assert!(luks::parse(&v1[..len]).is_err(), "{len}");
    }
    let mut ok = 0;
    for _ in 0..5000 {
        let mut m = v1[..4096].to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(luks::LUKS1_LEN);
            m[at] = rng.next() as u8;
        }
        if let Ok(h) = luks::parse(&m) {
            assert_eq!(h.version, 1);
            assert_eq!(h.segments.len(), 1);
            ok += 1;
        }
    }
    assert!(
        ok > 0,
        "some mutations (salts, digests) leave a valid LUKS1 header"
    );
}
