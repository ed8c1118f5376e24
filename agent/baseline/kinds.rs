//! The rule-kind registry: one line per kind (TOML table name, parameter type, default family).
//! It generates [`BaselineFile`], the serde model of a whole baseline file with one `[[kind]]`
//! array per kind, and [`KINDS`], the list `docs/rule-kinds.md` must document (a test checks it).
//! A new kind is its file in `agent/checks/`, one line here, and its docs section.

use crate::checks::*;

super::file::declare_kinds! {
    file_permissions => file_permissions::FilePermissions, family = "files";
    file_absent => file_presence::FileAbsent, family = "files";
    file_present => file_presence::FilePresent, family = "files";
    file_content => file_content::FileContent, family = "files";
    audit_rules => audit_rules::AuditRules, family = "logging";
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
