//! Fuzzing every parser of untrusted input, on the stable toolchain: a seeded mutation fuzzer
//! (bit flips, byte and token insertions, deletions, duplications, truncations and splices of two
//! seeds) drives each parser through its public entry point. A target fails when its parser
//! panics or takes longer than [`SLOW`] on one input; the input is saved under
//! `target/fuzz-findings/` for a regression test. Seeds are the fixture trees'
//! files, `tests/fuzz/corpus/<target>/` (taken from a debootstrapped Debian 12) and inputs built
//! here. `cargo test --lib fuzz` runs every target briefly; `EC2_HARDEN_FUZZ_EXECS=N` sets the
//! executions per target for a longer run (docs/testing.md has the figures).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One input taking longer than this is a finding.
const SLOW: Duration = Duration::from_secs(2);
/// Executions per target in the test suite's brief run.
const DEFAULT_EXECS: usize = 1500;

/// xorshift64*: deterministic per target, so a finding reproduces.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let seed = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that matter to the parsers here, inserted whole.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b":",
    b"::",
    b"=",
    b" = ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"'",
    b"\\",
    b"$",
    b"#",
    b";",
    b",",
    b" - ",
    b"\0",
    b"\xff\xfe",
    b"include ",
    b"Include ",
    b"Match all\n",
    b"define ",
    b"$v",
    b"\\040",
    b"\\777",
    b"<",
    b"/>",
    b"</",
    b"&amp;",
    b"-1",
    b"4294967296",
    b"18446744073709551616",
    b"99999999999999999999",
    b"\xe2\x80\xae",
    b"*",
    b"/etc/",
    b"../",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                data.drain(a..b);
            }
            4 if len > 1 => {
                // duplicate a range, sometimes many times (fan-out, long lines)
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = data[a..b].to_vec();
                let times = if rng.below(16) == 0 { 64 } else { 1 };
                for _ in 0..times {
                    data.splice(b..b, chunk.iter().copied());
                }
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[a..b].iter().copied());
                }
            }
            7 => {
                let at = rng.below(len + 1);
                let n = rng.below(16);
                let random: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, random);
            }
            _ => {}
        }
    }
    data
}

/// Executions per target: `EC2_HARDEN_FUZZ_EXECS`, else [`DEFAULT_EXECS`].
fn execs() -> usize {
    std::env::var("EC2_HARDEN_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EXECS)
}

fn findings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings")
}

/// Run `parse` over the seeds and their mutations on a thread of its own; panics and slow inputs
/// are saved and fail the test. Prints the executions made.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, parse: impl Fn(&[u8]) + Send + 'static) {
    assert!(!seeds.is_empty(), "fuzz target {name} has no seed");
    let n = execs();
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let shared = Arc::clone(&current);
    let target = name.to_string();
    let (done, finished) = std::sync::mpsc::channel();
    let start = Instant::now();
    quiet_panics();
    let thread = std::thread::Builder::new().name(format!("fuzz-{name}"));
    let _ = thread.spawn(move || {
        let mut rng = Rng::new(&target);
        let mut findings = Vec::new();
        for i in 0..(seeds.len() + n) {
            let input = if i < seeds.len() {
                seeds[i].clone()
            } else {
                mutate(&mut rng, &seeds)
            };
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = input.clone();
            let t = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| parse(&input)));
            let slow = t.elapsed() > SLOW;
            if result.is_err() || slow {
                let dir = findings_dir();
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("{target}-{i}.bin"));
                let _ = std::fs::write(&file, &input);
                findings.push(format!(
                    "{} on input {} ({} bytes)",
                    if slow { "slow" } else { "panic" },
                    file.display(),
                    input.len()
                ));
            }
        }
        let _ = done.send(findings);
    });
    // a hang must fail the test, not the whole suite: wait with a generous bound
    let limit = SLOW * 4 + Duration::from_millis(20) * (n as u32 + 100);
    match finished.recv_timeout(limit) {
        Ok(findings) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "fuzz {name}: {n} executions in {:.1} s, {} findings",
                    start.elapsed().as_secs_f64(),
                    findings.len()
                );
            }
            assert!(
                findings.is_empty(),
                "fuzz {name}: {} findings, the first: {}",
                findings.len(),
                findings
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Err(_) => {
            let input = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let dir = findings_dir();
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-hang.bin"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "fuzz {name}: no answer within {limit:?}; the input is {}",
                file.display()
            );
        }
    }
}

/// Panics inside a fuzz thread are expected findings, collected and reported by [`fuzz`]: keep
/// the default hook's message for every other thread only.
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let fuzzing = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("fuzz-"));
            if !fuzzing {
                default(info);
            }
        }));
    });
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every fixture-tree file whose in-root path ends with `suffix`, and the committed corpus of
/// `target`.
fn seeds(target: &str, suffixes: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let roots = repo().join("tests/fixtures/roots");
    let mut stack = vec![roots.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(&roots)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if suffixes.iter().any(|s| rel.ends_with(s)) {
                    out.push(std::fs::read(&p).unwrap());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(repo().join("tests/fuzz/corpus").join(target)) {
        for e in entries.flatten() {
            out.push(std::fs::read(e.path()).unwrap());
        }
    }
    out.sort();
    out
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// A tree in a temporary directory that the target writes its input into at `path`.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sysroot: crate::sysroot::Sysroot,
}

impl Tree {
    fn new(files: &[(&str, &[u8])]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for (path, content) in files {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let sysroot = crate::sysroot::Sysroot::open(&root).unwrap();
        Tree {
            _dir: dir,
            root,
            sysroot,
        }
    }
    fn put(&self, path: &str, content: &[u8]) {
        std::fs::write(self.root.join(path.trim_start_matches('/')), content).unwrap();
    }
}

#[test]
fn baseline_toml() {
    let mut s = seeds("baseline_toml", &["never"]);
    for e in std::fs::read_dir(repo().join("tests/fixtures/baselines"))
        .unwrap()
        .flatten()
    {
        s.push(std::fs::read(e.path()).unwrap());
    }
    s.push(std::fs::read(repo().join("baseline/debian-12.toml")).unwrap());
    fuzz("baseline_toml", s, |b| {
        let src = crate::diag::SourceFile::new("fuzz.toml", text(b).into_owned());
        let _ = crate::baseline::Layer::parse(src, "fuzz.toml".into());
    });
}

#[test]
fn sshd_config() {
    let s = seeds(
        "sshd_config",
        &["etc/ssh/sshd_config", "sshd_config.d/60-hardening.conf"],
    );
    let tree = Tree::new(&[
        ("/etc/ssh/sshd_config", b""),
        (
            "/etc/ssh/sshd_config.d/a.conf",
            b"Include /etc/ssh/sshd_config.d/b.conf\nPermitRootLogin no\n",
        ),
        (
            "/etc/ssh/sshd_config.d/b.conf",
            b"Include /etc/ssh/sshd_config\n",
        ),
    ]);
    fuzz("sshd_config", s, move |b| {
        tree.put("/etc/ssh/sshd_config", b);
        let _ = crate::host::sshd::SshdConfig::read(&tree.sysroot);
    });
}

#[test]
fn passwd_shadow_group() {
    let s = seeds(
        "accounts",
        &["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"],
    );
    fuzz("passwd_shadow_group", s, |b| {
        let t = text(b);
        let _ = crate::host::accounts::parse_passwd(&t);
        let _ = crate::host::accounts::parse_shadow(&t);
        let _ = crate::host::accounts::parse_group_ids(&t);
    });
}

#[test]
fn dpkg_status_and_deb822() {
    let s = seeds("dpkg_status", &["var/lib/dpkg/status"]);
    fuzz("dpkg_status_and_deb822", s, |b| {
        let t = text(b);
        let _ = crate::host::packages::dpkg::parse(&t);
        let _ = crate::host::packages::deb822::paragraphs(&t, |_| {});
    });
}

#[test]
fn apt_release() {
    let mut s = seeds("apt_release", &["_InRelease", "_Release"]);
    s.push(b"Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\nCodename: bookworm-security\nDate: Sat, 05 Dec 2026 10:00:00 UTC\nValid-Until: Sat, 12 Dec 2026 10:00:00 UTC\nSHA256:\n 0123 1234 main/binary-amd64/Packages.xz\n".to_vec());
    fuzz("apt_release", s, |b| {
        let t = text(b);
        let _ =
            crate::host::packages::apt::Release::parse("/var/lib/apt/lists/x_InRelease", "x", &t);
        let _ = crate::host::packages::apt::parse_date(&t);
    });
}

#[test]
fn apt_indexes_compressed() {
    use std::io::Write as _;
    let plain = seeds("dpkg_status", &["var/lib/dpkg/status"]).concat();
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(&plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
    let s = vec![lz4.finish().unwrap(), gz.finish().unwrap(), xz];
    const LISTS: &str =
        "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages";
    let tree = Tree::new(&[]);
    std::fs::create_dir_all(
        tree.root
            .join(LISTS.trim_start_matches('/'))
            .parent()
            .unwrap(),
    )
    .unwrap();
    // each seed decompresses to the text it was made from
    for (seed, ext) in s.iter().zip([".lz4", ".gz", ".xz"]) {
        let path = format!("{LISTS}{ext}");
        tree.put(&path, seed);
        assert_eq!(
            crate::host::packages::apt::read_index(&tree.sysroot, &path).unwrap(),
            plain
        );
    }
    fuzz("apt_indexes_compressed", s, move |b| {
        for ext in [".lz4", ".gz", ".xz"] {
            let path = format!("{LISTS}{ext}");
            tree.put(&path, b);
            if let Ok(index) = crate::host::packages::apt::read_index(&tree.sysroot, &path) {
                let _ = crate::host::packages::deb822::paragraphs(&text(&index), |_| {});
            }
        }
    });
}

#[test]
fn versions() {
    let s = vec![
        b"1:2.3.4-5+deb12u1".to_vec(),
        b"2.36-9+deb12u14".to_vec(),
        b"0:1.2.3-4.amzn2023.0.1".to_vec(),
        b"5.14.0-427.13.1.el9_4".to_vec(),
    ];
    fuzz("versions", s, |b| {
        let t = text(b);
        let mut mid = t.len() / 2;
        while !t.is_char_boundary(mid) {
            mid -= 1;
        }
        let (a, c) = t.split_at(mid);
        let _ = crate::host::packages::debversion::DebVersion::parse(&t);
        let _ = crate::host::packages::debversion::compare(a, c);
        let _ = crate::host::packages::rpmversion::compare_evr(a, c);
        let _ = crate::host::packages::rpmversion::rpmvercmp(a, c);
    });
}

#[test]
fn rpm_header() {
    use crate::host::packages::rpmdb::build_header;
    let s = vec![
        build_header(
            &[
                (1000, "bash"),
                (1001, "5.2.15"),
                (1002, "3.amzn2023"),
                (1022, "x86_64"),
            ],
            &[(1008, 1_700_000_000)],
        ),
        build_header(&[(1000, "kernel"), (1001, "6.1.0")], &[]),
    ];
    fuzz("rpm_header", s, |b| {
        let _ = crate::host::packages::rpmdb::parse_header(b);
    });
}

#[test]
fn rpm_databases() {
    use crate::host::packages::rpmdb::build_header;
    // the Berkeley DB seed (tests/fuzz/corpus/rpm_bdb) was written by db5.3_load from two headers;
    // the sqlite seed is written here as rpm 4.16+ lays it out
    let mut s = seeds("rpm_bdb", &["never"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rpmdb.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
            [],
        )
        .unwrap();
        for blob in [
            build_header(
                &[
                    (1000, "bash"),
                    (1001, "5.2.15"),
                    (1002, "3.amzn2023"),
                    (1022, "x86_64"),
                ],
                &[(1008, 1_700_000_000)],
            ),
            build_header(
                &[
                    (1000, "openssl"),
                    (1001, "3.0.8"),
                    (1002, "1.amzn2023"),
                    (1022, "x86_64"),
                ],
                &[],
            ),
        ] {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
                .unwrap();
        }
    }
    s.push(std::fs::read(&db).unwrap());
    let bdb = Tree::new(&[("/var/lib/rpm/Packages", b"")]);
    let sqlite = Tree::new(&[("/var/lib/rpm/rpmdb.sqlite", b"")]);
    // the seeds are real databases: each lists its two packages
    for seed in &s {
        let tree = rpm_tree(&bdb, &sqlite, seed);
        let inv = crate::host::packages::rpmdb::read(&tree.sysroot)
            .unwrap()
            .unwrap();
        assert_eq!(inv.packages.len(), 2, "{inv:?}");
    }
    fuzz("rpm_databases", s, move |b| {
        let tree = rpm_tree(&bdb, &sqlite, b);
        let _ = crate::host::packages::rpmdb::read(&tree.sysroot);
    });
}

#[test]
fn rpm_file_lists() {
    use crate::host::packages::owners::{rpm_header_files, Owners};
    use crate::host::packages::rpmheader::{HeaderBuilder, RawHeader};
    // sudo as rpm lays it out: names, the directory/basename/index triple, modes, digests, owners
    let sudo = HeaderBuilder::new()
        .int32(1116, &[0, 1, 1])
        .int32(5011, &[8])
        .int16(1030, &[0o100440, 0o104111, 0o100755])
        .string(1000, "sudo")
        .string(1001, "1.9.15")
        .string(1002, "1.amzn2023")
        .strings(1035, &["aa", "bb", "cc"])
        .strings(1039, &["root", "root", "root"])
        .strings(1040, &["root", "root", "root"])
        .strings(1117, &["sudoers", "sudo", "sudoreplay"])
        .strings(1118, &["/etc/", "/usr/bin/"])
        .build();
    let s = vec![
        sudo.clone(),
        HeaderBuilder::new().string(1000, "empty").build(),
    ];
    let tree = Tree::new(&[("/usr/bin/sudo", b"sudo"), ("/etc/sudoers", b"x")]);
    std::fs::create_dir_all(tree.root.join("var/lib/rpm")).unwrap();
    let conn = rusqlite::Connection::open(tree.root.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    conn.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [&sudo])
        .unwrap();
    let wanted = vec![b"/usr/bin/sudo".to_vec(), b"/etc/sudoers".to_vec()];
    // the seed is read back as written
    let owners = Owners::lookup(&tree.sysroot, &wanted).unwrap().unwrap();
    assert_eq!(owners.shipped(b"/usr/bin/sudo")[0].mode, Some(0o104111));
    // the lookup through the database, for one input in 16 (a database write per input is slow);
    // the header's file lists on every input
    let runs = std::sync::atomic::AtomicUsize::new(0);
    fuzz("rpm_file_lists", s, move |b| {
        if let Ok(h) = RawHeader::parse(b) {
            for tag in [1030, 1035, 1039, 1040, 1116, 1117, 1118, 5011] {
                let _ = (h.strings(tag), h.int16s(tag), h.int32s(tag), h.int32(tag));
            }
        }
        let _ = rpm_header_files(b, |_| true);
        if runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16 == 0 {
            conn.execute("UPDATE Packages SET blob = ?1 WHERE hnum = 1", [b])
                .unwrap();
            let _ = Owners::lookup(&tree.sysroot, &wanted);
        }
    });
}

#[test]
fn dpkg_file_records() {
    use crate::host::packages::dpkg_files::{list_paths, parse_md5sums, parse_statoverride};
    use crate::host::packages::owners::Owners;
    let mut s = seeds(
        "dpkg_file_records",
        &[".md5sums", ".list", "var/lib/dpkg/statoverride"],
    );
    s.push(b"bf3f1799b2782402b9bbe1d16fba90e5  bin/su\na00cd433005b1662c9a07d4e1cebfb89  sbin/unix_chkpwd\n".to_vec());
    s.push(b"root crontab 2755 /usr/bin/crontab\n_chrony _chrony 750 /var/lib/chrony\n#0 #42 4750 /usr/bin/su\n".to_vec());
    s.push(b"/.\n/bin\n/bin/su\n/usr/share/man/man1/su.1.gz\n".to_vec());
    const LIST: &str = "/var/lib/dpkg/info/util-linux.list";
    const SUMS: &str = "/var/lib/dpkg/info/util-linux.md5sums";
    const OVERRIDES: &str = "/var/lib/dpkg/statoverride";
    let tree = Tree::new(&[
        ("/usr/bin/su", b"su"),
        ("/var/lib/dpkg/status", b""),
        (LIST, b""),
        (SUMS, b""),
        (OVERRIDES, b""),
    ]);
    std::os::unix::fs::symlink("usr/bin", tree.root.join("bin")).unwrap();
    let wanted = vec![b"/usr/bin/su".to_vec()];
    // the parsers on every input; the lookup through the tree for one input in 8, as each of the
    // database's files in turn
    let runs = std::sync::atomic::AtomicUsize::new(0);
    fuzz("dpkg_file_records", s, move |b| {
        let _ = parse_md5sums(b);
        let _ = parse_statoverride(b);
        let _ = list_paths(b).count();
        let run = runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if run % 8 == 0 {
            let i = run / 8 % 3;
            let path = [LIST, SUMS, OVERRIDES][i];
            tree.put(path, b);
            let _ = Owners::lookup(&tree.sysroot, &wanted);
            tree.put(path, if i == 0 { b"/bin/su\n" } else { b"" });
        }
    });
}

/// The tree of the rpm database `content` is (sqlite or Berkeley DB), with it in place.
fn rpm_tree<'a>(bdb: &'a Tree, sqlite: &'a Tree, content: &[u8]) -> &'a Tree {
    let (tree, path) = if content.starts_with(b"SQLite format 3") {
        (sqlite, "/var/lib/rpm/rpmdb.sqlite")
    } else {
        (bdb, "/var/lib/rpm/Packages")
    };
    tree.put(path, content);
    tree
}

#[test]
fn repodata_and_updateinfo() {
    let s = vec![
        br#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision><data type="updateinfo"><location href="repodata/abc-updateinfo.xml.gz"/><timestamp>1700000000</timestamp></data><data type="primary"><location href="repodata/p.xml.gz"/></data></repomd>"#.to_vec(),
        br#"<?xml version="1.0"?><updates><update type="security" status="stable"><id>ALAS2023-2026-001</id><severity>Important</severity><issued date="2026-01-01 00:00:00"/><references><reference type="cve" id="CVE-2026-0001"/></references><pkglist><collection><package name="openssl" epoch="1" version="3.0.8" release="1.amzn2023" arch="x86_64"/></collection></pkglist></update></updates>"#.to_vec(),
    ];
    fuzz("repodata_and_updateinfo", s, |b| {
        let t = text(b);
        let _ = crate::host::packages::repodata::parse_repomd("repomd.xml", &t);
        let _ = crate::host::packages::repodata::parse_updateinfo("updateinfo.xml", &t);
    });
}

/// A LUKS2 header around `json`, with its checksum, as cryptsetup lays it out.
fn luks2_header(json: &str) -> Vec<u8> {
    let mut b = vec![0u8; 16384];
    b[..6].copy_from_slice(crate::host::storage::luks::MAGIC);
    b[6..8].copy_from_slice(&2u16.to_be_bytes());
    b[8..16].copy_from_slice(&16384u64.to_be_bytes());
    b[72..78].copy_from_slice(b"sha256");
    b[168..204].copy_from_slice(b"0b7ab12c-2ea4-4b2a-9cf5-1b3d1c2f9a10");
    b[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
    reseal(&mut b);
    b
}

/// Recompute a LUKS2 header's checksum, so mutations reach the JSON parser.
fn reseal(b: &mut [u8]) {
    use sha2::Digest as _;
    if b.len() < 16384 {
        return;
    }
    b[448..512].fill(0);
    let sum = sha2::Sha256::digest(&b[..16384]);
    b[448..480].copy_from_slice(&sum);
}

/// A LUKS1 header (the fields cryptsetup writes; key slots empty but the first).
fn luks1_header() -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[..6].copy_from_slice(crate::host::storage::luks::MAGIC);
    b[6..8].copy_from_slice(&1u16.to_be_bytes());
    b[8..11].copy_from_slice(b"aes");
    b[40..51].copy_from_slice(b"xts-plain64");
    b[72..78].copy_from_slice(b"sha256");
    b[104..108].copy_from_slice(&4096u32.to_be_bytes());
    b[108..112].copy_from_slice(&64u32.to_be_bytes());
    b[164..168].copy_from_slice(&100_000u32.to_be_bytes());
    b[168..204].copy_from_slice(b"0b7ab12c-2ea4-4b2a-9cf5-1b3d1c2f9a10");
    b[208..212].copy_from_slice(&0x00ac_71f3u32.to_be_bytes());
    b[212..216].copy_from_slice(&1_000_000u32.to_be_bytes());
    b
}

#[test]
fn luks_headers() {
    let s = vec![
        luks1_header(),
        luks2_header(
            r#"{"keyslots":{"0":{"type":"luks2","key_size":64,"kdf":{"type":"argon2id","time":4,"memory":1048576,"cpus":4,"salt":"x"}}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","encryption":"aes-xts-plain64","sector_size":4096}},"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"]}},"config":{}}"#,
        ),
    ];
    fuzz("luks_headers", s, |b| {
        let mut b = b.to_vec();
        let _ = crate::host::storage::luks::parse(&b);
        let _ = crate::host::storage::luks::wanted_len(&b);
        reseal(&mut b);
        let _ = crate::host::storage::luks::parse(&b);
    });
}

#[test]
fn mount_tables() {
    let mut s = seeds(
        "mount_tables",
        &[
            "etc/fstab",
            "etc/crypttab",
            "proc/self/mountinfo",
            "proc/swaps",
        ],
    );
    s.push(b"22 1 0:21 / /proc rw,nosuid - proc proc rw\n40 1 8:1 / /srv/my\\040data rw - ext4 /dev/sda1 rw\n".to_vec());
    s.push(b"Filename\tType\tSize\tUsed\tPriority\n/dev/dm-1 partition 1048572 0 -2\n".to_vec());
    fuzz("mount_tables", s, |b| {
        let t = text(b);
        let _ = crate::host::storage::tables::parse_mountinfo(&t, "/mnt/ami");
        let _ = crate::host::mounts::from_mountinfo(&t, "/tmp", "");
        let _ = crate::host::mounts::from_fstab(&t, "/tmp");
        let _ = crate::host::storage::tables::parse_fstab(&t);
        let _ = crate::host::storage::tables::parse_crypttab(&t);
        let _ = crate::host::storage::tables::parse_swaps(&t);
        let _ = crate::host::storage::tables::lvm_backup_pvs(&t);
    });
}

#[test]
fn netfilter() {
    let mut s = seeds(
        "netfilter",
        &[
            "etc/nftables.conf",
            "etc/iptables/rules.v4",
            "etc/sysconfig/iptables",
            "before.rules",
        ],
    );
    s.push(br#"{"nftables":[{"metainfo":{"version":"1.0.6","json_schema_version":1}},{"table":{"family":"inet","name":"f","handle":1}},{"chain":{"family":"inet","table":"f","name":"o","handle":1,"type":"filter","hook":"output","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"f","chain":"o","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"169.254.169.254"}},{"match":{"op":"!=","left":{"meta":{"key":"skuid"}},"right":0}},{"drop":null}]}}]}"#.to_vec());
    s.push(b"*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j DROP\nCOMMIT\n".to_vec());
    fuzz("netfilter", s, |b| {
        use crate::host::netfilter::{parse_iptables_save, parse_nft_conf, parse_nft_json};
        let t = text(b);
        let _ = parse_nft_json(&t);
        let _ = parse_iptables_save(&t, false, "rules.v4");
        let again = t.clone().into_owned();
        let mut include = move |_: &str| Ok(vec![("/etc/inc.nft".to_string(), again.clone())]);
        let _ = parse_nft_conf(&t, "/etc/nftables.conf", &mut include);
    });
}

#[test]
fn firewalld_and_ufw() {
    let mut s = seeds(
        "firewalld_and_ufw",
        &[
            "firewalld/direct.xml",
            "ufw/before.rules",
            "etc/default/ufw",
        ],
    );
    s.push(b"<?xml version=\"1.0\"?><direct><rule ipv=\"ipv4\" table=\"filter\" chain=\"OUTPUT\" priority=\"0\">-d 169.254.169.254 -m owner ! --uid-owner 0 -j DROP</rule><passthrough ipv=\"ipv4\">-A INPUT -j DROP</passthrough></direct>".to_vec());
    let tree = Tree::new(&[
        ("/etc/firewalld/firewalld.conf", b"DefaultZone=public\n"),
        ("/etc/firewalld/direct.xml", b""),
        ("/etc/ufw/ufw.conf", b"ENABLED=yes\n"),
        ("/etc/default/ufw", b"DEFAULT_INPUT_POLICY=\"DROP\"\n"),
        ("/etc/ufw/before.rules", b""),
    ]);
    fuzz("firewalld_and_ufw", s, move |b| {
        tree.put("/etc/firewalld/direct.xml", b);
        tree.put("/etc/ufw/before.rules", b);
        let mut rs = crate::host::netfilter::Ruleset::default();
        let _ = crate::host::netfilter::firewalld::read_firewalld(&tree.sysroot, &mut rs);
        let _ = crate::host::netfilter::ufw::read_ufw(&tree.sysroot, &mut rs);
    });
}

#[test]
fn fim_manifest() {
    let mut s = seeds("fim_manifest", &["never"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("root");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::os::unix::fs::symlink("hosts", tree.join("etc/hosts.link")).unwrap();
    let sysroot = crate::sysroot::Sysroot::open(&tree).unwrap();
    let manifest = dir.path().join("manifest");
    let policy = crate::fim::FimPolicy::with_includes(&["/etc".to_string()]);
    crate::fim::init(
        &sysroot,
        &crate::fim::InitOptions {
            manifest: Some(&manifest),
            baseline: Some("fuzz"),
            policy: &policy,
        },
    )
    .unwrap();
    let sealed = std::fs::read(&manifest).unwrap();
    s.push(sealed.clone());
    // the manifest is gzip: also fuzz its decompressed lines, one entry per line
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(&sealed[..]),
        &mut plain,
    )
    .unwrap();
    s.push(plain);
    let scratch = dir.path().join("fuzzed");
    fuzz("fim_manifest", s, move |b| {
        for line in text(b).lines() {
            let _ = crate::fim::manifest::parse_entry(line);
        }
        std::fs::write(&scratch, b).unwrap();
        if let Ok(mut reader) = crate::fim::manifest::Reader::open(&scratch) {
            while let Ok(Some(_)) = reader.next_entry() {}
        }
        let _ = crate::fim::manifest::validate(&scratch, None);
    });
}

#[test]
fn spool_entries() {
    let target = crate::ssm::Target {
        instance_id: "i-0123456789abcdef0".into(),
        region: Some("eu-west-1".into()),
        command_id: None,
    };
    let (env, _) = crate::ssm::envelope(&crate::report::testutil::sample_report(), &target);
    let s = vec![serde_json::to_vec_pretty(&env).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let spool = crate::ssm::spool::Spool::open(&dir.path().join("spool")).unwrap();
    let entry = crate::ssm::spool::Entry {
        path: spool.dir().join("00000000000000000001-0000000001.json"),
        key: "00000000000000000001-0000000001".into(),
    };
    fuzz("spool_entries", s, move |b| {
        std::fs::write(&entry.path, b).unwrap();
        let _ = spool.load(&entry);
        std::fs::write(spool.dir().join(".last-delivered"), b).unwrap();
        let _ = spool.last_delivered();
    });
}

#[test]
fn key_value_files() {
    let s = seeds(
        "key_value_files",
        &[
            "etc/os-release",
            "usr/lib/os-release",
            "modprobe.d/cis.conf",
            ".conf",
            "etc/login.defs",
        ],
    );
    fuzz("key_value_files", s, |b| {
        use crate::host::keyvalue::{parse_assignments, LineFormat};
        let t = text(b);
        let _ = crate::host::os_release::OsRelease::parse(&t);
        crate::host::modprobe::ModprobeConfig::default().parse("/etc/modprobe.d/x.conf", &t);
        crate::host::sysctl::Persisted::default().parse("/etc/sysctl.d/x.conf", &t);
        let _ = parse_assignments(&t, LineFormat::Space, None, None);
        let _ = parse_assignments(&t, LineFormat::Equals, Some("main"), None);
    });
}

#[test]
fn systemd_units_and_credentials() {
    let s = seeds(
        "systemd_units",
        &[".service", "etc/environment", "etc/default/docker"],
    );
    let tree = Tree::new(&[
        ("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
        ("/usr/lib/systemd/system/app.service", b""),
        ("/usr/lib/systemd/system/tmp.mount", b""),
        ("/etc/environment", b""),
    ]);
    std::fs::create_dir_all(tree.root.join("etc/systemd/system/local-fs.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/tmp.mount",
        tree.root
            .join("etc/systemd/system/local-fs.target.wants/tmp.mount"),
    )
    .unwrap();
    fuzz("systemd_units_and_credentials", s, move |b| {
        tree.put("/usr/lib/systemd/system/app.service", b);
        tree.put("/usr/lib/systemd/system/tmp.mount", b);
        tree.put("/etc/environment", b);
        let units = crate::host::systemd::UnitIndex::read(&tree.sysroot);
        let _ = crate::host::mounts::at_boot(&tree.sysroot, &units, "/tmp");
        let _ = crate::host::netfilter::boot::nft_conf_path(&tree.sysroot, &units);
        let _ = crate::host::credentials::CredentialScan::run(&tree.sysroot, &units, &[]);
    });
}

#[test]
fn imds_answers() {
    let s = vec![
        br#"{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"eu-west-1a","imageId":"ami-0abcdef1234567890","instanceId":"i-0123456789abcdef0","instanceType":"t3.micro","privateIp":"10.0.0.1","region":"eu-west-1","version":"2017-09-30"}"#.to_vec(),
        br#"{"Code":"Success","LastUpdated":"2026-12-05T10:00:00Z","InstanceProfileArn":"arn:aws:iam::123456789012:instance-profile/web","InstanceProfileId":"AIPAEXAMPLE"}"#.to_vec(),
    ];
    fuzz("imds_answers", s, |b| {
        let t = text(b);
        let _ = crate::host::imds::facts::parse_identity("http://169.254.169.254", &t);
        let _ = crate::host::imds::facts::parse_profile("http://169.254.169.254", &t);
    });
}

#[test]
fn the_mutator_reaches_every_kind_of_change() {
    let seeds = vec![b"abcdef\n".to_vec(), b"xyz".to_vec()];
    let mut rng = Rng::new("self-test");
    let outs: Vec<Vec<u8>> = (0..500).map(|_| mutate(&mut rng, &seeds)).collect();
    assert!(
        outs.iter().any(|o| o.len() > 100),
        "duplications grow inputs"
    );
    assert!(
        outs.iter().any(|o| o.is_empty() || o.len() < 3),
        "truncations shrink them"
    );
    assert!(
        outs.iter().any(|o| std::str::from_utf8(o).is_err()),
        "bytes become invalid UTF-8"
    );
    // deterministic: the same target name replays the same inputs
    let mut again = Rng::new("self-test");
    assert_eq!(mutate(&mut again, &seeds), outs[0]);
}
