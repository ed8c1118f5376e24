//! Which installed package ships a file, and what the package database recorded about it, looked
//! up for a handful of paths (the setuid/setgid files a tree scan found), never for the whole tree.
//!
//! * dpkg ([`super::dpkg_files`]): the `.list` files say which package installed a path, its
//!   `.md5sums` the MD5 of the content it shipped, and `statoverride` the owner, group and mode
//!   imposed on a path. dpkg records no modes.
//! * rpm ([`super::rpmdb`]): each header lists its files (BASENAMES, DIRNAMES, DIRINDEXES) with
//!   their mode (FILEMODES), owner and group names (FILEUSERNAME, FILEGROUPNAME) and content digest
//!   (FILEDIGESTS, in the algorithm FILEDIGESTALGO names; MD5 when a header has no such tag).
//!
//! A database may spell a path through a symlinked directory (a usrmerged Debian lists `/bin/su`
//! while the file is found at `/usr/bin/su`, `/bin` being a link to `usr/bin`). A listed path is
//! the wanted file when it has the same name and its directory, resolved inside the root, is the
//! wanted file's directory (the same device and inode): the same directory entry, whatever the
//! spelling. Only listed paths whose last component is a wanted name are resolved, so the whole
//! index is read once and stays small.
//!
//! [`digest_file`] hashes a file's content through the sysroot (regular files only, at most
//! [`MAX_DIGEST_BYTES`]) and returns the metadata of the very file it read.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::dpkg_files::{self, StatOverride};
use super::rpmheader::RawHeader;
use super::{rpmdb, PackageError, PackageFormat};
use crate::sysroot::{Sysroot, SysrootError};

/// The largest file [`digest_file`] hashes (a setuid program is a few MiB at most).
pub const MAX_DIGEST_BYTES: u64 = 256 << 20;
/// The largest `.list`, `.md5sums` or statoverride file read (the biggest packages list a few MiB).
const MAX_INFO_BYTES: u64 = 64 << 20;

const TAG_NAME: u32 = 1000;
const TAG_FILEMODES: u32 = 1030;
const TAG_FILEDIGESTS: u32 = 1035;
const TAG_FILEUSERNAME: u32 = 1039;
const TAG_FILEGROUPNAME: u32 = 1040;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_FILEDIGESTALGO: u32 = 5011;

/// A digest algorithm a package database records file contents with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgo {
    /// rpm's `FILEDIGESTALGO` (OpenPGP hash algorithm numbers).
    pub fn from_rpm(id: u32) -> Option<DigestAlgo> {
        Some(match id {
            1 => DigestAlgo::Md5,
            2 => DigestAlgo::Sha1,
            8 => DigestAlgo::Sha256,
            9 => DigestAlgo::Sha384,
            10 => DigestAlgo::Sha512,
            11 => DigestAlgo::Sha224,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DigestAlgo::Md5 => "md5",
            DigestAlgo::Sha1 => "sha1",
            DigestAlgo::Sha224 => "sha224",
            DigestAlgo::Sha256 => "sha256",
            DigestAlgo::Sha384 => "sha384",
            DigestAlgo::Sha512 => "sha512",
        }
    }
}

/// A recorded content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algo: DigestAlgo,
    /// Lowercase hex.
    pub hex: String,
}

/// Why a package's record of a file carries no digest to compare with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoDigest {
    /// The package has no md5sums entry (or file) for it.
    NotRecorded,
    /// rpm names an algorithm not known here.
    UnknownAlgorithm(u32),
}

/// What one installed package recorded about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    /// `exim4-daemon-light`, `libutempter0:amd64`, `sudo`.
    pub package: String,
    /// The path as the database spells it (`/bin/su` for the file found at `/usr/bin/su`).
    pub listed_as: String,
    pub digest: Result<Digest, NoDigest>,
    /// rpm: the recorded mode, file type bits included. dpkg records none.
    pub mode: Option<u32>,
    /// rpm: the recorded owner and group names.
    pub user: Option<String>,
    pub group: Option<String>,
}

/// A statoverride entry that applies to a wanted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub entry: StatOverride,
    pub listed_as: String,
}

/// What the sysroot's package database says about the wanted files.
#[derive(Debug, Default)]
pub struct Owners {
    pub format: Option<PackageFormat>,
    /// What was read: dpkg's info directory or the rpm database file.
    pub database: String,
    shipped: HashMap<Vec<u8>, Vec<Shipped>>,
    overrides: HashMap<Vec<u8>, Override>,
    /// Damage met while reading, each naming its file (and line or record); the rest was used.
    pub problems: Vec<String>,
}

impl Owners {
    /// Looks up the wanted in-root paths (regular files as a tree walk found them, with no symlink
    /// on the way) in the sysroot's package database: dpkg's when it has `/var/lib/dpkg`, else
    /// rpm's. `Ok(None)` when it has neither.
    pub fn lookup(sysroot: &Sysroot, wanted: &[Vec<u8>]) -> Result<Option<Owners>, PackageError> {
        let dpkg = ["/var/lib/dpkg/status", dpkg_files::INFO_DIR]
            .iter()
            .any(|p| sysroot.exists(p));
        let mut names = Spellings::new(sysroot, wanted);
        if dpkg {
            let mut owners = Owners {
                format: Some(PackageFormat::Deb),
                database: dpkg_files::INFO_DIR.to_string(),
                ..Owners::default()
            };
            owners.read_dpkg(sysroot, &mut names)?;
            return Ok(Some(owners));
        }
        let Some(path) = rpmdb::locate(sysroot) else {
            return Ok(None);
        };
        let mut owners = Owners {
            format: Some(PackageFormat::Rpm),
            database: path.to_string(),
            ..Owners::default()
        };
        let mut damaged = Vec::new();
        let problems = rpmdb::visit_headers(sysroot, path, &mut |rec| {
            if let Err(e) = owners.add_rpm_header(rec.blob, &mut names) {
                damaged.push(format!("{path}: {}: {e}", rec.what));
            }
        })?;
        owners.problems.extend(problems);
        owners.problems.extend(damaged);
        Ok(Some(owners))
    }

    /// The packages that ship `path` (one, or several sharing it).
    pub fn shipped(&self, path: &[u8]) -> &[Shipped] {
        self.shipped.get(path).map_or(&[], Vec::as_slice)
    }

    /// The statoverride entry for `path`, if any (dpkg).
    pub fn statoverride(&self, path: &[u8]) -> Option<&Override> {
        self.overrides.get(path)
    }

    fn read_dpkg(
        &mut self,
        sysroot: &Sysroot,
        names: &mut Spellings<'_>,
    ) -> Result<(), PackageError> {
        let info = dpkg_files::INFO_DIR;
        let entries = match sysroot.read_dir(info) {
            Ok(entries) => entries,
            Err(e) if e.is_not_found() => {
                self.problems
                    .push(format!("{info}: missing: dpkg lists no package's files"));
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        // package -> (spelling in its list, the wanted path it names)
        let mut found: BTreeMap<Vec<u8>, Vec<Named>> = BTreeMap::new();
        for entry in &entries {
            let Some(package) = dpkg_files::package_of(entry.name.as_bytes(), "list") else {
                continue;
            };
            let list = format!("{info}/{}", entry.name.to_string_lossy());
            let text = match sysroot.read_limited(Path::new(info).join(&entry.name), MAX_INFO_BYTES)
            {
                Ok(text) => text,
                Err(e) => {
                    self.problems.push(format!("{list}: {e}"));
                    continue;
                }
            };
            for listed in dpkg_files::list_paths(&text) {
                for path in names.resolve(listed) {
                    found.entry(package.to_vec()).or_default().push(Named {
                        listed: listed.to_vec(),
                        path,
                    });
                }
            }
        }
        for (package, files) in found {
            let name = String::from_utf8_lossy(&package).into_owned();
            let md5sums =
                Path::new(info).join(OsStr::from_bytes(&[&package[..], b".md5sums"].concat()));
            let sums = match sysroot.read_limited(&md5sums, MAX_INFO_BYTES) {
                Ok(text) => {
                    let (lines, bad) = dpkg_files::parse_md5sums(&text);
                    self.problems.extend(
                        bad.into_iter()
                            .map(|(line, why)| format!("{}:{line}: {why}", md5sums.display())),
                    );
                    lines
                }
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => {
                    self.problems.push(e.to_string());
                    Vec::new()
                }
            };
            for Named { listed, path } in files {
                let digest = sums
                    .iter()
                    .find(|s| s.path == listed)
                    .map(|s| Digest {
                        algo: DigestAlgo::Md5,
                        hex: s.md5.clone(),
                    })
                    .ok_or(NoDigest::NotRecorded);
                self.shipped.entry(path).or_default().push(Shipped {
                    package: name.clone(),
                    listed_as: String::from_utf8_lossy(&listed).into_owned(),
                    digest,
                    mode: None,
                    user: None,
                    group: None,
                });
            }
        }
        match sysroot.read_limited(dpkg_files::STATOVERRIDE, MAX_INFO_BYTES) {
            Ok(text) => {
                let (entries, bad) = dpkg_files::parse_statoverride(&text);
                self.problems.extend(
                    bad.into_iter()
                        .map(|(line, why)| format!("{}:{line}: {why}", dpkg_files::STATOVERRIDE)),
                );
                for entry in entries {
                    for path in names.resolve(&entry.path) {
                        let listed_as = String::from_utf8_lossy(&entry.path).into_owned();
                        self.overrides.insert(
                            path,
                            Override {
                                entry: entry.clone(),
                                listed_as,
                            },
                        );
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Records the wanted files one rpm header lists.
    fn add_rpm_header(&mut self, blob: &[u8], names: &mut Spellings<'_>) -> Result<(), String> {
        for (listed, record) in rpm_header_files(blob, |name| names.wants_name(name))? {
            for path in names.resolve(&listed) {
                self.shipped.entry(path).or_default().push(record.clone());
            }
        }
        Ok(())
    }
}

/// The files of one rpm header blob whose last component `wants`, each with the package's record
/// of it: the path as listed (DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]), mode, digest, owner and
/// group. A header whose file tags disagree in length is damage, reported, never indexed past.
pub fn rpm_header_files(
    blob: &[u8],
    wants: impl Fn(&[u8]) -> bool,
) -> Result<Vec<(Vec<u8>, Shipped)>, String> {
    let h = RawHeader::parse(blob)?;
    let Some(basenames) = h.strings(TAG_BASENAMES)? else {
        return Ok(Vec::new()); // a package without files
    };
    let hits: Vec<usize> = (0..basenames.len())
        .filter(|&i| wants(basenames[i]))
        .collect();
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let package = h.string(TAG_NAME)?.unwrap_or_default();
    if package == "gpg-pubkey" {
        return Ok(Vec::new());
    }
    let n = basenames.len();
    let sized = |what: &str, tag: u32, len: Option<usize>| -> Result<(), String> {
        match len {
            Some(l) if l == n => Ok(()),
            Some(l) => Err(format!("{what} (tag {tag}) has {l} entries for {n} files")),
            None => Err(format!("{what} (tag {tag}) is missing")),
        }
    };
    let dirnames = h.strings(TAG_DIRNAMES)?.unwrap_or_default();
    let dirindexes = h.int32s(TAG_DIRINDEXES)?.unwrap_or_default();
    sized("DIRINDEXES", TAG_DIRINDEXES, Some(dirindexes.len()))?;
    let modes = h.int16s(TAG_FILEMODES)?;
    sized("FILEMODES", TAG_FILEMODES, modes.as_ref().map(Vec::len))?;
    let digests = h.strings(TAG_FILEDIGESTS)?;
    sized(
        "FILEDIGESTS",
        TAG_FILEDIGESTS,
        digests.as_ref().map(Vec::len),
    )?;
    let (modes, digests) = (modes.unwrap_or_default(), digests.unwrap_or_default());
    let users = h.strings(TAG_FILEUSERNAME)?;
    let groups = h.strings(TAG_FILEGROUPNAME)?;
    let algo_id = h.int32(TAG_FILEDIGESTALGO)?.unwrap_or(1);
    let mut out = Vec::with_capacity(hits.len());
    for i in hits {
        let dir = dirnames.get(dirindexes[i] as usize).ok_or_else(|| {
            format!(
                "file {i} names directory {} of {}",
                dirindexes[i],
                dirnames.len()
            )
        })?;
        let listed = [*dir, basenames[i]].concat();
        let name_at = |list: &Option<Vec<&[u8]>>| {
            list.as_ref()
                .and_then(|l| l.get(i))
                .map(|s| String::from_utf8_lossy(s).into_owned())
        };
        let hex = String::from_utf8_lossy(digests[i]).to_ascii_lowercase();
        let digest = match DigestAlgo::from_rpm(algo_id) {
            _ if hex.is_empty() => Err(NoDigest::NotRecorded),
            Some(algo) => Ok(Digest { algo, hex }),
            None => Err(NoDigest::UnknownAlgorithm(algo_id)),
        };
        let record = Shipped {
            package: package.clone(),
            listed_as: String::from_utf8_lossy(&listed).into_owned(),
            digest,
            mode: Some(u32::from(modes[i])),
            user: name_at(&users),
            group: name_at(&groups),
        };
        out.push((listed, record));
    }
    Ok(out)
}

/// A wanted path, and how a database spells it.
struct Named {
    listed: Vec<u8>,
    path: Vec<u8>,
}

/// A directory's (device, inode): the same directory whatever path reaches it.
type DirId = (u64, u64);

/// A wanted path and its directory's identity (`None` when it could not be looked at).
#[derive(Clone)]
struct Candidate {
    path: Vec<u8>,
    dir: Option<DirId>,
}

/// The wanted paths by file name, with the identity of their directories, to recognise them under
/// any spelling a database uses.
struct Spellings<'a> {
    sysroot: &'a Sysroot,
    /// file name -> (wanted path, its directory's (device, inode))
    by_name: HashMap<Vec<u8>, Vec<Candidate>>,
    /// a listed directory -> its (device, inode) inside the root, once looked up
    dirs: HashMap<Vec<u8>, Option<DirId>>,
}

fn split_dir(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

impl<'a> Spellings<'a> {
    fn new(sysroot: &'a Sysroot, wanted: &[Vec<u8>]) -> Spellings<'a> {
        let mut s = Spellings {
            sysroot,
            by_name: HashMap::new(),
            dirs: HashMap::new(),
        };
        for path in wanted {
            let (dir, name) = split_dir(path);
            let id = s.dir_id(dir);
            s.by_name.entry(name.to_vec()).or_default().push(Candidate {
                path: path.clone(),
                dir: id,
            });
        }
        s
    }

    fn dir_id(&mut self, dir: &[u8]) -> Option<DirId> {
        if let Some(id) = self.dirs.get(dir) {
            return *id;
        }
        let id = self
            .sysroot
            .metadata(OsStr::from_bytes(dir))
            .ok()
            .filter(Metadata::is_dir)
            .map(|m| (m.dev(), m.ino()));
        self.dirs.insert(dir.to_vec(), id);
        id
    }

    fn wants_name(&self, name: &[u8]) -> bool {
        self.by_name.contains_key(name)
    }

    /// The wanted paths `listed` names: the same path, or the same name in the same directory
    /// reached through symlinks.
    fn resolve(&mut self, listed: &[u8]) -> Vec<Vec<u8>> {
        let (dir, name) = split_dir(listed);
        let Some(candidates) = self.by_name.get(name) else {
            return Vec::new();
        };
        if let Some(c) = candidates.iter().find(|c| c.path == listed) {
            return vec![c.path.clone()];
        }
        let candidates = candidates.clone();
        let Some(id) = self.dir_id(dir) else {
            return Vec::new();
        };
        candidates
            .into_iter()
            .filter(|c| c.dir == Some(id))
            .map(|c| c.path)
            .collect()
    }
}

/// Hashes the regular file at `path` with `algo`, through the sysroot (never a FIFO or device, at
/// most [`MAX_DIGEST_BYTES`]), and returns the lowercase hex digest with the metadata of the file
/// read.
pub fn digest_file(
    sysroot: &Sysroot,
    path: &Path,
    algo: DigestAlgo,
) -> Result<(String, Metadata), SysrootError> {
    let file = sysroot.open_file(path)?;
    let md = file.metadata().map_err(|e| io_err(path, e))?;
    if md.len() > MAX_DIGEST_BYTES {
        return Err(io_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} bytes, more than the {} MiB a file may take to verify",
                    md.len(),
                    MAX_DIGEST_BYTES >> 20
                ),
            ),
        ));
    }
    let mut reader = (&file).take(MAX_DIGEST_BYTES);
    let hex = match algo {
        DigestAlgo::Md5 => hash::<md5::Md5>(&mut reader),
        DigestAlgo::Sha1 => hash::<sha1::Sha1>(&mut reader),
        DigestAlgo::Sha224 => hash::<sha2::Sha224>(&mut reader),
        DigestAlgo::Sha256 => hash::<sha2::Sha256>(&mut reader),
        DigestAlgo::Sha384 => hash::<sha2::Sha384>(&mut reader),
        DigestAlgo::Sha512 => hash::<sha2::Sha512>(&mut reader),
    }
    .map_err(|e| io_err(path, e))?;
    Ok((hex, md))
}

fn hash<D: sha2::Digest>(reader: &mut impl Read) -> std::io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn io_err(path: &Path, source: std::io::Error) -> SysrootError {
    SysrootError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::packages::rpmheader::HeaderBuilder;

    fn tree(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Sysroot) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let root = Sysroot::open(dir.path()).unwrap();
        (dir, root)
    }

    fn md5_hex(content: &[u8]) -> String {
        use md5::Digest as _;
        md5::Md5::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A usrmerged Debian: dpkg lists `/bin/su`, the walk finds `/usr/bin/su`.
    #[test]
    fn dpkg_records_are_found_under_either_spelling() {
        let su = b"su binary".as_slice();
        let sums = format!("{}  bin/su\n", md5_hex(su));
        let (dir, root) = tree(&[
            ("/usr/bin/su", su),
            ("/usr/bin/crontab", b"crontab"),
            ("/usr/local/bin/su", b"another su"),
            ("/var/lib/dpkg/status", b""),
            (
                "/var/lib/dpkg/info/util-linux.list",
                b"/.\n/bin\n/bin/su\n/usr/share/man/man1/su.1.gz\n",
            ),
            ("/var/lib/dpkg/info/util-linux.md5sums", sums.as_bytes()),
            ("/var/lib/dpkg/info/cron.list", b"/usr/bin/crontab\n"),
            ("/var/lib/dpkg/info/cron.postinst", b"#!/bin/sh\n"),
            (
                "/var/lib/dpkg/statoverride",
                b"root crontab 2755 /usr/bin/crontab\ngarbage\n",
            ),
        ]);
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).unwrap();
        let wanted: Vec<Vec<u8>> = ["/usr/bin/su", "/usr/bin/crontab", "/usr/local/bin/su"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let owners = Owners::lookup(&root, &wanted).unwrap().unwrap();
        assert_eq!(owners.format, Some(PackageFormat::Deb));
        let su = owners.shipped(b"/usr/bin/su");
        assert_eq!(su.len(), 1);
        assert_eq!(su[0].package, "util-linux");
        assert_eq!(su[0].listed_as, "/bin/su");
        assert_eq!(
            su[0].digest,
            Ok(Digest {
                algo: DigestAlgo::Md5,
                hex: md5_hex(b"su binary")
            })
        );
        assert_eq!(su[0].mode, None, "dpkg records no modes");
        // a file of the same name elsewhere is not the package's
        assert!(owners.shipped(b"/usr/local/bin/su").is_empty());
        // cron ships no md5sums here: listed, but nothing to compare with
        let cron = owners.shipped(b"/usr/bin/crontab");
        assert_eq!(cron[0].digest, Err(NoDigest::NotRecorded));
        let o = owners.statoverride(b"/usr/bin/crontab").unwrap();
        assert_eq!((o.entry.group.as_str(), o.entry.mode), ("crontab", 0o2755));
        assert_eq!(
            owners.problems,
            ["/var/lib/dpkg/statoverride:2: not `user group mode /path`: garbage"]
        );
    }

    fn rpm_tree(headers: &[Vec<u8>]) -> (tempfile::TempDir, Sysroot) {
        let (dir, root) = tree(&[
            ("/usr/bin/sudo", b"sudo binary"),
            ("/usr/bin/passwd", b"passwd"),
        ]);
        std::fs::create_dir_all(dir.path().join("var/lib/rpm")).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("var/lib/rpm/rpmdb.sqlite")).unwrap();
        conn.execute(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
            [],
        )
        .unwrap();
        for blob in headers {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
                .unwrap();
        }
        (dir, root)
    }

    fn sudo_header() -> HeaderBuilder {
        HeaderBuilder::new()
            .string(TAG_NAME, "sudo")
            .strings(TAG_DIRNAMES, &["/etc/", "/usr/bin/"])
            .strings(TAG_BASENAMES, &["sudoers", "sudo"])
            .int32(TAG_DIRINDEXES, &[0, 1])
            .int16(TAG_FILEMODES, &[0o100440, 0o104111])
            .strings(TAG_FILEDIGESTS, &["aa", "BB"])
            .strings(TAG_FILEUSERNAME, &["root", "root"])
            .strings(TAG_FILEGROUPNAME, &["root", "root"])
    }

    #[test]
    fn rpm_file_lists_give_mode_digest_and_owner() {
        let (_dir, root) = rpm_tree(&[
            sudo_header().int32(TAG_FILEDIGESTALGO, &[8]).build(),
            // an old header without FILEDIGESTALGO: MD5
            HeaderBuilder::new()
                .string(TAG_NAME, "passwd")
                .strings(TAG_DIRNAMES, &["/usr/bin/"])
                .strings(TAG_BASENAMES, &["passwd"])
                .int32(TAG_DIRINDEXES, &[0])
                .int16(TAG_FILEMODES, &[0o104755])
                .strings(TAG_FILEDIGESTS, &["cc"])
                .build(),
            // damaged: two basenames, one mode
            HeaderBuilder::new()
                .string(TAG_NAME, "broken")
                .strings(TAG_DIRNAMES, &["/usr/bin/"])
                .strings(TAG_BASENAMES, &["sudo", "x"])
                .int32(TAG_DIRINDEXES, &[0, 0])
                .int16(TAG_FILEMODES, &[0o100755])
                .strings(TAG_FILEDIGESTS, &["", ""])
                .build(),
        ]);
        let wanted = vec![b"/usr/bin/sudo".to_vec(), b"/usr/bin/passwd".to_vec()];
        let owners = Owners::lookup(&root, &wanted).unwrap().unwrap();
        assert_eq!(owners.database, "/var/lib/rpm/rpmdb.sqlite");
        let sudo = owners.shipped(b"/usr/bin/sudo");
        assert_eq!(
            sudo,
            [Shipped {
                package: "sudo".into(),
                listed_as: "/usr/bin/sudo".into(),
                digest: Ok(Digest {
                    algo: DigestAlgo::Sha256,
                    hex: "bb".into()
                }),
                mode: Some(0o104111),
                user: Some("root".into()),
                group: Some("root".into()),
            }]
        );
        let passwd = owners.shipped(b"/usr/bin/passwd");
        assert_eq!(passwd[0].digest.as_ref().unwrap().algo, DigestAlgo::Md5);
        assert_eq!(passwd[0].user, None);
        assert_eq!(
            owners.problems,
            ["/var/lib/rpm/rpmdb.sqlite: package row 3: FILEMODES (tag 1030) has 1 entries for 2 files"]
        );
    }

    #[test]
    fn no_database_is_none_and_files_are_hashed_as_read() {
        let (dir, root) = tree(&[("/usr/bin/x", b"abc")]);
        assert!(Owners::lookup(&root, &[b"/usr/bin/x".to_vec()])
            .unwrap()
            .is_none());
        let (hex, md) = digest_file(&root, Path::new("/usr/bin/x"), DigestAlgo::Md5).unwrap();
        assert_eq!(hex, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(md.len(), 3);
        let (hex, _) = digest_file(&root, Path::new("/usr/bin/x"), DigestAlgo::Sha256).unwrap();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // a FIFO is never opened
        nix::unistd::mkfifo(
            &dir.path().join("usr/bin/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o4755),
        )
        .unwrap();
        let e = digest_file(&root, Path::new("/usr/bin/fifo"), DigestAlgo::Md5).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }
}
