//! Host facts, gathered once before any check runs and carried in the report: which OS the sysroot
//! holds (from its `/etc/os-release`), its hostname, the running kernel when the sysroot is live, and
//! the scanner's architecture. Live probes land here too, so that checks never probe the host twice:
//! the instance metadata service's answers ([`crate::host::imds`], `imds`), and later the nftables
//! ruleset and block devices.

use serde::{Deserialize, Serialize};

pub use super::os_release::OsRelease;
use crate::sysroot::Sysroot;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The sysroot as given on the command line (`/` for the host itself).
    pub root: String,
    /// True when the sysroot exposes live kernel state under `/proc/sys`.
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub os: OsRelease,
    /// The running kernel release (`/proc/sys/kernel/osrelease`), when live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The architecture of the scanning binary.
    pub arch: String,
    /// Facts that could not be read, each with its cause; never fatal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the instance metadata service said, when a selected rule needed it (gathered by
    /// [`crate::host::imds::gather`] before the checks, within its deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds: Option<crate::host::imds::ImdsFacts>,
    /// What `check --refresh-metadata` did, when it ran (see [`crate::host::packages::refresh`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_refresh: Option<String>,
}

impl HostFacts {
    pub fn gather(sysroot: &Sysroot) -> HostFacts {
        let mut notes = Vec::new();
        let live = sysroot
            .metadata("/proc/sys/kernel")
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let os = match OsRelease::read(sysroot) {
            Ok(os) => os,
            Err(e) => {
                notes.push(format!("os-release: {e}"));
                OsRelease::default()
            }
        };
        let first_line = |path: &str| -> Option<String> {
            let text = sysroot.read_to_string(path).ok()?;
            let line = text.lines().next()?.trim();
            (!line.is_empty()).then(|| line.to_string())
        };
        let kernel = if live {
            first_line("/proc/sys/kernel/osrelease")
        } else {
            None
        };
        let hostname = if live {
            first_line("/proc/sys/kernel/hostname")
        } else {
            None
        }
        .or_else(|| first_line("/etc/hostname"));
        HostFacts {
            root: sysroot.root().display().to_string(),
            live,
            hostname,
            os,
            kernel,
            arch: std::env::consts::ARCH.to_string(),
            notes,
            imds: None,
            package_refresh: None,
        }
    }
}
