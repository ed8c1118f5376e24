//! Rule kinds: for each, its parameters as a baseline writes them, their validation into a typed
//! check, and the judgement of host facts. A check reads the audited system only through the host
//! layer ([`crate::host`]) and the [`Context`] it is given; it never prints and never calls AWS.
//!
//! Adding a rule is usually a TOML table in `baseline/` of an existing kind. Adding a kind is this
//! directory's `<kind>.rs` (its parameter struct declared with [`rule_params!`](params::rule_params),
//! a [`CompileCheck`](params::CompileCheck) impl and a [`Check`] impl), one registration line in
//! `crate::baseline::kinds`, and its section in `docs/rule-kinds.md` (a test checks that every
//! registered kind has one). See `docs/architecture.md` for the whole recipe.

use std::fmt;

use crate::rule::{Outcome, RuleMeta};

pub mod accounts;
pub mod audit_rules;
pub mod config;
pub mod context;
pub mod credentials;
pub mod crypt;
pub mod expect;
pub mod file_content;
pub mod file_permissions;
pub mod file_presence;
pub mod firewall;
pub mod imds;
pub mod integrity;
pub mod kernel_module;
pub mod mount;
pub mod params;
pub mod patch;
pub mod shipped;
pub mod sshd;
pub mod sysctl;
pub mod systemd_unit;
pub mod tree_scan;

pub use context::Context;
pub(crate) use params::{expand, validate_path, validate_paths};
pub use params::{CompileCheck, IfMissing, OneOrMany};

/// A compiled check: the typed, validated parameters of one rule and how to evaluate them.
pub trait Check: Send + Sync + fmt::Debug {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome;
    /// True when the check reads `cx.facts.imds`: the instance metadata service is then queried
    /// once before the run (see [`crate::host::imds`]); when no selected rule needs it, it is not asked.
    fn uses_imds(&self) -> bool {
        false
    }
    /// True when the check reads the package manager's cached metadata (the repository indexes),
    /// which `check --refresh-metadata` refreshes first when such a rule is selected.
    fn reads_package_metadata(&self) -> bool {
        false
    }
}

/// A rule ready to run: metadata plus its compiled check.
#[derive(Debug)]
pub struct Rule {
    pub meta: RuleMeta,
    pub check: Box<dyn Check>,
}

/// A declarative rule kind: its `[[table]]` name and the family its rules belong to by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub name: &'static str,
    pub family: &'static str,
}
