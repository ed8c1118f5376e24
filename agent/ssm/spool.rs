//! The spool: every outgoing SSM report is written here (atomically, mode 0600, in a 0700
//! directory) *before* it is sent and removed only after the API accepted it, so a crash, a
//! SIGKILL from Run Command's timeout or an outage never loses a report. Entries are named by the
//! report's start time, so a name sort is delivery order (oldest first); `.last-delivered` holds
//! the newest delivered key, so an older report is never sent over a newer one. Concurrent runs
//! serialize on `.lock` (flock). A payload the service rejected is moved to `rejected/` with the
//! reason beside it, for inspection, never retried and never silently deleted.
//!
//! The spool may have been tampered with or damaged (it sits on the audited host): a directory
//! that is a symbolic link, not ours or writable by others is refused; entries are read one at a
//! time, without following links or blocking, only when regular and at most
//! [`MAX_ENTRY_BYTES`]; a `*.json` whose name is not a report key, or that cannot be read, is set
//! aside in `rejected/`, never counted against [`MAX_PENDING`]; and a `.last-delivered` marker
//! that is garbage or lies in the future is ignored with a warning, never a reason to drop a
//! report.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::payload::{ComplianceUpload, InventoryUpload};
use crate::report::output;

/// Where the spool lives unless `--spool-dir` says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/ec2-harden/spool";
/// The layout version of a spooled entry.
pub const ENVELOPE_FORMAT: u32 = 1;
/// At most this many undelivered reports are kept; beyond it the oldest go first (under COMPLETE
/// uploads each newer report supersedes it anyway) with a warning naming them.
pub const MAX_PENDING: usize = 100;

/// The most one spooled entry may hold (a report of 10,000 rules with long evidence is a few MiB).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;
/// How far in the future a `.last-delivered` key may lie (clock skew between runs) before the
/// marker is distrusted.
pub const MARKER_SKEW: Duration = Duration::from_secs(300);

const LOCK: &str = ".lock";
const LAST_DELIVERED: &str = ".last-delivered";
const REJECTED: &str = "rejected";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    #[error(
        "spool {path}: another ec2-harden run held the lock for longer than the delivery deadline"
    )]
    Busy { path: PathBuf },
    #[error("spool {path}: refusing to use it: {why}")]
    Unsafe { path: PathBuf, why: String },
}

fn io_err<'a>(path: &'a Path, doing: &'static str) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        doing,
        source,
    }
}

/// Create `dir` (mode 0700) or check that an existing one is safe to keep reports in.
fn prepare_dir(dir: &Path) -> Result<(), SpoolError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let unsafe_dir = |why: String| SpoolError::Unsafe {
        path: dir.to_path_buf(),
        why,
    };
    let md = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir, "creating"));
        }
        Err(e) => return Err(io_err(dir, "inspecting")(e)),
        Ok(md) => md,
    };
    if !md.is_dir() {
        return Err(unsafe_dir(format!(
            "it is a {}, not a directory",
            crate::localfs::kind_of(md.file_type())
        )));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            md.uid()
        )));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "it is writable by others (mode {mode:04o}); give a directory of its own"
        )));
    }
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir, "setting mode 0700 on"))?;
    }
    Ok(())
}

/// One report's outgoing payloads and how far their delivery got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub format: u32,
    /// Sortable: zero-padded nanoseconds of the report's start, then the pid.
    pub key: String,
    /// The report's start time (RFC 3339).
    pub generated_at: String,
    /// The region the report was meant for (the flush uses it when nothing else says one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub compliance: ComplianceUpload,
    pub inventory: InventoryUpload,
    #[serde(default)]
    pub compliance_delivered: bool,
    #[serde(default)]
    pub inventory_delivered: bool,
}

impl Envelope {
    pub fn key_for(generated_at: &str) -> String {
        let nanos = generated_at
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .as_nanosecond()
            .max(0);
        format!("{nanos:020}-{:010}", std::process::id())
    }
}

/// True for a name [`Envelope::key_for`] makes: 20 digits, `-`, 10 digits.
pub fn is_key(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 31
        && b[20] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 20 || c.is_ascii_digit())
}

/// A spooled entry: its file and key. Its envelope is read with [`Spool::load`] when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// The held spool lock; released on drop.
#[derive(Debug)]
pub struct SpoolLock {
    _lock: nix::fcntl::Flock<File>,
}

impl Spool {
    /// Open the spool directory, creating it (mode 0700) when missing. An existing one must be a
    /// real directory (not a link) owned by this user and not writable by anyone else; its mode
    /// is then tightened to 0700.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        for d in [dir.to_path_buf(), dir.join(REJECTED)] {
            prepare_dir(&d)?;
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the spool lock, waiting until `deadline` for another run to finish.
    pub fn lock(&self, deadline: Instant) -> Result<SpoolLock, SpoolError> {
        let path = self.dir.join(LOCK);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
            .open(&path)
            .map_err(io_err(&path, "opening the lock file"))?;
        let ft = file
            .metadata()
            .map_err(io_err(&path, "inspecting the lock file"))?
            .file_type();
        if !ft.is_file() {
            return Err(SpoolError::Unsafe {
                path,
                why: format!(
                    "the lock file is a {}, not a regular file",
                    crate::localfs::kind_of(ft)
                ),
            });
        }
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(SpoolLock { _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        return Err(SpoolError::Busy { path });
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    return Err(SpoolError::Io {
                        path,
                        doing: "locking",
                        source: e.into(),
                    })
                }
            }
        }
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Write (or rewrite, after partial delivery) an entry: atomic, 0600.
    pub fn put(&self, envelope: &Envelope) -> Result<PathBuf, SpoolError> {
        let path = self.entry_path(&envelope.key);
        let json = serde_json::to_vec_pretty(envelope).expect("envelopes serialize");
        output::write_atomic_mode(&path, &json, 0o600).map_err(io_err(&path, "writing"))?;
        Ok(path)
    }

    /// Undelivered entries (`KEY.json`), oldest first. Other `*.json` names are not entries:
    /// [`Spool::sweep`] sets them aside.
    pub fn pending(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut entries: Vec<Entry> = self
            .json_names()?
            .into_iter()
            .filter_map(|(key, path)| is_key(&key).then_some(Entry { path, key }))
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// `*.json` names of the spool directory (not hidden), with their stems.
    fn json_names(&self) -> Result<Vec<(String, PathBuf)>, SpoolError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir, "listing"))? {
            let e = e.map_err(io_err(&self.dir, "listing"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(stem) = name.strip_suffix(".json") {
                out.push((stem.to_string(), e.path()));
            }
        }
        Ok(out)
    }

    /// Move `*.json` files whose names are not report keys to `rejected/`: they were not written
    /// by the agent and must neither be sent nor count against [`MAX_PENDING`]. Returns (name, why).
    pub fn sweep(&self) -> Result<Vec<(String, String)>, SpoolError> {
        let mut moved = Vec::new();
        for (stem, path) in self.json_names()? {
            if is_key(&stem) {
                continue;
            }
            let why = "not a spool entry: its name is not a report key".to_string();
            tracing::warn!(path = %path.display(), "{why}; moved to rejected/");
            self.set_aside(&path, &why)?;
            moved.push((stem, why));
        }
        Ok(moved)
    }

    /// Read one entry's envelope: a regular file (never a link, FIFO or device), at most
    /// [`MAX_ENTRY_BYTES`], in this agent's envelope format.
    pub fn load(&self, entry: &Entry) -> Result<Envelope, String> {
        let bytes = crate::localfs::read_regular(
            &entry.path,
            MAX_ENTRY_BYTES,
            crate::localfs::Links::Refuse,
        )
        .map_err(|e| format!("reading: {e}"))?;
        let env = serde_json::from_slice::<Envelope>(&bytes).map_err(|e| e.to_string())?;
        if env.format != ENVELOPE_FORMAT {
            return Err(format!(
                "envelope format {} (this agent reads {ENVELOPE_FORMAT})",
                env.format
            ));
        }
        Ok(env)
    }

    /// Drop the oldest entries beyond [`MAX_PENDING`], never `keep` (this run's own report);
    /// returns the keys dropped.
    pub fn trim(&self, keep: Option<&str>) -> Result<Vec<String>, SpoolError> {
        let pending = self.pending()?;
        let mut excess = pending.len().saturating_sub(MAX_PENDING);
        let mut dropped = Vec::new();
        for e in pending {
            if excess == 0 {
                break;
            }
            if Some(e.key.as_str()) == keep {
                continue;
            }
            fs::remove_file(&e.path).map_err(io_err(&e.path, "removing"))?;
            dropped.push(e.key);
            excess -= 1;
        }
        Ok(dropped)
    }

    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, "removing")(e)),
            _ => Ok(()),
        }
    }

    /// Move an entry the service (or our own validation) refused to `rejected/`, with the reason
    /// in `NAME.reason` beside it.
    pub fn set_aside(&self, path: &Path, reason: &str) -> Result<PathBuf, SpoolError> {
        let name = path.file_name().unwrap_or_default();
        let target = self.dir.join(REJECTED).join(name);
        fs::rename(path, &target).map_err(io_err(path, "moving aside"))?;
        let mut why = target.clone().into_os_string();
        why.push(".reason");
        output::write_atomic_mode(Path::new(&why), format!("{reason}\n").as_bytes(), 0o600)
            .map_err(io_err(&target, "writing the reason for"))?;
        Ok(target)
    }

    /// Keep a payload that was never spooled (it broke the model) for inspection.
    pub fn reject_new(&self, envelope: &Envelope, reason: &str) -> Result<PathBuf, SpoolError> {
        let path = self.put(envelope)?;
        self.set_aside(&path, reason)
    }

    /// The key of the newest report the service accepted, when the marker can be trusted: a
    /// marker that is not a key, or lies more than [`MARKER_SKEW`] in the future (the clock
    /// stepped back, or it was tampered with), is ignored with a warning.
    pub fn last_delivered(&self) -> Option<String> {
        let path = self.dir.join(LAST_DELIVERED);
        let text = match crate::localfs::read_regular_text(&path, 64, crate::localfs::Links::Refuse)
        {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return None,
            Err(e) => {
                tracing::warn!("ignoring the delivered marker: {e}");
                return None;
            }
        };
        let key = text.trim();
        if !is_key(key) {
            tracing::warn!(path = %path.display(), "ignoring the delivered marker: not a report key");
            return None;
        }
        let nanos: i128 = key[..20].parse().unwrap_or(i128::MAX);
        let now = jiff::Timestamp::now().as_nanosecond();
        if nanos > now + MARKER_SKEW.as_nanos() as i128 {
            tracing::warn!(path = %path.display(), key, "ignoring the delivered marker: it lies in the future (the clock stepped back?)");
            return None;
        }
        Some(key.to_string())
    }

    pub fn set_last_delivered(&self, key: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(LAST_DELIVERED);
        // a marker that is not a regular file (a link, a FIFO planted in the spool) is replaced
        if fs::symlink_metadata(&path).is_ok_and(|md| !md.is_file()) {
            fs::remove_file(&path).map_err(io_err(&path, "removing the odd marker"))?;
        }
        output::write_atomic_mode(&path, format!("{key}\n").as_bytes(), 0o600)
            .map_err(io_err(&path, "writing"))
    }

    /// Entries kept aside in `rejected/` (names), for `report flush` to mention.
    pub fn rejected(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join(REJECTED))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    }
}
