//! The `patch` family: is the system missing security fixes, can we even tell, and is it running
//! what is installed? Three rule kinds over one package inventory and one read of the host's
//! cached package-manager metadata ([`crate::host::packages`]), both computed once per run:
//!
//! * `[[security_updates]]`: installed packages for which a security origin offers a newer
//!   version (apt) or a security advisory a fixed version (dnf), at or above `min_severity`.
//! * `[[package_metadata]]`: the security metadata those verdicts rest on is there and no older
//!   than `max_age_days` — stale metadata is its own finding, because "unknown" is never "up to
//!   date".
//! * `[[reboot_required]]`: the running kernel is the newest installed one, and nothing asks for
//!   a reboot (`/run/reboot-required`; rpm core packages installed after boot). On an image there
//!   is nothing running: not applicable. A running kernel that no package installed (a container,
//!   a custom kernel) is not applicable too, with the reason, never "reboot needed".

use std::sync::Arc;

use jiff::Timestamp;
use toml::Spanned;

use super::IfMissing;
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::packages::installs::{
    boot_time, installed_kernels, newest_install, reboot_request, REBOOT_REQUIRED,
};
use crate::host::packages::{
    AdvisorySeverity, Inventory, PackageFormat, SecurityUpdate, UpdateMetadata,
};
use crate::rule::{Evidence, Outcome};

/// The installed packages, read once per run.
#[derive(Debug)]
struct InventoryState(Result<Option<Inventory>, String>);

/// The security metadata matched against the inventory, read once per run.
#[derive(Debug)]
struct MetadataState(Result<Option<UpdateMetadata>, String>);

fn inventory(cx: &Context<'_>) -> Arc<InventoryState> {
    cx.cache.get(|| {
        let _span = tracing::debug_span!("package inventory").entered();
        InventoryState(Inventory::read(cx.sysroot).map_err(|e| e.to_string()))
    })
}

fn metadata(cx: &Context<'_>) -> Arc<MetadataState> {
    cx.cache.get(|| {
        let inv = inventory(cx);
        let _span = tracing::debug_span!("package metadata").entered();
        MetadataState(match &inv.0 {
            Ok(Some(inv)) => UpdateMetadata::read(cx.sysroot, inv).map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.clone()),
        })
    })
}

/// A tree without any package database (a fixture, a distroless container) is not a
/// package-managed system: nothing to patch there, and nothing to pretend about.
const NO_DATABASE: &str =
    "no package database: neither /var/lib/dpkg/status nor an rpm database (rpmdb.sqlite, Berkeley DB Packages) exists";

/// `missing` of the patch kinds: `fail` (default) or `not-applicable`, never `pass`.
fn validate_missing(
    diags: &mut Diagnostics<'_>,
    missing: &Option<Spanned<IfMissing>>,
) -> IfMissing {
    match missing {
        Some(m) if *m.get_ref() == IfMissing::Pass => {
            diags.error(
                m.span(),
                "`missing = \"pass\"` is not allowed here: unknown patch state is never up to date",
            );
            IfMissing::Fail
        }
        Some(m) => *m.get_ref(),
        None => IfMissing::Fail,
    }
}

/// The security metadata, or the outcome to give when there is none usable.
fn security_metadata<'m>(
    meta: &'m MetadataState,
    inv: &Inventory,
    missing: IfMissing,
) -> Result<&'m UpdateMetadata, Outcome> {
    let meta = match &meta.0 {
        Err(e) => return Err(Outcome::error(e)),
        Ok(None) => {
            let dir = match inv.format {
                PackageFormat::Deb => crate::host::packages::apt::LISTS,
                PackageFormat::Rpm => "/var/cache/dnf",
            };
            return Err(missing.outcome(format!(
                "no package-manager metadata: {dir} does not exist, so missing updates cannot be known"
            )));
        }
        Ok(Some(m)) => m,
    };
    if meta.security_sources().next().is_none() {
        let mut why = format!(
            "no security metadata in {}: none of its {} sources is a security origin, so missing \
             security updates cannot be known",
            meta.dir,
            meta.sources.len()
        );
        if !meta.problems.is_empty() {
            why.push_str(&format!(" ({})", meta.problems.join("; ")));
        }
        return Err(missing.outcome(why));
    }
    Ok(meta)
}

fn describe_date(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "an unknown date".into())
}

// ---------------------------------------------------------------------------------------------

rule_params! {
    /// TOML parameters of `[[security_updates]]`.
    pub struct SecurityUpdates {
        /// Lowest advisory severity that counts: `low` (default), `moderate`, `important`,
        /// `critical`. Updates without a severity (apt's) always count.
        #[serde(default)]
        pub min_severity: Option<Spanned<String>>,
        /// No security metadata: `fail` (default) or `not-applicable`.
        #[serde(default)]
        pub missing: Option<Spanned<IfMissing>>,
    }
}

#[derive(Debug)]
pub struct SecurityUpdatesCheck {
    min_severity: AdvisorySeverity,
    missing: IfMissing,
}

impl CompileCheck for SecurityUpdates {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let min_severity = match &self.min_severity {
            None => AdvisorySeverity::Low,
            Some(s) => AdvisorySeverity::parse(s.get_ref()).unwrap_or_else(|| {
                diags.error(
                    s.span(),
                    format!(
                        "unknown `min_severity` `{}`, expected one of low, moderate, important, critical",
                        s.get_ref()
                    ),
                );
                AdvisorySeverity::Low
            }),
        };
        let missing = validate_missing(diags, &self.missing);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(SecurityUpdatesCheck {
            min_severity,
            missing,
        }))
    }
}

fn update_evidence(u: &SecurityUpdate) -> Evidence {
    let mut message = format!(
        "{}:{} {} -> {} from {}",
        u.name, u.arch, u.installed, u.fixed, u.origin
    );
    if let Some(id) = &u.advisory {
        message.push_str(&format!(", {id}"));
    }
    let mut notes = Vec::new();
    if let Some(s) = u.severity {
        notes.push(s.as_str().to_string());
    }
    notes.extend(u.cves.iter().cloned());
    if !notes.is_empty() {
        message.push_str(&format!(" ({})", notes.join(", ")));
    }
    Evidence::new(message).path(u.index.clone())
}

impl Check for SecurityUpdatesCheck {
    fn reads_package_metadata(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let inv_state = inventory(cx);
        let inv = match &inv_state.0 {
            Err(e) => return Outcome::error(e),
            Ok(None) => return Outcome::not_applicable(NO_DATABASE),
            Ok(Some(inv)) => inv,
        };
        let meta_state = metadata(cx);
        let meta = match security_metadata(&meta_state, inv, self.missing) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        let counted: Vec<&SecurityUpdate> = meta
            .updates
            .iter()
            .filter(|u| u.severity.is_none_or(|s| s >= self.min_severity))
            .collect();
        let problems: Vec<&String> = inv.problems.iter().chain(&meta.problems).collect();
        if !counted.is_empty() {
            let mut evidence: Vec<Evidence> = counted.into_iter().map(update_evidence).collect();
            evidence.extend(
                problems
                    .iter()
                    .map(|p| Evidence::new(format!("also could not read: {p}"))),
            );
            return Outcome::Fail { evidence };
        }
        if !problems.is_empty() {
            return Outcome::error(format!(
                "no missing security update found, but the package data is damaged: {}",
                problems
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let sources: Vec<String> = meta
            .security_sources()
            .map(|s| format!("{} ({})", s.name, describe_date(s.date)))
            .collect();
        let mut evidence = vec![Evidence::new(format!(
            "no missing security updates for {} installed packages according to {}",
            inv.packages.len(),
            sources.join(", ")
        ))
        .path(inv.path.clone())];
        evidence.extend(meta.notes.iter().map(|n| Evidence::new(n.clone())));
        Outcome::Pass { evidence }
    }
}

// ---------------------------------------------------------------------------------------------

rule_params! {
    /// TOML parameters of `[[package_metadata]]`.
    pub struct PackageMetadata {
        /// Oldest acceptable security metadata, in days (default 7).
        #[serde(default)]
        pub max_age_days: Option<Spanned<i64>>,
        /// No security metadata: `fail` (default) or `not-applicable`.
        #[serde(default)]
        pub missing: Option<Spanned<IfMissing>>,
    }
}

#[derive(Debug)]
pub struct PackageMetadataCheck {
    max_age_days: i64,
    missing: IfMissing,
}

/// A day count parameter: 1 to 3650 (ten years), `default` when absent; out of range is an error
/// at its position (and `default` is returned so validation can go on).
fn days(diags: &mut Diagnostics<'_>, key: &str, value: &Option<Spanned<i64>>, default: i64) -> i64 {
    match value {
        None => default,
        Some(d) if (1..=3650).contains(d.get_ref()) => *d.get_ref(),
        Some(d) => {
            diags.error(
                d.span(),
                format!("`{key}` must be 1 to 3650, found {}", d.get_ref()),
            );
            default
        }
    }
}

impl CompileCheck for PackageMetadata {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let max_age_days = days(diags, "max_age_days", &self.max_age_days, 7);
        let missing = validate_missing(diags, &self.missing);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(PackageMetadataCheck {
            max_age_days,
            missing,
        }))
    }
}

impl PackageMetadataCheck {
    fn judge(&self, meta: &UpdateMetadata, now: Timestamp) -> Outcome {
        let mut parts = Vec::new();
        for source in meta.security_sources() {
            let ev = Evidence::new(format!("{} metadata", source.name)).path(source.path.clone());
            let Some(date) = source.date else {
                parts.push(Outcome::fail(
                    ev.found("no publication date")
                        .expected("a dated Release/repomd"),
                ));
                continue;
            };
            let age_days = now.duration_since(date).as_secs() / 86_400;
            let found = format!(
                "published {}, {age_days} days ago",
                describe_date(Some(date))
            );
            if let Some(until) = source.valid_until.filter(|u| *u < now) {
                parts.push(Outcome::fail(
                    ev.found(format!("{found}, expired {}", describe_date(Some(until))))
                        .expected("metadata within its Valid-Until (run apt-get update)"),
                ));
            } else if age_days > self.max_age_days {
                parts.push(Outcome::fail(ev.found(found).expected(format!(
                    "at most {} days old (refresh the package metadata)",
                    self.max_age_days
                ))));
            } else {
                parts.push(Outcome::pass(ev.found(found)));
            }
        }
        Outcome::combine(parts, "no security metadata")
    }
}

impl Check for PackageMetadataCheck {
    fn reads_package_metadata(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let inv_state = inventory(cx);
        let inv = match &inv_state.0 {
            Err(e) => return Outcome::error(e),
            Ok(None) => return Outcome::not_applicable(NO_DATABASE),
            Ok(Some(inv)) => inv,
        };
        let meta_state = metadata(cx);
        let mut outcome = match security_metadata(&meta_state, inv, self.missing) {
            Ok(meta) => {
                let mut outcome = self.judge(meta, Timestamp::now());
                // what this metadata cannot show (Amazon Linux 2023's release lock)
                if let Outcome::Pass { evidence } | Outcome::Fail { evidence } = &mut outcome {
                    evidence.extend(meta.notes.iter().map(|n| Evidence::new(n.clone())));
                }
                outcome
            }
            Err(outcome) => outcome,
        };
        if let (Some(refresh), Outcome::Pass { evidence } | Outcome::Fail { evidence }) =
            (&cx.facts.package_refresh, &mut outcome)
        {
            evidence.push(Evidence::new(refresh.clone()));
        }
        outcome
    }
}

// ---------------------------------------------------------------------------------------------

rule_params! {
    /// TOML parameters of `[[package_age]]`.
    pub struct PackageAge {
        /// Most days since the newest package install or upgrade (default 30).
        #[serde(default)]
        pub max_days: Option<Spanned<i64>>,
    }
}

#[derive(Debug)]
pub struct PackageAgeCheck {
    max_days: i64,
}

impl CompileCheck for PackageAge {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let max_days = days(diags, "max_days", &self.max_days, 30);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(PackageAgeCheck { max_days }))
    }
}

impl Check for PackageAgeCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let inv_state = inventory(cx);
        let inv = match &inv_state.0 {
            Err(e) => return Outcome::error(e),
            Ok(None) => return Outcome::not_applicable(NO_DATABASE),
            Ok(Some(inv)) => inv,
        };
        let (when, what) = match newest_install(cx.sysroot, inv) {
            Err(e) => return Outcome::error(e),
            Ok(None) => {
                return Outcome::error(format!(
                    "{}: no install time recorded for any package, so how current the system is cannot be told",
                    inv.path
                ))
            }
            Ok(Some(newest)) => newest,
        };
        let days = Timestamp::now().duration_since(when).as_secs() / 86_400;
        let ev = Evidence::new(format!(
            "newest package install or upgrade: {what}, {}",
            describe_date(Some(when))
        ))
        .path(inv.path.clone())
        .found(format!("{days} days ago"));
        if days > self.max_days {
            Outcome::fail(ev.expected(format!("at most {} days", self.max_days)))
        } else {
            Outcome::pass(ev)
        }
    }
}

// ---------------------------------------------------------------------------------------------

rule_params! {
    /// TOML parameters of `[[reboot_required]]`.
    pub struct RebootRequired {
        /// rpm systems: packages whose update after boot needs a reboot (dnf's
        /// `needs-restarting -r` list by default).
        #[serde(default)]
        pub core_packages: Option<Vec<String>>,
    }
}

/// dnf's `needs-restarting --reboothint` list.
pub const CORE_PACKAGES: &[&str] = &[
    "kernel",
    "kernel-core",
    "kernel-rt",
    "glibc",
    "linux-firmware",
    "systemd",
    "dbus",
    "dbus-broker",
    "dbus-daemon",
    "microcode_ctl",
];

#[derive(Debug)]
pub struct RebootRequiredCheck {
    core_packages: Vec<String>,
}

impl CompileCheck for RebootRequired {
    fn compile(&self, _diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        Some(Box::new(RebootRequiredCheck {
            core_packages: self
                .core_packages
                .clone()
                .unwrap_or_else(|| CORE_PACKAGES.iter().map(|s| s.to_string()).collect()),
        }))
    }
}

impl RebootRequiredCheck {
    fn reboot_flag(&self, cx: &Context<'_>) -> Option<Outcome> {
        let pkgs = reboot_request(cx.sysroot)?.join(", ");
        let mut ev = Evidence::new("a package asked for a reboot").path(REBOOT_REQUIRED);
        if !pkgs.is_empty() {
            ev = ev.found(format!("requested by {pkgs}"));
        }
        Some(Outcome::fail(ev.expected("no pending reboot")))
    }

    fn core_after_boot(&self, cx: &Context<'_>, inv: &Inventory) -> Option<Outcome> {
        let btime = boot_time(cx.sysroot)?;
        let late: Vec<Evidence> = inv
            .packages
            .iter()
            .filter(|p| self.core_packages.contains(&p.name))
            .filter(|p| p.install_time.is_some_and(|t| t > btime))
            .map(|p| {
                Evidence::new(format!(
                    "{}-{}.{} was installed after the last boot",
                    p.name, p.version, p.arch
                ))
                .path(inv.path.clone())
            })
            .collect();
        (!late.is_empty()).then_some(Outcome::Fail { evidence: late })
    }
}

impl Check for RebootRequiredCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        if !cx.is_live() {
            return Outcome::not_applicable(
                "offline image: nothing is running, and its first boot starts the newest installed kernel",
            );
        }
        let Some(running) = cx.facts.kernel.clone() else {
            return Outcome::error("cannot read the running kernel (/proc/sys/kernel/osrelease)");
        };
        let inv_state = inventory(cx);
        let inv = match &inv_state.0 {
            Err(e) => return Outcome::error(e),
            Ok(None) => return Outcome::not_applicable(NO_DATABASE),
            Ok(Some(inv)) => inv,
        };
        let kernels = installed_kernels(cx.sysroot, inv);
        let mut parts = Vec::new();
        parts.extend(self.reboot_flag(cx));
        if inv.format == PackageFormat::Rpm {
            parts.extend(self.core_after_boot(cx, inv));
        }
        let Some(running_pkg) = kernels.iter().find(|k| k.release == running) else {
            if !parts.is_empty() {
                return Outcome::combine(parts, "");
            }
            let installed: Vec<&str> = kernels.iter().map(|k| k.release.as_str()).collect();
            return Outcome::not_applicable(format!(
                "the running kernel {running} was not installed by a package (a container or a \
                 custom kernel; packaged kernels: {})",
                if installed.is_empty() {
                    "none".to_string()
                } else {
                    installed.join(", ")
                }
            ));
        };
        let newest = kernels
            .iter()
            .max_by(|a, b| inv.format.compare(&a.package.version, &b.package.version))
            .unwrap_or(running_pkg);
        let ev = Evidence::new("running kernel").path("/proc/sys/kernel/osrelease");
        if inv
            .format
            .compare(&newest.package.version, &running_pkg.package.version)
            == std::cmp::Ordering::Greater
        {
            parts.push(Outcome::fail(ev.found(running.clone()).expected(format!(
                "{} (the newest installed kernel, {} {}): reboot to run it",
                newest.release, newest.package.name, newest.package.version
            ))));
        } else {
            parts.push(Outcome::pass(ev.found(format!(
                "{running}, the newest installed kernel ({} {})",
                running_pkg.package.name, running_pkg.package.version
            ))));
        }
        Outcome::combine(parts, "nothing to check")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::packages::MetadataSource;

    fn meta_with(date: Option<&str>, valid_until: Option<&str>) -> UpdateMetadata {
        let mut m = UpdateMetadata::new("apt", "/var/lib/apt/lists");
        m.sources.push(MetadataSource {
            name: "Debian-Security bookworm-security".into(),
            path: "/var/lib/apt/lists/x_InRelease".into(),
            security: true,
            date: date.map(|d| d.parse().unwrap()),
            valid_until: valid_until.map(|d| d.parse().unwrap()),
            indexes: vec![],
        });
        m
    }

    #[test]
    fn metadata_age_is_judged_against_the_limit_and_valid_until() {
        let check = PackageMetadataCheck {
            max_age_days: 7,
            missing: IfMissing::Fail,
        };
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let fresh = check.judge(&meta_with(Some("2026-11-28T02:53:00Z"), None), now);
        assert_eq!(fresh.status(), crate::rule::Status::Pass, "{fresh:?}");
        let stale = check.judge(&meta_with(Some("2026-11-01T00:00:00Z"), None), now);
        let Outcome::Fail { evidence } = stale else {
            panic!("{stale:?}")
        };
        assert_eq!(
            evidence[0].found.as_deref(),
            Some("published 2026-11-01 00:00 UTC, 28 days ago")
        );
        let expired = check.judge(
            &meta_with(Some("2026-11-27T00:00:00Z"), Some("2026-11-28T00:00:00Z")),
            now,
        );
        assert_eq!(expired.status(), crate::rule::Status::Fail);
        let undated = check.judge(&meta_with(None, None), now);
        assert_eq!(undated.status(), crate::rule::Status::Fail);
    }
}
