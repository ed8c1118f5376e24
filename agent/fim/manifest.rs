//! The manifest file: versioned, sorted, gzip-compressed, sealed by its own SHA-256.
//!
//! # Format (version 1)
//!
//! A gzip stream (one member, nothing after it) of ASCII/UTF-8 lines ending in `\n`, fields
//! separated by one TAB:
//!
//! ```text
//! ec2-harden-fim-manifest<TAB>1
//! root<TAB>/mnt/ami                        host path of the sysroot (escaped)
//! created<TAB>2026-11-28T13:15:50Z         RFC 3339, UTC
//! baseline<TAB>debian-12                   or `-`
//! agent<TAB>ec2-harden/0.1.0
//! policy<TAB>{"path":[{"path":"/etc","policy":"full"},...]}   JSON, one line
//! columns<TAB>path,type,mode,uid,gid,size,mtime,sha256,caps,target,note
//! <entry lines>
//! end<TAB><entry count><TAB>sha256:<hex>
//! ```
//!
//! One entry line per path, 11 fields, in the order of `columns`:
//!
//! | field | value |
//! |---|---|
//! | path | absolute in-root path, escaped |
//! | type | `file`, `dir`, `symlink` or `other` (FIFO, socket, device) |
//! | mode | permission bits, 4 octal digits (`4755`) |
//! | uid, gid | numeric ids |
//! | size | bytes (`lstat`) |
//! | mtime | seconds since the epoch; for reports only, never compared |
//! | sha256 | 64 hex digits, or `-` (not a file, not hashed under its policy, unreadable) |
//! | caps | `security.capability` xattr in hex, or `-` |
//! | target | symlink target, escaped, or `-` |
//! | note | why something could not be read, escaped, or `-` |
//!
//! Escaping (raw bytes, so non-UTF-8 names survive): printable ASCII other than `\` is kept,
//! `\` is `\\`, every other byte (space, TAB, newline, controls, DEL, >= 0x80) is `\xHH`; an
//! optional field whose value is exactly `-` is written `\x2d`.
//!
//! Entries are sorted by path component by component (see [`super::walk::cmp_paths`]), each
//! path once. The trailer's digest is the SHA-256 of every uncompressed byte before the `end`
//! line; it is what `fim init` prints and what `verify --expect-digest` pins. A reader refuses
//! a manifest whose gzip stream is corrupt or truncated, whose header or any line is malformed,
//! whose entries are out of order, whose trailer is missing, whose count or digest does not
//! match, or that has anything after the trailer.
//!
//! The file is written atomically: a temporary file (`.NAME.tmp-PID-N`, mode 0600, created
//! exclusively) in the target's directory, fsync, rename over the target, fsync of the
//! directory. Until the rename the previous manifest stays in place; a failed write removes the
//! temporary file. Missing parent directories are created with mode 0700.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::entry::{escape_field, hex, unescape_field, unhex, Entry, Kind};
use super::policy::FimPolicy;
use super::walk::cmp_paths;
use super::FimError;

/// The first field of the first line.
pub const MAGIC: &str = "ec2-harden-fim-manifest";
/// The format version written and read.
pub const VERSION: u32 = 1;
/// The column names, in order.
pub const COLUMNS: &str = "path,type,mode,uid,gid,size,mtime,sha256,caps,target,note";
/// The longest line a reader accepts: a path as long as the walk goes
/// ([`crate::host::walk::MAX_PATH`]) and a 4 KiB link target, both fully escaped, fit.
const MAX_LINE: u64 = 256 * 1024;
const _: () = assert!(4 * (crate::host::walk::MAX_PATH + 4096) + 1024 <= MAX_LINE as usize);

/// The manifest header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Host path of the root the manifest was taken from (display only).
    pub root: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// The baseline the policy came from.
    pub baseline: Option<String>,
    /// `ec2-harden/VERSION` of the writer.
    pub agent: String,
    /// The policy the manifest was taken with.
    pub policy: FimPolicy,
}

impl Header {
    /// A header for a manifest written now by this agent.
    pub fn new(root: &Path, baseline: Option<&str>, policy: FimPolicy) -> Header {
        let now = jiff::Timestamp::now();
        let created = jiff::Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string();
        Header {
            version: VERSION,
            root: root.display().to_string(),
            created,
            baseline: baseline.map(str::to_string),
            agent: format!("ec2-harden/{}", env!("CARGO_PKG_VERSION")),
            policy,
        }
    }

    fn lines(&self) -> Result<String, serde_json::Error> {
        let mut s = format!("{MAGIC}\t{}\nroot\t", self.version);
        escape_field(self.root.as_bytes(), &mut s);
        s.push_str(&format!("\ncreated\t{}\nbaseline\t", self.created));
        opt_field(self.baseline.as_deref().map(str::as_bytes), &mut s);
        s.push_str("\nagent\t");
        escape_field(self.agent.as_bytes(), &mut s);
        s.push_str("\npolicy\t");
        s.push_str(&serde_json::to_string(&self.policy)?);
        s.push_str(&format!("\ncolumns\t{COLUMNS}\n"));
        Ok(s)
    }
}

fn opt_field(value: Option<&[u8]>, out: &mut String) {
    match value {
        None => out.push('-'),
        Some(b"-") => out.push_str("\\x2d"),
        Some(v) => escape_field(v, out),
    }
}

/// Appends the manifest line of `e` (with its newline) to `out`.
pub fn entry_line(e: &Entry, out: &mut String) {
    use std::fmt::Write as _;
    escape_field(&e.path, out);
    let _ = write!(
        out,
        "\t{}\t{:04o}\t{}\t{}\t{}\t{}\t",
        e.kind.as_str(),
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.mtime
    );
    match &e.sha256 {
        Some(d) => out.push_str(&hex(d)),
        None => out.push('-'),
    }
    out.push('\t');
    match &e.caps {
        Some(c) => out.push_str(&hex(c)),
        None => out.push('-'),
    }
    out.push('\t');
    opt_field(e.target.as_deref(), out);
    out.push('\t');
    opt_field(e.note.as_deref().map(str::as_bytes), out);
    out.push('\n');
}

/// Parses one entry line (without its newline); the error says what is wrong.
pub fn parse_entry(line: &str) -> Result<Entry, String> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 11 {
        return Err(format!("expected 11 fields, found {}", f.len()));
    }
    let path = unescape_field(f[0]).ok_or("bad escape in path")?;
    if !path.starts_with(b"/") {
        return Err("path is not absolute".into());
    }
    let kind = Kind::parse(f[1]).ok_or_else(|| format!("unknown type `{}`", f[1]))?;
    let mode = u32::from_str_radix(f[2], 8)
        .ok()
        .filter(|m| *m <= 0o7777 && f[2].len() == 4)
        .ok_or_else(|| format!("bad mode `{}`", f[2]))?;
    let num = |i: usize, what: &str| -> Result<u64, String> {
        f[i].parse::<u64>()
            .map_err(|_| format!("bad {what} `{}`", f[i]))
    };
    let uid = u32::try_from(num(3, "uid")?).map_err(|_| "uid out of range")?;
    let gid = u32::try_from(num(4, "gid")?).map_err(|_| "gid out of range")?;
    let size = num(5, "size")?;
    let mtime = f[6]
        .parse::<i64>()
        .map_err(|_| format!("bad mtime `{}`", f[6]))?;
    let sha256 = match f[7] {
        "-" => None,
        h => Some(
            unhex(h)
                .filter(|_| h.len() == 64 && h.bytes().all(|b| !b.is_ascii_uppercase()))
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| format!("bad sha256 `{h}`"))?,
        ),
    };
    let caps = match f[8] {
        "-" => None,
        h => Some(unhex(h).ok_or_else(|| format!("bad caps `{h}`"))?),
    };
    let opt = |s: &str, what: &str| -> Result<Option<Vec<u8>>, String> {
        match s {
            "-" => Ok(None),
            s => unescape_field(s)
                .map(Some)
                .ok_or_else(|| format!("bad escape in {what}")),
        }
    };
    let target = opt(f[9], "target")?;
    let note = opt(f[10], "note")?.map(|n| String::from_utf8_lossy(&n).into_owned());
    Ok(Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        size,
        mtime,
        sha256,
        caps,
        target,
        note,
    })
}

/// Streams a manifest to a temporary file and renames it into place on [`Writer::commit`].
pub struct Writer {
    target: PathBuf,
    tmp: PathBuf,
    gz: Option<GzEncoder<BufWriter<File>>>,
    hasher: Sha256,
    count: u64,
    last: Option<Vec<u8>>,
    line: String,
}

impl Writer {
    /// Creates the temporary file next to `target` and writes the header.
    pub fn create(target: &Path, header: &Header) -> Result<Writer, FimError> {
        let name = target.file_name().ok_or_else(|| {
            FimError::io(
                "writing the manifest",
                target,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
            )
        })?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        crate::localfs::ensure_replaceable(target)
            .map_err(|e| FimError::io("writing the manifest", target, e))?;
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| FimError::io("creating the directory of", target, e))?;
        }
        remove_stale_temps(&dir, &name.to_string_lossy());
        let (tmp, file) = create_temp(&dir, &name.to_string_lossy())
            .map_err(|e| FimError::io("creating a temporary file for", target, e))?;
        let mut w = Writer {
            target: target.to_path_buf(),
            tmp,
            gz: Some(GzEncoder::new(
                BufWriter::with_capacity(256 * 1024, file),
                Compression::fast(),
            )),
            hasher: Sha256::new(),
            count: 0,
            last: None,
            line: String::with_capacity(512),
        };
        let lines = header.lines().map_err(|e| {
            FimError::io(
                "writing the manifest",
                target,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        w.put(lines.as_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), FimError> {
        self.hasher.update(bytes);
        let gz = self.gz.as_mut().ok_or_else(|| {
            FimError::io(
                "writing the manifest",
                &self.target,
                io::Error::other("already finished"),
            )
        })?;
        gz.write_all(bytes)
            .map_err(|e| FimError::io("writing the manifest", &self.target, e))
    }

    /// Appends one entry; entries must come in manifest order, each path once.
    pub fn write_entry(&mut self, e: &Entry) -> Result<(), FimError> {
        if let Some(last) = &self.last {
            if cmp_paths(last, &e.path) != std::cmp::Ordering::Less {
                return Err(FimError::Walk {
                    path: String::from_utf8_lossy(&e.path).into_owned(),
                    reason: format!(
                        "internal error: entries out of order (after {})",
                        String::from_utf8_lossy(last)
                    ),
                });
            }
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        entry_line(e, &mut line);
        let result = self.put(line.as_bytes());
        self.line = line;
        result?;
        self.count += 1;
        self.last = Some(e.path.clone());
        Ok(())
    }

    /// Writes the trailer, syncs and renames the file into place. Returns the digest and count.
    pub fn commit(mut self) -> Result<([u8; 32], u64), FimError> {
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let trailer = format!("end\t{}\tsha256:{}\n", self.count, hex(&digest));
        let target = self.target.clone();
        let io_err = |action, e| FimError::io(action, &target, e);
        let mut gz = self
            .gz
            .take()
            .ok_or_else(|| io_err("writing the manifest", io::Error::other("already finished")))?;
        gz.write_all(trailer.as_bytes())
            .map_err(|e| io_err("writing the manifest", e))?;
        let file = gz
            .finish()
            .map_err(|e| io_err("writing the manifest", e))?
            .into_inner()
            .map_err(|e| io_err("writing the manifest", e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_err("syncing the manifest", e))?;
        drop(file);
        fs::rename(&self.tmp, &self.target).map_err(|e| io_err("replacing the manifest", e))?;
        self.tmp = PathBuf::new();
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            match File::open(dir).and_then(|d| d.sync_all()) {
                Err(e) if e.kind() != io::ErrorKind::InvalidInput => {
                    return Err(io_err("syncing the directory of the manifest", e))
                }
                _ => {}
            }
        }
        Ok((digest, self.count))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not committed: the previous manifest stays; the partial one goes.
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// Remove `.NAME.tmp-PID-N` files that a killed run left behind (its PID no longer exists): an
/// image must not carry half-written manifests from an interrupted bake.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // the writer runs on this host: no /proc/PID, no writer
        let gone = pid > 0
            && pid != std::process::id() as i32
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{pid}")).exists();
        if gone && e.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(path = %e.path().display(), "removed a manifest left half-written by an interrupted run")
                }
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), "cannot remove a stale manifest temp file: {err}")
                }
            }
        }
    }
}

fn libc_o_nofollow() -> i32 {
    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits()
}

/// A validated manifest's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Host path of the manifest.
    pub path: PathBuf,
    /// Its header.
    pub header: Header,
    /// Its digest (the trailer's, checked against the content).
    pub digest: [u8; 32],
    /// Number of entries.
    pub entries: u64,
}

/// Streams a manifest's entries, checking everything on the way (see the module docs).
pub struct Reader {
    path: PathBuf,
    input: BufReader<GzDecoder<BufReader<File>>>,
    hasher: Sha256,
    line_no: u64,
    count: u64,
    last: Option<Vec<u8>>,
    buf: Vec<u8>,
    header: Header,
    digest: Option<[u8; 32]>,
}

impl Reader {
    /// Opens a manifest and reads its header.
    /// Open a manifest: a regular file, opened without blocking and without following a final
    /// symbolic link (a FIFO, a device or a link planted at the manifest's place is an error,
    /// never read and never followed out of the root).
    pub fn open(path: &Path) -> Result<Reader, FimError> {
        use crate::localfs::{open_regular, Links, LocalFileError};
        let file = open_regular(path, Links::Refuse).map_err(|e| match e {
            e if e.is_not_found() => FimError::ManifestMissing {
                path: path.to_path_buf(),
            },
            LocalFileError::Io { source, .. } => FimError::io("opening the manifest", path, source),
            LocalFileError::NotRegular { kind, .. } => FimError::Manifest {
                path: path.to_path_buf(),
                line: None,
                reason: format!("it is a {kind}, not a regular file"),
            },
            LocalFileError::TooLarge { limit, .. } => FimError::Manifest {
                path: path.to_path_buf(),
                line: None,
                reason: format!("larger than {limit} bytes"),
            },
        })?;
        let mut r = Reader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(
                256 * 1024,
                GzDecoder::new(BufReader::with_capacity(64 * 1024, file)),
            ),
            hasher: Sha256::new(),
            line_no: 0,
            count: 0,
            last: None,
            buf: Vec::with_capacity(512),
            header: Header {
                version: VERSION,
                root: String::new(),
                created: String::new(),
                baseline: None,
                agent: String::new(),
                policy: FimPolicy { paths: Vec::new() },
            },
            digest: None,
        };
        r.read_header()?;
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The digest, once the trailer has been read and checked.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.digest
    }

    fn bad(&self, reason: impl Into<String>) -> FimError {
        FimError::Manifest {
            path: self.path.clone(),
            line: (self.line_no > 0).then_some(self.line_no),
            reason: reason.into(),
        }
    }

    /// Reads the next line without its newline; `None` at the end of the stream.
    fn next_line(&mut self) -> Result<Option<String>, FimError> {
        self.buf.clear();
        let n = match (&mut self.input)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(n) => n,
            Err(e) => {
                let what = if self.line_no == 0 && self.buf.is_empty() {
                    "not a gzip-compressed ec2-harden manifest"
                } else {
                    "corrupt or truncated compressed data"
                };
                return Err(self.bad(format!("{what} ({e})")));
            }
        };
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.len() as u64 > MAX_LINE {
            return Err(self.bad("line too long"));
        }
        if self.buf.pop() != Some(b'\n') {
            return Err(self.bad("truncated (last line has no newline)"));
        }
        let line = std::str::from_utf8(&self.buf)
            .map_err(|_| self.bad("not UTF-8 text"))?
            .to_string();
        if !line.starts_with("end\t") {
            self.hasher.update(&self.buf);
            self.hasher.update(b"\n");
        }
        Ok(Some(line))
    }

    fn header_field(&mut self, key: &str) -> Result<String, FimError> {
        let line = self
            .next_line()?
            .ok_or_else(|| self.bad(format!("truncated header (no `{key}` line)")))?;
        match line.split_once('\t') {
            Some((k, v)) if k == key => Ok(v.to_string()),
            _ => Err(self.bad(format!("expected the `{key}` header line"))),
        }
    }

    fn read_header(&mut self) -> Result<(), FimError> {
        let first = self
            .next_line()?
            .ok_or_else(|| self.bad("empty (no header)"))?;
        let version = match first.split_once('\t') {
            Some((MAGIC, v)) => v
                .parse::<u32>()
                .map_err(|_| self.bad(format!("bad version `{v}`")))?,
            _ => return Err(self.bad("not an ec2-harden manifest (bad first line)")),
        };
        if version != VERSION {
            return Err(self.bad(format!(
                "unsupported manifest version {version} (this agent reads version {VERSION})"
            )));
        }
        let root = self.header_field("root")?;
        let root = unescape_field(&root).ok_or_else(|| self.bad("bad escape in root"))?;
        let created = self.header_field("created")?;
        created
            .parse::<jiff::Timestamp>()
            .map_err(|e| self.bad(format!("bad creation time `{created}`: {e}")))?;
        let baseline = match self.header_field("baseline")?.as_str() {
            "-" => None,
            b => Some(
                String::from_utf8_lossy(
                    &unescape_field(b).ok_or_else(|| self.bad("bad escape in baseline"))?,
                )
                .into_owned(),
            ),
        };
        let agent = self.header_field("agent")?;
        let agent = unescape_field(&agent).ok_or_else(|| self.bad("bad escape in agent"))?;
        let policy = self.header_field("policy")?;
        let policy: FimPolicy =
            serde_json::from_str(&policy).map_err(|e| self.bad(format!("bad policy: {e}")))?;
        let columns = self.header_field("columns")?;
        if columns != COLUMNS {
            return Err(self.bad(format!("unexpected columns `{columns}`")));
        }
        self.header = Header {
            version,
            root: String::from_utf8_lossy(&root).into_owned(),
            created,
            baseline,
            agent: String::from_utf8_lossy(&agent).into_owned(),
            policy,
        };
        Ok(())
    }

    /// The next entry, or `None` after a valid trailer (count and digest checked, nothing after).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, FimError> {
        if self.digest.is_some() {
            return Ok(None);
        }
        let line = self
            .next_line()?
            .ok_or_else(|| self.bad("truncated (no `end` trailer)"))?;
        if let Some(rest) = line.strip_prefix("end\t") {
            self.finish(rest)?;
            return Ok(None);
        }
        let entry = parse_entry(&line).map_err(|e| self.bad(e))?;
        if let Some(last) = &self.last {
            if cmp_paths(last, &entry.path) != std::cmp::Ordering::Less {
                return Err(self.bad("entries out of order or duplicated"));
            }
        }
        self.last = Some(entry.path.clone());
        self.count += 1;
        Ok(Some(entry))
    }

    fn finish(&mut self, trailer: &str) -> Result<(), FimError> {
        let (count, digest) = trailer
            .split_once('\t')
            .ok_or_else(|| self.bad("malformed trailer"))?;
        let count: u64 = count
            .parse()
            .map_err(|_| self.bad("malformed trailer count"))?;
        let digest = digest
            .strip_prefix("sha256:")
            .and_then(unhex)
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| self.bad("malformed trailer digest"))?;
        if count != self.count {
            return Err(self.bad(format!(
                "trailer says {count} entries, the manifest has {}",
                self.count
            )));
        }
        let actual: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if actual != digest {
            return Err(self.bad(format!(
                "content does not match its digest (sha256:{} recorded, sha256:{} computed): edited or corrupt",
                hex(&digest),
                hex(&actual)
            )));
        }
        // Nothing may follow the trailer, in the text or after the gzip stream.
        let mut rest = [0u8; 1];
        match self.input.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(self.bad("data after the trailer")),
            Err(e) => return Err(self.bad(format!("corrupt compressed data ({e})"))),
        }
        let raw = self.input.get_mut().get_mut();
        match raw.fill_buf() {
            Ok([]) => {}
            Ok(_) => return Err(self.bad("data after the end of the compressed stream")),
            Err(e) => return Err(FimError::io("reading the manifest", &self.path, e)),
        }
        self.digest = Some(digest);
        Ok(())
    }
}

/// Reads a whole manifest, checking everything, and optionally its digest against `expect`.
pub fn validate(path: &Path, expect: Option<&[u8; 32]>) -> Result<ManifestInfo, FimError> {
    let mut r = Reader::open(path)?;
    while r.next_entry()?.is_some() {}
    let digest = r.digest.ok_or_else(|| r.bad("truncated"))?;
    if let Some(expected) = expect {
        if *expected != digest {
            return Err(FimError::DigestMismatch {
                path: path.to_path_buf(),
                expected: hex(expected),
                found: hex(&digest),
            });
        }
    }
    Ok(ManifestInfo {
        path: path.to_path_buf(),
        header: r.header.clone(),
        digest,
        entries: r.count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[u8]) -> Entry {
        Entry {
            path: path.to_vec(),
            kind: Kind::File,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 1_700_000_000,
            sha256: Some([7; 32]),
            caps: Some(vec![1, 0, 0, 2]),
            target: None,
            note: None,
        }
    }

    fn write(dir: &Path, entries: &[Entry]) -> (PathBuf, [u8; 32]) {
        let path = dir.join("sub/manifest");
        let header = Header::new(
            Path::new("/mnt/ami root"),
            Some("debian-12"),
            FimPolicy::default(),
        );
        let mut w = Writer::create(&path, &header).unwrap();
        for e in entries {
            w.write_entry(e).unwrap();
        }
        let (digest, n) = w.commit().unwrap();
        assert_eq!(n, entries.len() as u64);
        (path, digest)
    }

    #[test]
    fn round_trips_entries_and_header() {
        let t = tempfile::tempdir().unwrap();
        let mut link = entry(b"/usr/bin/weird name\xff\t\\");
        link.kind = Kind::Symlink;
        link.sha256 = None;
        link.caps = None;
        link.target = Some(b"-".to_vec());
        link.note = Some("vanished while read".into());
        let entries = vec![entry(b"/usr/bin/a"), link, entry(b"/usr/bin/zz")];
        let (path, digest) = write(t.path(), &entries);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let info = validate(&path, Some(&digest)).unwrap();
        assert_eq!(info.entries, 3);
        assert_eq!(info.header.baseline.as_deref(), Some("debian-12"));
        assert_eq!(info.header.root, "/mnt/ami root");
        assert_eq!(info.header.policy, FimPolicy::default());
        let mut r = Reader::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push(e);
        }
        assert_eq!(got, entries);
        assert_eq!(r.digest(), Some(digest));
        let e = validate(&path, Some(&[0; 32])).unwrap_err();
        assert!(matches!(e, FimError::DigestMismatch { .. }), "{e}");
    }

    #[test]
    fn out_of_order_is_refused_on_write() {
        let t = tempfile::tempdir().unwrap();
        let header = Header::new(Path::new("/"), None, FimPolicy::default());
        let path = t.path().join("m");
        let mut w = Writer::create(&path, &header).unwrap();
        w.write_entry(&entry(b"/b")).unwrap();
        assert!(w.write_entry(&entry(b"/a")).is_err());
        drop(w);
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            0,
            "temp file removed"
        );
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn plain(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn tampering_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let (path, _) = write(t.path(), &[entry(b"/a"), entry(b"/b")]);
        let text = plain(&path);
        let bad = t.path().join("bad");
        let check = |bytes: &[u8], want: &str| {
            fs::write(&bad, bytes).unwrap();
            let e = validate(&bad, None).unwrap_err();
            assert!(matches!(e, FimError::Manifest { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e} (wanted {want})");
            assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
        };
        // One byte of an entry edited (mode 4755 -> 0755).
        let s = String::from_utf8(text.clone()).unwrap();
        check(
            &gz(s.replacen("\t4755\t", "\t0755\t", 1).as_bytes()),
            "does not match its digest",
        );
        // Lines dropped.
        let cut = s.rfind("end\t").unwrap();
        check(&gz(&text[..cut]), "no `end` trailer");
        check(&gz(&text[..text.len() - 1]), "no newline");
        // Truncated compressed file.
        let raw = fs::read(&path).unwrap();
        check(&raw[..raw.len() / 2], "truncated");
        check(b"garbage bytes, not gzip", "not a gzip-compressed");
        check(&gz(b"hello\n"), "not an ec2-harden manifest");
        let mut extra = raw.clone();
        extra.extend_from_slice(b"x");
        check(&extra, "after the end of the compressed stream");
        check(
            &gz(s
                .replace("ec2-harden-fim-manifest\t1", "ec2-harden-fim-manifest\t9")
                .as_bytes()),
            "unsupported manifest version 9",
        );
        let swapped = s.replacen("/a\t", "/c\t", 1);
        check(&gz(swapped.as_bytes()), "out of order");
        assert!(matches!(
            validate(&t.path().join("missing"), None).unwrap_err(),
            FimError::ManifestMissing { .. }
        ));
    }
}
