//! ec2-harden: hardening, patch, disk-encryption, file-integrity and IMDS checks for Linux EC2 hosts.
//!
//! The layers, each importing only from those listed before it (a test keeps it so):
//!
//! | layer | what it holds |
//! |---|---|
//! | [`rule`], [`diag`], [`localfs`] | the shared words (severity, stage, outcome, evidence), `FILE:LINE:COL` diagnostics, safe reads of the scanning host's own files |
//! | [`sysroot`] | the one door to the audited tree |
//! | [`host`] | readers of the audited system's state: units, mounts, sshd, sysctl, modprobe, accounts, netfilter, packages, storage, IMDS, the tree walker |
//! | [`fim`] | file integrity: the sealed manifest, its policy, verification |
//! | [`checks`] | rule kinds: parameters, compilation into a typed check, judgement of host facts |
//! | [`report`] | the one `Report` and its renderers (text, JSON, JUnit) |
//! | [`baseline`] | TOML baselines: parsing, the rule-kind registry, layering, waivers |
//! | [`engine`] | selects and evaluates rules in parallel into a `Report` |
//! | [`ssm`] | delivery of a `Report` to SSM Compliance and Inventory, the spool |
//! | [`run`] | the `check` pipeline as one library call, for the CLI and tests |
//!
//! Data flows one way: baseline → rules → checks judging host facts read through the sysroot →
//! one `Report` → renderers and SSM. See `docs/architecture.md`.

pub mod baseline;
pub mod checks;
pub mod diag;
pub mod engine;
pub mod fim;
pub mod host;
pub mod localfs;
pub mod report;
pub mod rule;
pub mod run;
pub mod ssm;
pub mod sysroot;

#[cfg(test)]
mod fuzz;
