//! File integrity (FIM): a manifest of the system's files sealed at bake ([`init`]) and
//! compared against the tree at boot and on schedule ([`verify`]).
//!
//! * [`policy`]: which paths are covered and how each is compared (full, metadata, growing,
//!   ignore), most specific rule wins.
//! * [`walk`]: include roots resolved inside the sysroot, walked in manifest order with the
//!   sorted walk of [`crate::host::walk`] (directory fds, never following symlinks or leaving the
//!   filesystem), what could not be walked recorded with a note.
//! * [`entry`]: what is recorded per path, and safe reads relative to the directory fd the walk
//!   found it in (`O_NOFOLLOW|O_NONBLOCK`, re-check after open, per-thread buffers).
//! * [`manifest`]: the versioned, gzip-compressed, digest-sealed manifest format.
//! * [`verify`]: the one-pass merge of manifest and tree into typed changes with severities.
//!
//! Both directions stream: the sorted walk is cut into chunks of [`CHUNK`] entries, each chunk
//! is read (hashed) in parallel with rayon while the next chunk is walked, and results go
//! straight to the manifest writer (init) or the merge (verify). Memory stays bounded by the
//! chunk size, whatever the size of the tree.

pub mod entry;
pub mod manifest;
pub mod policy;
pub mod verify;
pub mod walk;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::sysroot::{Sysroot, SysrootError};

pub use entry::{Entry, Kind, Pending};
pub use manifest::{Header, ManifestInfo};
pub use policy::{FimPolicy, PathRule, Policy};
pub use verify::{verify, Change, ChangeKind, VerifyOptions, VerifyReport, What};

/// Entries per chunk of the streaming pipeline.
pub const CHUNK: usize = 4096;

/// Where the manifest lives inside the audited root unless `--manifest` says otherwise.
pub const DEFAULT_MANIFEST: &str = "/var/lib/ec2-harden/manifest";

/// Errors of the file-integrity commands. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum FimError {
    /// The root could not be opened.
    #[error("--root: {0}")]
    Root(#[from] SysrootError),
    /// A policy rule is invalid.
    #[error("fim policy: path `{path}`: {reason}")]
    Policy {
        /// The rule's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An include root could not be expanded or resolved.
    #[error("walking {path}: {reason}")]
    Walk {
        /// The in-root path or pattern.
        path: String,
        /// What failed.
        reason: String,
    },
    /// There is no manifest at the path.
    #[error("manifest {}: not found (run `ec2-harden fim init` first)", path.display())]
    ManifestMissing {
        /// The host path of the manifest.
        path: PathBuf,
    },
    /// The manifest is not a valid, complete, untouched manifest.
    #[error("manifest {}: {}{reason}; refusing it", path.display(), line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Manifest {
        /// The host path of the manifest.
        path: PathBuf,
        /// The line (of the uncompressed text) where the problem is, if known.
        line: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is valid but is not the one pinned with `--expect-digest`.
    #[error("manifest {}: digest sha256:{found} does not match the expected sha256:{expected}; refusing it", path.display())]
    DigestMismatch {
        /// The host path of the manifest.
        path: PathBuf,
        /// The pinned digest (hex).
        expected: String,
        /// The manifest's digest (hex).
        found: String,
    },
    /// A digest given on the command line is not 64 hex digits.
    #[error(
        "`{0}` is not a SHA-256 digest: expected 64 hex digits, optionally prefixed with `sha256:`"
    )]
    BadDigest(String),
    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("writing the manifest", ...).
        action: &'static str,
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl FimError {
    /// True for errors of configuration or input (exit 2); false for I/O failures (exit 3).
    pub fn is_config(&self) -> bool {
        !matches!(self, FimError::Io { .. } | FimError::Walk { .. })
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> FimError {
        FimError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs `f` on each chunk of the walk, in order. The walk runs on its own thread, a couple of
/// chunks ahead (bounded channel), so all rayon workers are free to hash. The first error stops
/// the walk and is returned.
pub(crate) fn for_each_chunk(
    walker: &mut walk::Walker<'_>,
    mut f: impl FnMut(Vec<Pending>) -> Result<(), FimError>,
) -> Result<(), FimError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Pending>>(2);
        scope.spawn(move || loop {
            let chunk = walker.next_chunk(CHUNK);
            if chunk.is_empty() || tx.send(chunk).is_err() {
                break;
            }
        });
        for chunk in rx {
            f(chunk)?;
        }
        Ok(())
    })
}

/// Maps `items` in parallel and returns the results in the items' order. The largest items
/// (by `weight`, e.g. bytes to hash) are started first, each as its own task, so one big file
/// does not leave the other cores idle at the end of a chunk.
pub(crate) fn par_map_ordered<T: Sync, R: Send>(
    items: &[T],
    weight: impl Fn(&T) -> u64 + Sync,
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weight(&items[i])));
    let mut done: Vec<(usize, R)> = order
        .par_iter()
        .with_max_len(1)
        .map(|&i| (i, f(&items[i])))
        .collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Runs `f` (an [`init`] or [`verify`]) on a rayon pool of its own, driven from a plain thread,
/// and waits for it.
///
/// For callers that are themselves rayon tasks and share the result through a once-cell (the
/// `fim` rules inside `check`, which run in parallel on the global pool). Hashing in the global
/// pool from such a task could deadlock: while the task waits for a hashing job another worker
/// took, rayon lets its thread pick up other pending tasks, one of which may be a rule waiting
/// on the same once-cell, which the blocked thread itself is filling. A separate pool's workers
/// never run the caller's tasks, and the calling thread only blocks on a thread join.
pub fn isolated<T: Send>(f: impl FnOnce() -> Result<T, FimError> + Send) -> Result<T, FimError> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            match rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("ec2-harden-fim-{i}"))
                .build()
            {
                Ok(pool) => pool.install(f),
                Err(e) => Err(FimError::io(
                    "starting the hashing threads for",
                    Path::new("the manifest"),
                    io::Error::other(e),
                )),
            }
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Parses a digest given as `HEX` or `sha256:HEX`.
pub fn parse_digest(text: &str) -> Result<[u8; 32], FimError> {
    let hex = text.trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    entry::unhex(hex)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| FimError::BadDigest(text.to_string()))
}

/// The host path of the default manifest of `sysroot`: [`DEFAULT_MANIFEST`] resolved inside
/// the root (so a symlinked `/var` stays inside it; a final symlink is replaced, not followed).
pub fn default_manifest_path(sysroot: &Sysroot) -> Result<PathBuf, FimError> {
    let inside = walk::resolve_in_root(sysroot, DEFAULT_MANIFEST.as_bytes(), false, true)
        .map_err(|e| FimError::io("resolving", &sysroot.host_path(DEFAULT_MANIFEST), e))?;
    Ok(sysroot.host_path(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&inside)))
}

/// How `check` runs the `fim` family (the `[[integrity]]` rules): the policy to seal with at
/// bake (the baseline's), where the manifest is, and the digest it must have at boot/run.
#[derive(Debug, Clone, Default)]
pub struct FimSettings {
    /// The baseline's merged `[fim]` policy.
    pub policy: FimPolicy,
    /// Host path of the manifest; `None` is [`default_manifest_path`] of the sysroot.
    pub manifest: Option<PathBuf>,
    /// Refuse a manifest whose digest is not this one (`--fim-expect-digest`).
    pub expect_digest: Option<[u8; 32]>,
    /// The baseline's name, recorded in the manifest header.
    pub baseline: Option<String>,
}

/// Options of [`init`].
#[derive(Debug, Clone)]
pub struct InitOptions<'a> {
    /// Host path of the manifest; `None` is [`default_manifest_path`].
    pub manifest: Option<&'a Path>,
    /// The baseline the policy came from, recorded in the header.
    pub baseline: Option<&'a str>,
    /// What to cover.
    pub policy: &'a FimPolicy,
}

/// What [`init`] did.
#[derive(Debug, Clone)]
pub struct InitSummary {
    /// Host path of the manifest written.
    pub manifest: PathBuf,
    /// SHA-256 of the manifest's content (what `--expect-digest` pins).
    pub digest: [u8; 32],
    /// Entries recorded.
    pub entries: u64,
    /// Regular files hashed.
    pub files_hashed: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Entries recorded with a note (unreadable, vanished, changed while hashed).
    pub errors: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Walks the root and writes the manifest atomically (see [`manifest`]).
pub fn init(sysroot: &Sysroot, opts: &InitOptions<'_>) -> Result<InitSummary, FimError> {
    let start = Instant::now();
    let compiled = opts.policy.compile()?;
    let manifest_path = match opts.manifest {
        Some(p) => p.to_path_buf(),
        None => default_manifest_path(sysroot)?,
    };
    let segments = walk::plan(sysroot, &compiled)?;
    let header = Header::new(sysroot.root(), opts.baseline, opts.policy.clone());
    let mut writer = manifest::Writer::create(&manifest_path, &header)?;
    let mut walker = walk::Walker::new(sysroot, &compiled, segments, Some(&manifest_path));
    let (mut files_hashed, mut bytes_hashed, mut errors) = (0u64, 0u64, 0u64);
    for_each_chunk(&mut walker, |pending| {
        let entries = par_map_ordered(&pending, Pending::weight, |p| p.read(p.policy.hashes()));
        for e in &entries {
            if e.sha256.is_some() {
                files_hashed += 1;
                bytes_hashed += e.size;
            }
            if let Some(note) = &e.note {
                errors += 1;
                tracing::warn!(path = %entry::display_bytes(&e.path), "fim: {note}");
            }
            writer.write_entry(e)?;
        }
        Ok(())
    })?;
    let (digest, entries) = writer.commit()?;
    Ok(InitSummary {
        manifest: manifest_path,
        digest,
        entries,
        files_hashed,
        bytes_hashed,
        errors,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_digest(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_digest(&format!("sha256:{hex}")).unwrap(), [0xab; 32]);
        assert!(parse_digest("sha256:abc").is_err());
        assert!(parse_digest(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn default_manifest_stays_in_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("data/lib")).unwrap();
        std::fs::create_dir_all(t.path().join("var")).unwrap();
        std::os::unix::fs::symlink("/data/lib", t.path().join("var/lib")).unwrap();
        let s = Sysroot::open(t.path()).unwrap();
        assert_eq!(
            default_manifest_path(&s).unwrap(),
            s.root().join("data/lib/ec2-harden/manifest")
        );
    }
}
