//! ec2-harden: hardening, patch, disk-encryption, file-integrity and IMDS checks for Linux EC2 hosts.
//!
//! Data flows one way: a baseline (TOML, [`baseline`]) is validated into rules ([`rule`]); each
//! rule's check ([`checks`]) reads the host only through the [`sysroot`]; the [`engine`] runs them
//! (in parallel) into one [`report::Report`], which renderers turn into text, JSON or JUnit.

pub mod baseline;
pub mod checks;
pub mod context;
pub mod crypt;
pub mod engine;
pub mod facts;
pub mod fim;
pub mod imds;
pub mod netfilter;
pub mod packages;
pub mod probe;
pub mod report;
pub mod rule;
pub mod ssm;
pub mod sysroot;
pub mod treewalk;
