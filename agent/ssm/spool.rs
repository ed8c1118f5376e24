//! The spool: every outgoing SSM report is written here (atomically, mode 0600, in a 0700
//! directory) *before* it is sent and removed only after the API accepted it, so a crash, a
//! SIGKILL from Run Command's timeout or an outage never loses a report. Entries are named by the
//! report's start time, so a name sort is delivery order (oldest first); `.last-delivered` holds
//! the newest delivered key, so an older report is never sent over a newer one. Concurrent runs
//! serialize on `.lock` (flock). A payload the service rejected is moved to `rejected/` with the
//! reason beside it, for inspection, never retried and never silently deleted.

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
}

fn io_err<'a>(path: &'a Path, doing: &'static str) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        doing,
        source,
    }
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

/// A spooled entry: its file and what it holds (or why it could not be read).
#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub key: String,
    pub envelope: Result<Envelope, String>,
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
    /// Open (creating, mode 0700) the spool directory.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir.join(REJECTED)).map_err(io_err(dir, "creating"))?;
        for d in [dir.to_path_buf(), dir.join(REJECTED)] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir, "setting mode 0700 on"))?;
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
            .open(&path)
            .map_err(io_err(&path, "opening the lock file"))?;
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

    /// Undelivered entries, oldest first.
    pub fn pending(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut entries = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir, "listing"))? {
            let e = e.map_err(io_err(&self.dir, "listing"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let envelope = fs::read(&path)
                .map_err(|e| format!("reading: {e}"))
                .and_then(|b| serde_json::from_slice::<Envelope>(&b).map_err(|e| e.to_string()))
                .and_then(|env| {
                    if env.format != ENVELOPE_FORMAT {
                        Err(format!(
                            "envelope format {} (this agent reads {ENVELOPE_FORMAT})",
                            env.format
                        ))
                    } else {
                        Ok(env)
                    }
                });
            entries.push(Entry {
                path,
                key: key.to_string(),
                envelope,
            });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// Drop the oldest entries beyond [`MAX_PENDING`]; returns the keys dropped.
    pub fn trim(&self) -> Result<Vec<String>, SpoolError> {
        let pending = self.pending()?;
        let excess = pending.len().saturating_sub(MAX_PENDING);
        let mut dropped = Vec::new();
        for e in pending.into_iter().take(excess) {
            fs::remove_file(&e.path).map_err(io_err(&e.path, "removing"))?;
            dropped.push(e.key);
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

    /// The key of the newest report the service accepted.
    pub fn last_delivered(&self) -> Option<String> {
        fs::read_to_string(self.dir.join(LAST_DELIVERED))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn set_last_delivered(&self, key: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(LAST_DELIVERED);
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
