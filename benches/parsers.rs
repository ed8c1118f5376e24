//! Microbenchmarks of the hot parsers (criterion): the FIM manifest reader (gzip, per-line parse,
//! running digest), the dpkg status parser and sshd's effective configuration (with its drop-in
//! directory). Inputs are generated here, deterministically, so anyone gets the same workload:
//! `cargo bench --bench parsers`. `cargo test --all-targets` only compiles this file; criterion runs
//! it once per benchmark under `cargo test --benches`.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ec2_harden::fim::manifest::{self, Header, Reader, Writer};
use ec2_harden::fim::policy::FimPolicy;
use ec2_harden::sysroot::Sysroot;

/// A manifest line for file `i` of a system-like tree: regular files with a digest, every tenth
/// a directory, every 25th a symlink.
fn manifest_line(i: u64, out: &mut String) {
    let dir = [
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "usr/share/perl5/Text",
        "etc/ssh",
    ][i as usize % 4];
    if i % 10 == 0 {
        let _ = write!(
            out,
            "/{dir}/d{i}\tdir\t0755\t0\t0\t4096\t1700000000\t-\t-\t-\t-"
        );
    } else if i % 25 == 0 {
        let _ = write!(
            out,
            "/{dir}/l{i}\tsymlink\t0777\t0\t0\t12\t1700000000\t-\t-\tlibfoo.so.{i}\t-"
        );
    } else {
        let _ = write!(
            out,
            "/{dir}/file-{i}.so\tfile\t0644\t0\t0\t{}\t{}\t{:064x}\t-\t-\t-",
            i * 37 % 100_000,
            1_700_000_000 + i,
            u128::from(i) * 0x9e37_79b9_7f4a_7c15
        );
    }
}

fn bench_manifest(c: &mut Criterion) {
    const ENTRIES: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest");
    let mut entries = Vec::with_capacity(ENTRIES as usize);
    let mut line = String::new();
    for i in 0..ENTRIES {
        line.clear();
        manifest_line(i, &mut line);
        entries.push(manifest::parse_entry(&line).expect("a valid manifest line"));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let header = Header::new(
        Path::new("/"),
        Some("bench"),
        FimPolicy { paths: Vec::new() },
    );
    let mut writer = Writer::create(&path, &header).unwrap();
    for e in &entries {
        writer.write_entry(e).unwrap();
    }
    writer.commit().unwrap();

    let mut group = c.benchmark_group("manifest");
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("read 20k entries (gunzip, parse, digest)", |b| {
        b.iter(|| {
            let mut reader = Reader::open(&path).unwrap();
            let mut n = 0u64;
            while let Some(e) = reader.next_entry().unwrap() {
                n += e.size;
            }
            n
        })
    });
    let mut lines = String::new();
    for e in &entries {
        manifest::entry_line(e, &mut lines);
    }
    group.bench_function("parse_entry x20k", |b| {
        b.iter(|| {
            lines
                .lines()
                .map(|l| manifest::parse_entry(l).unwrap().mode)
                .sum::<u32>()
        })
    });
    group.finish();
}

/// A dpkg status file of `n` installed packages, fields as dpkg writes them.
fn dpkg_status(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let _ = write!(
            s,
            "Package: pkg{i}\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
             Installed-Size: {}\nMaintainer: Debian Maintainers <pkg{i}@packages.debian.org>\n\
             Architecture: {}\nMulti-Arch: same\nSource: src{}\nVersion: {}.{}.{}-{}+deb12u1\n\
             Depends: libc6 (>= 2.34), libgcc-s1 (>= 3.0), pkg{} (= 1.0)\n\
             Description: package number {i}\n a longer description line\n .\n another paragraph\n\
             Homepage: https://example.org/pkg{i}\n\n",
            i * 13 % 9000,
            if i % 3 == 0 { "all" } else { "amd64" },
            i / 3,
            i % 7,
            i % 13,
            i % 31,
            i % 5,
            (i + 1) % n
        );
    }
    s
}

fn bench_dpkg(c: &mut Criterion) {
    const PACKAGES: usize = 2_000;
    let text = dpkg_status(PACKAGES);
    let mut group = c.benchmark_group("dpkg status");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse 2000 packages", |b| {
        b.iter(|| {
            ec2_harden::host::packages::dpkg::parse(&text)
                .packages
                .len()
        })
    });
    group.finish();
}

fn bench_sshd(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let ssh = root.path().join("etc/ssh");
    std::fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/roots/debian-12-default/etc/ssh/sshd_config"),
        ssh.join("sshd_config"),
    )
    .unwrap();
    // Debian's Include line reads the drop-ins first; ten of them, as a fleet's tooling leaves
    for i in 0..10 {
        std::fs::write(
            ssh.join(format!("sshd_config.d/{i:02}-site.conf")),
            format!(
                "# drop-in {i}\nClientAliveInterval {}\nMaxAuthTries {}\nCiphers aes256-gcm@openssh.com,aes128-gcm@openssh.com\n\
                 Match User deploy{i}\n    PasswordAuthentication no\n",
                300 + i,
                3 + i % 3
            ),
        )
        .unwrap();
    }
    let sysroot = Sysroot::open(root.path()).unwrap();
    let mut group = c.benchmark_group("sshd_config");
    group.bench_function("effective config (main + 10 drop-ins)", |b| {
        b.iter(|| {
            ec2_harden::host::sshd::SshdConfig::read(&sysroot)
                .unwrap()
                .settings
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_manifest, bench_dpkg, bench_sshd);
criterion_main!(benches);
