//! Check families and declarative rule kinds: one file per kind, one line per kind in the table below.
//!
//! Adding a rule is usually just a TOML table in `baseline/` of an existing kind. Adding a new kind:
//! 1. write `agent/checks/<kind>.rs` with its parameter struct (declared with
//!    [`rule_params!`](crate::baseline::file), which adds the common rule fields and denies unknown
//!    keys), a [`CompileCheck`] impl that validates the parameters into a typed check, and a
//!    [`Check`](crate::rule::Check) impl that reads the host only through `cx.sysroot`;
//! 2. add one line to `declare_kinds!` below (TOML table name, type, default family);
//! 3. add a fixture tree under `tests/fixtures/roots/` and tests next to the code.

pub mod accounts;
pub mod config;
pub mod credentials;
pub mod crypt;
pub mod dropins;
pub mod expect;
pub mod file_content;
pub mod file_permissions;
pub mod file_presence;
pub mod firewall;
pub mod imds;
pub mod integrity;
pub mod kernel_module;
pub mod mount;
pub mod patch;
pub mod sshd;
pub mod sysctl;
pub mod systemd_unit;
pub mod tree_scan;

pub use crate::baseline::layer::CompileCheck;

/// A declarative rule kind: its `[[table]]` name and the family its rules belong to by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub name: &'static str,
    pub family: &'static str,
}

crate::baseline::file::declare_kinds! {
    file_permissions => file_permissions::FilePermissions, family = "files";
    file_absent => file_presence::FileAbsent, family = "files";
    file_present => file_presence::FilePresent, family = "files";
    file_content => file_content::FileContent, family = "files";
    config => config::Config, family = "config";
    accounts => accounts::Accounts, family = "accounts";
    sshd => sshd::Sshd, family = "ssh";
    sysctl => sysctl::Sysctl, family = "kernel";
    kernel_module => kernel_module::KernelModule, family = "kernel";
    systemd_unit => systemd_unit::SystemdUnit, family = "services";
    mount => mount::Mount, family = "filesystems";
    tree_scan => tree_scan::TreeScan, family = "files";
    security_updates => patch::SecurityUpdates, family = "patch";
    package_metadata => patch::PackageMetadata, family = "patch";
    reboot_required => patch::RebootRequired, family = "patch";
    package_age => patch::PackageAge, family = "patch";
    integrity => integrity::Integrity, family = "fim";
    imds => imds::Imds, family = "imds";
    static_credentials => credentials::StaticCredentials, family = "credentials";
    firewall => firewall::Firewall, family = "firewall";
    crypt => crypt::Crypt, family = "crypt";
}

/// Families of the built-in (non-declarative) checks that later land as modules here.
pub const BUILTIN_FAMILIES: &[&str] = &[];

/// What a rule does when the thing it inspects does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IfMissing {
    Fail,
    Pass,
    #[default]
    NotApplicable,
}

impl IfMissing {
    pub fn outcome(self, what: String) -> crate::rule::Outcome {
        use crate::rule::{Evidence, Outcome};
        match self {
            IfMissing::Fail => Outcome::fail(Evidence::new(what)),
            IfMissing::Pass => Outcome::pass(Evidence::new(what)),
            IfMissing::NotApplicable => Outcome::not_applicable(what),
        }
    }
}

/// Check that a baseline path is absolute and has no `..` (paths are always inside the sysroot; a
/// `..` would only be confusing, never an escape).
pub(crate) fn validate_path(
    diags: &mut crate::baseline::diag::Diagnostics<'_>,
    path: &toml::Spanned<String>,
) {
    let p = path.get_ref();
    if !p.starts_with('/') {
        diags.error(
            path.span(),
            format!("path `{p}` must be absolute (it is read inside --root)"),
        );
    } else if p.split('/').any(|c| c == "..") {
        diags.error(path.span(), format!("path `{p}` must not contain `..`"));
    } else if let Err(e) = glob::Pattern::new(p) {
        diags.error(path.span(), format!("path `{p}` is not a valid glob: {e}"));
    }
}

/// Validate a non-empty `paths` list of in-root paths or globs; returns them as plain strings.
pub(crate) fn validate_paths(
    diags: &mut crate::baseline::diag::Diagnostics<'_>,
    paths: &toml::Spanned<Vec<toml::Spanned<String>>>,
) -> Vec<String> {
    if paths.get_ref().is_empty() {
        diags.error(paths.span(), "`paths` must list at least one file");
    }
    paths
        .get_ref()
        .iter()
        .map(|p| {
            validate_path(diags, p);
            p.get_ref().clone()
        })
        .collect()
}

/// Expand in-root glob patterns, in order (each pattern's matches sorted), into paths.
pub(crate) fn expand(
    sysroot: &crate::sysroot::Sysroot,
    patterns: &[String],
) -> Result<Vec<std::path::PathBuf>, crate::sysroot::SysrootError> {
    let mut files = Vec::new();
    for pattern in patterns {
        files.extend(sysroot.glob(pattern)?);
    }
    Ok(files)
}

/// A string or a list of strings in TOML (`owner = "root"` or `owner = ["root", "daemon"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> serde::Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}
