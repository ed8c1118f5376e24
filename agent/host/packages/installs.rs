//! What the package database says about the system's life beyond its package list: the newest
//! install or upgrade, the kernels installed by packages and the release each boots as, a
//! package's request for a reboot (`/run/reboot-required`), and when the running kernel booted.

use jiff::Timestamp;

use super::{Installed, Inventory, PackageFormat};
use crate::sysroot::Sysroot;

/// The newest package install or upgrade: rpm records each package's `INSTALLTIME`; dpkg
/// rewrites a package's file list (`/var/lib/dpkg/info/<pkg>.list`) when it installs or upgrades
/// it, so the newest list's modification time is the newest install (else the status file's,
/// which removals also touch). `None` when neither says.
pub fn newest_install(
    sysroot: &Sysroot,
    inv: &Inventory,
) -> Result<Option<(Timestamp, String)>, String> {
    match inv.format {
        PackageFormat::Rpm => Ok(inv
            .packages
            .iter()
            .filter_map(|p| {
                let t = Timestamp::from_second(p.install_time?).ok()?;
                Some((t, format!("{}-{}.{}", p.name, p.version, p.arch)))
            })
            .max_by_key(|(t, _)| *t)),
        PackageFormat::Deb => {
            let lists = sysroot
                .glob("/var/lib/dpkg/info/*.list")
                .map_err(|e| e.to_string())?;
            let mut newest: Option<(Timestamp, String)> = None;
            for list in &lists {
                let md = match sysroot.symlink_metadata(list) {
                    Ok(md) => md,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let Some(t) = md.modified().ok().and_then(|m| Timestamp::try_from(m).ok()) else {
                    continue;
                };
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    let name = list
                        .file_name()
                        .map(|n| n.to_string_lossy().trim_end_matches(".list").to_string())
                        .unwrap_or_default();
                    newest = Some((t, name));
                }
            }
            Ok(newest.or_else(|| {
                let t = Timestamp::try_from(inv.modified?).ok()?;
                Some((t, format!("{} (last change)", inv.path)))
            }))
        }
    }
}

/// An installed kernel: the release `uname -r` would print when it runs, and its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledKernel {
    pub release: String,
    pub package: Installed,
}

/// The kernels installed by packages, with the release each boots as. deb: `linux-image-<release>`
/// packages (not the `linux-image-amd64` meta packages: a release has a `/lib/modules` or
/// `/boot/vmlinuz-` of that name). rpm: `kernel`/`kernel-core` as `version-release.arch`.
pub fn installed_kernels(sysroot: &Sysroot, inv: &Inventory) -> Vec<InstalledKernel> {
    let mut out = Vec::new();
    for p in &inv.packages {
        let release = match inv.format {
            PackageFormat::Deb => {
                let Some(rest) = p.name.strip_prefix("linux-image-") else {
                    continue;
                };
                let rest = rest.strip_prefix("unsigned-").unwrap_or(rest);
                let shipped = sysroot.exists(format!("/lib/modules/{rest}"))
                    || sysroot.exists(format!("/boot/vmlinuz-{rest}"));
                if !shipped {
                    continue;
                }
                rest.to_string()
            }
            PackageFormat::Rpm => {
                if !matches!(p.name.as_str(), "kernel" | "kernel-core" | "kernel-rt-core") {
                    continue;
                }
                let evr = crate::host::packages::rpmversion::Evr::parse(&p.version);
                format!("{}-{}.{}", evr.version, evr.release, p.arch)
            }
        };
        if !out.iter().any(|k: &InstalledKernel| k.release == release) {
            out.push(InstalledKernel {
                release,
                package: p.clone(),
            });
        }
    }
    out
}

/// A package's request for a reboot (`/run/reboot-required`, Debian and Ubuntu's
/// update-notifier convention): `None` when there is none, else the packages that asked
/// (`/run/reboot-required.pkgs`, possibly empty).
pub fn reboot_request(sysroot: &Sysroot) -> Option<Vec<String>> {
    if !sysroot.exists(REBOOT_REQUIRED) {
        return None;
    }
    Some(
        sysroot
            .read_to_string("/run/reboot-required.pkgs")
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    )
}

/// The flag file of [`reboot_request`].
pub const REBOOT_REQUIRED: &str = "/run/reboot-required";

/// When the running kernel booted (`btime` of `/proc/stat`, seconds since the epoch), on a live
/// sysroot.
pub fn boot_time(sysroot: &Sysroot) -> Option<i64> {
    let stat = sysroot.read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}
