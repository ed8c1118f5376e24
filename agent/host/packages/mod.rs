//! What is installed on the audited system and what security updates its own package-manager
//! metadata offers, read straight from the sysroot's files so that a live host, a chroot and a
//! mounted AMI are judged alike, without running dpkg, apt, rpm or dnf.
//!
//! * Installed packages: dpkg's `/var/lib/dpkg/status` ([`dpkg`]) or the rpm database
//!   (`rpmdb.sqlite`, [`rpmdb`]; Amazon Linux 2's Berkeley DB `Packages`, [`bdb`]).
//! * Available security updates: apt's cached indexes in `/var/lib/apt/lists` ([`apt`]) or dnf's
//!   cached repository metadata ([`repodata`]).
//! * `check --refresh-metadata` asks the package manager to refresh that metadata first
//!   ([`refresh`]).
//! * Versions are compared exactly as the tools compare them ([`debversion`], [`rpmversion`]).
//! * Which package ships a given file and what it recorded about it (digest, mode, dpkg's
//!   statoverride), for the few files a check asks about ([`owners`], from [`dpkg_files`] and the
//!   rpm headers' file lists, [`rpmheader`]).
//!
//! The patch rule kinds ([`crate::checks::patch`]) compute all of this once per run through the
//! context's cache, however many rules ask.

pub mod apt;
pub mod bdb;
pub mod deb822;
pub mod debversion;
pub mod dpkg;
pub mod dpkg_files;
pub mod installs;
pub mod owners;
pub mod refresh;
pub mod repodata;
pub mod rpmdb;
pub mod rpmheader;
pub mod rpmversion;

use std::cmp::Ordering;
use std::time::SystemTime;

use crate::sysroot::{Sysroot, SysrootError};

/// Errors reading a package database or package-manager metadata; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Sysroot(#[from] SysrootError),
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

impl PackageError {
    pub fn format(path: impl Into<String>, message: impl Into<String>) -> PackageError {
        PackageError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Which packaging system a database belongs to; it decides how versions compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageFormat {
    Deb,
    Rpm,
}

impl PackageFormat {
    /// Compares two versions of this format (`epoch:version-release` for rpm).
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            PackageFormat::Deb => debversion::compare(a, b),
            PackageFormat::Rpm => rpmversion::compare_evr(a, b),
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    /// `amd64`, `all`, `x86_64`, `noarch`, ...
    pub arch: String,
    /// The full version: `[epoch:]upstream[-revision]` (deb) or `[epoch:]version-release` (rpm).
    pub version: String,
    /// The source package, when the database records one.
    pub source: Option<String>,
    /// When it was installed, when the database records it (rpm's `INSTALLTIME`).
    pub install_time: Option<i64>,
}

/// The installed packages of the sysroot, and any damage met while reading them.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub format: PackageFormat,
    /// The database read, as the audited system sees it (e.g. `/var/lib/dpkg/status`).
    pub path: String,
    /// Sorted by name, then architecture.
    pub packages: Vec<Installed>,
    /// Damage, each naming file and line or record; what could be read is still in `packages`.
    pub problems: Vec<String>,
    /// When the database file last changed (the last install, upgrade or removal).
    pub modified: Option<SystemTime>,
}

impl Inventory {
    pub fn new(format: PackageFormat, path: &str) -> Inventory {
        Inventory {
            format,
            path: path.to_string(),
            packages: Vec::new(),
            problems: Vec::new(),
            modified: None,
        }
    }

    /// Reads the sysroot's package database: dpkg's status file, else the rpm database.
    /// `Ok(None)` when it has neither.
    pub fn read(sysroot: &Sysroot) -> Result<Option<Inventory>, PackageError> {
        if let Some(inv) = dpkg::read(sysroot)? {
            return Ok(Some(inv));
        }
        rpmdb::read(sysroot)
    }

    /// The installed packages named `name` (one per architecture).
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Installed> + 'a {
        let start = self.packages.partition_point(|p| p.name.as_str() < name);
        self.packages[start..]
            .iter()
            .take_while(move |p| p.name == name)
    }
}

/// How urgent an advisory says its fix is (dnf/yum `updateinfo` severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdvisorySeverity {
    Low,
    Moderate,
    Important,
    Critical,
}

impl AdvisorySeverity {
    pub fn parse(text: &str) -> Option<AdvisorySeverity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(AdvisorySeverity::Low),
            "moderate" | "medium" => Some(AdvisorySeverity::Moderate),
            "important" | "high" => Some(AdvisorySeverity::Important),
            "critical" => Some(AdvisorySeverity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdvisorySeverity::Low => "low",
            AdvisorySeverity::Moderate => "moderate",
            AdvisorySeverity::Important => "important",
            AdvisorySeverity::Critical => "critical",
        }
    }
}

/// One installed package for which a security origin offers a newer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityUpdate {
    pub name: String,
    pub arch: String,
    pub installed: String,
    /// The newest version the security metadata offers (apt), or the advisory's fixed version.
    pub fixed: String,
    /// `ALAS2023-2024-123`, `RHSA-2024:1234`; apt indexes carry none.
    pub advisory: Option<String>,
    /// The advisory's severity; `None` when the metadata has none (Debian's archive never does).
    pub severity: Option<AdvisorySeverity>,
    pub cves: Vec<String>,
    /// The origin that offers it (`Debian-Security bookworm-security`, a dnf repo id).
    pub origin: String,
    /// The index or metadata file it was found in.
    pub index: String,
}

/// One origin of package metadata (an apt Release, a dnf repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSource {
    /// `Debian-Security bookworm-security`, a dnf repo id.
    pub name: String,
    /// The file that describes it (`…_InRelease`, `…/repodata/repomd.xml`).
    pub path: String,
    /// True when its updates are security fixes (apt: by the Release's label or suite; dnf: a
    /// repository whose metadata carries `updateinfo`).
    pub security: bool,
    /// When the metadata was published (apt: the Release `Date`; dnf: the repomd revision).
    pub date: Option<jiff::Timestamp>,
    /// apt's `Valid-Until`: after it apt itself refuses the metadata.
    pub valid_until: Option<jiff::Timestamp>,
    /// The package indexes it covers.
    pub indexes: Vec<String>,
}

/// What the host's cached package-manager metadata says about security updates.
#[derive(Debug, Clone)]
pub struct UpdateMetadata {
    /// `apt` or `dnf`.
    pub manager: &'static str,
    /// The metadata directory read (`/var/lib/apt/lists`, `/var/cache/dnf`).
    pub dir: String,
    pub sources: Vec<MetadataSource>,
    /// Sorted by package name and architecture.
    pub updates: Vec<SecurityUpdate>,
    /// Files that could not be read or parsed, each named; the rest was still used.
    pub problems: Vec<String>,
    /// Limits of what the metadata can show (e.g. a release-locked Amazon Linux 2023).
    pub notes: Vec<String>,
}

impl UpdateMetadata {
    pub fn new(manager: &'static str, dir: &str) -> UpdateMetadata {
        UpdateMetadata {
            manager,
            dir: dir.to_string(),
            sources: Vec::new(),
            updates: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The security sources, the ones the verdicts rest on.
    pub fn security_sources(&self) -> impl Iterator<Item = &MetadataSource> {
        self.sources.iter().filter(|s| s.security)
    }

    /// Reads the metadata matching the inventory's packaging format. `Ok(None)` when the
    /// sysroot has no metadata directory for it.
    pub fn read(
        sysroot: &Sysroot,
        inv: &Inventory,
    ) -> Result<Option<UpdateMetadata>, PackageError> {
        let meta = match inv.format {
            PackageFormat::Deb => apt::read(sysroot, inv)?,
            PackageFormat::Rpm => repodata::read(sysroot, inv)?,
        };
        Ok(meta.map(|mut m| {
            m.updates
                .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
            m
        }))
    }
}
