//! The host layer: everything that reads the state of the audited system, and nothing that knows
//! about rules. Each module here turns files (and, on a live host, kernel interfaces, the instance
//! metadata service or a tool's output) into typed facts, always through the [`Sysroot`], so the
//! same reader serves a live host, a chroot, a mounted AMI volume or a fixture tree. Checks
//! (`crate::checks`) judge these facts; they never open a path themselves.
//!
//! [`Sysroot`]: crate::sysroot::Sysroot

pub mod accounts;
pub mod audit;
pub mod command;
pub mod credentials;
pub mod dropins;
pub mod facts;
pub mod imds;
pub mod keyvalue;
pub mod modprobe;
pub mod mounts;
pub mod netfilter;
pub mod os_release;
pub mod packages;
pub mod pathbytes;
pub mod probe;
pub mod sshd;
pub mod sshkeys;
pub mod storage;
pub mod sysctl;
pub mod systemd;
pub mod walk;

pub use facts::HostFacts;
pub use os_release::OsRelease;
