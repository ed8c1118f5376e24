//! Package database records for fixture trees: the `package` op records files of the tree, as they
//! are when the op runs (content, mode, owner), as an installed package's, the way dpkg or rpm lays
//! them out, so the rules that ask the package database (files-suid-sgid-allowlist) have one to
//! ask. dpkg: `/var/lib/dpkg/info/NAME.list` and `NAME.md5sums`; rpm: a row of
//! `/var/lib/rpm/rpmdb.sqlite` holding a header with the file list (version `0`, release
//! `fixture`: the fixtures do not claim real package versions).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ec2_harden::host::packages::rpmheader::HeaderBuilder;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of `id` in the tree's `/etc/passwd` or `/etc/group`, else the number.
fn name_of(root: &Path, file: &str, id: u32) -> String {
    fs::read_to_string(root.join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse() == Ok(id)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| id.to_string())
}

/// Records `paths` of the tree at `root` as files of package `name` in a `dpkg` or `rpm` database.
pub fn record(root: &Path, format: &str, name: &str, paths: &[&str]) {
    match format {
        "dpkg" => dpkg(root, name, paths),
        "rpm" => rpm(root, name, paths),
        other => panic!("package op: unknown database `{other}` (dpkg or rpm)"),
    }
}

fn dpkg(root: &Path, name: &str, paths: &[&str]) {
    let info = root.join("var/lib/dpkg/info");
    fs::create_dir_all(&info).unwrap();
    let append = |file: &str, text: String| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(info.join(file))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    for path in paths {
        use md5::Digest as _;
        let content = fs::read(root.join(path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("package op: {path}: {e}"));
        append(&format!("{name}.list"), format!("{path}\n"));
        append(
            &format!("{name}.md5sums"),
            format!(
                "{}  {}\n",
                hex(&md5::Md5::digest(&content)),
                path.trim_start_matches('/')
            ),
        );
    }
}

fn rpm(root: &Path, name: &str, paths: &[&str]) {
    use sha2::Digest as _;
    let (mut dirs, mut basenames, mut dirindexes) = (Vec::<String>::new(), Vec::new(), Vec::new());
    let (mut modes, mut digests, mut users, mut groups) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for path in paths {
        let file = root.join(path.trim_start_matches('/'));
        let md = fs::symlink_metadata(&file).unwrap_or_else(|e| panic!("package op: {path}: {e}"));
        let (dir, base) = path.rsplit_once('/').expect("an absolute path");
        let dir = format!("{dir}/");
        let index = dirs.iter().position(|d| *d == dir).unwrap_or_else(|| {
            dirs.push(dir);
            dirs.len() - 1
        });
        basenames.push(base.to_string());
        dirindexes.push(index as u32);
        modes.push(md.mode() as u16);
        digests.push(hex(&sha2::Sha256::digest(fs::read(&file).unwrap())));
        users.push(name_of(root, "etc/passwd", md.uid()));
        groups.push(name_of(root, "etc/group", md.gid()));
    }
    let blob = HeaderBuilder::new()
        .int32(1008, &[1_700_000_000])
        .int32(1116, &dirindexes)
        .int32(5011, &[8])
        .int16(1030, &modes)
        .string(1000, name)
        .string(1001, "0")
        .string(1002, "fixture")
        .string(1022, "x86_64")
        .strings(1035, &digests)
        .strings(1039, &users)
        .strings(1040, &groups)
        .strings(1117, &basenames)
        .strings(1118, &dirs)
        .build();
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "CREATE TABLE IF NOT EXISTS Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
        .unwrap();
}
