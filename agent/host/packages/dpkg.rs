//! dpkg's database of installed packages, `/var/lib/dpkg/status`, read straight from the sysroot
//! (no `dpkg-query`, so a mounted AMI works too). Only paragraphs whose `Status` is
//! `install ok installed` count: half-installed, config-files-only and deinstalled packages are
//! not what is running. Damage (garbage lines, a paragraph without a name or version, the same
//! `name:arch` twice) is reported with its line and the rest is still read.

use super::deb822::paragraphs;
use super::debversion::DebVersion;
use super::{Installed, Inventory, PackageError, PackageFormat};
use crate::sysroot::Sysroot;

pub const STATUS: &str = "/var/lib/dpkg/status";

/// Reads the dpkg status file; `Ok(None)` when the sysroot has none.
pub fn read(sysroot: &Sysroot) -> Result<Option<Inventory>, PackageError> {
    let bytes = match sysroot.read(STATUS) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let modified = sysroot
        .metadata(STATUS)
        .ok()
        .and_then(|m| m.modified().ok());
    let mut inv = parse(&String::from_utf8_lossy(&bytes));
    inv.modified = modified;
    Ok(Some(inv))
}

/// Parses the text of a status file.
pub fn parse(text: &str) -> Inventory {
    let mut inv = Inventory::new(PackageFormat::Deb, STATUS);
    let mut seen = std::collections::HashMap::new();
    let bad = paragraphs(text, |p| {
        let Some(name) = p.get("Package") else {
            inv.problems.push(format!(
                "{STATUS}:{}: paragraph without a Package field",
                p.line
            ));
            return;
        };
        // `want ok installed`: a held (`hold`) or to-be-removed (`deinstall`) package is still
        // installed and running; `reinstreq` and every other state is not a usable install
        let status: Vec<_> = p.get("Status").unwrap_or("").split_whitespace().collect();
        if !matches!(status.as_slice(), [_, "ok", "installed"]) {
            return;
        }
        let Some(version) = p.get("Version") else {
            inv.problems.push(format!(
                "{STATUS}:{}: installed package {name} has no Version",
                p.line
            ));
            return;
        };
        if let Err(e) = DebVersion::parse(version) {
            inv.problems
                .push(format!("{STATUS}:{}: package {name}: {e}", p.line));
            return;
        }
        let arch = p.get("Architecture").unwrap_or("").to_string();
        if let Some(first) = seen.insert((name.to_string(), arch.clone()), p.line) {
            inv.problems.push(format!(
                "{STATUS}:{}: package {name}:{arch} is listed again (first at line {first})",
                p.line
            ));
            return;
        }
        inv.packages.push(Installed {
            name: name.to_string(),
            arch,
            version: version.to_string(),
            source: p
                .get("Source")
                .map(|s| s.split_whitespace().next().unwrap_or(s).to_string()),
            install_time: None,
        });
    });
    if !text.is_empty() && !text.ends_with('\n') {
        let lines = text.split('\n').count();
        inv.problems.push(format!(
            "{STATUS}:{lines}: the file ends in the middle of a line (truncated?)"
        ));
    }
    inv.problems.extend(
        bad.into_iter()
            .map(|m| format!("{STATUS}:{}: not a field: `{}`", m.line, m.text)),
    );
    inv.packages
        .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_TEXT: &str = "\
Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library
 multi-line

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: held
Status: hold ok installed
Architecture: all
Source: held-src (1.2-1)
Version: 1.2-1+b1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2
";

    #[test]
    fn only_installed_packages_count() {
        let inv = parse(STATUS_TEXT);
        assert!(inv.problems.is_empty(), "{:?}", inv.problems);
        let got: Vec<_> = inv
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.arch.as_str(),
                    p.version.as_str(),
                    p.source.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("held", "all", "1.2-1+b1", Some("held-src")),
                ("libc6", "amd64", "2.36-9+deb12u4", Some("glibc")),
                ("openssl", "amd64", "3.0.11-1~deb12u2", None),
            ]
        );
    }

    #[test]
    fn damage_is_reported_with_lines_and_the_rest_is_read() {
        let text = format!(
            "{STATUS_TEXT}\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n\
             Package: nover\nStatus: install ok installed\n\nStatus: install ok installed\nVersion: 1\n\n\
             Package: badver\nStatus: install ok installed\nVersion: x:1\n\ngarbage\nPackage: trunc\nStatus: install ok inst"
        );
        let inv = parse(&text);
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            vec!["held", "libc6", "openssl"]
        );
        assert_eq!(
            inv.problems,
            vec![
                "/var/lib/dpkg/status:25: package libc6:amd64 is listed again (first at line 1)",
                "/var/lib/dpkg/status:30: installed package nover has no Version",
                "/var/lib/dpkg/status:33: paragraph without a Package field",
                "/var/lib/dpkg/status:36: package badver: version `x:1` has an epoch that is not a number",
                "/var/lib/dpkg/status:42: the file ends in the middle of a line (truncated?)",
                "/var/lib/dpkg/status:40: not a field: `garbage`",
            ]
        );
    }
}
