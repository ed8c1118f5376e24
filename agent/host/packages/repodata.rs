//! dnf's cached repository metadata: each repository's `repodata/repomd.xml` names its
//! `updateinfo` (security advisories: id, type, severity, CVE references, and the fixed package
//! versions). An installed package with the advisory's name and architecture at an older EVR is
//! missing that advisory's fix — what `dnf updateinfo list --security` lists. Caches are looked for
//! where dnf 4 (`/var/cache/dnf/<repo>-<hash>/repodata/`), dnf 5 (`/var/cache/libdnf5/…`) and
//! yum (Amazon Linux 2: `/var/cache/yum/<basearch>/<releasever>/<repo>/`, repomd.xml and the
//! downloaded files side by side, under their base names) keep them.
//!
//! Amazon Linux 2023 locks a host to one release (`/etc/dnf/vars/releasever`): its metadata only
//! carries advisories fixed in that release, so newer advisories cannot be seen from it. The
//! installed and locked releases are reported with the verdict; `latest` follows new releases.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::rpmversion::{compare_evr, format_evr};
use super::{
    AdvisorySeverity, Inventory, MetadataSource, PackageError, SecurityUpdate, UpdateMetadata,
};
use crate::sysroot::Sysroot;

pub const CACHE_GLOBS: &[&str] = &[
    "/var/cache/dnf/*/repodata/repomd.xml",
    "/var/cache/libdnf5/*/repodata/repomd.xml",
];

/// yum's cache: `/var/cache/yum/<basearch>/<releasever>/<repo>/repomd.xml`.
pub const YUM_CACHE_GLOB: &str = "/var/cache/yum/*/*/*/repomd.xml";

/// Where a cached repository's files are, by cache layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// dnf: `<repo dir>/repodata/repomd.xml`, hrefs relative to the repo dir.
    Dnf,
    /// yum: `<repo dir>/repomd.xml`, each file under the base name of its href.
    Yum,
}

impl Layout {
    fn repo_dir(self, repomd: &str) -> String {
        match self {
            Layout::Dnf => repomd.trim_end_matches("/repodata/repomd.xml").to_string(),
            Layout::Yum => repomd.trim_end_matches("/repomd.xml").to_string(),
        }
    }

    fn file(self, repo_dir: &str, href: &str) -> String {
        match self {
            Layout::Dnf => format!("{repo_dir}/{href}"),
            Layout::Yum => format!("{repo_dir}/{}", href.rsplit('/').next().unwrap_or(href)),
        }
    }
}

/// One `<data>` entry of repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoData {
    pub kind: String,
    pub href: String,
    pub timestamp: Option<i64>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// Parses repomd.xml into its data entries.
pub fn parse_repomd(path: &str, xml: &str) -> Result<Vec<RepoData>, PackageError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut out: Vec<RepoData> = Vec::new();
    let mut in_timestamp = false;
    loop {
        match reader.read_event() {
            Err(e) => {
                return Err(PackageError::format(
                    path,
                    format!("bad XML at byte {}: {e}", reader.buffer_position()),
                ))
            }
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                b"data" => out.push(RepoData {
                    kind: attr(&e, "type").unwrap_or_default(),
                    href: String::new(),
                    timestamp: None,
                }),
                b"location" => {
                    if let (Some(d), Some(href)) = (out.last_mut(), attr(&e, "href")) {
                        d.href = href;
                    }
                }
                b"timestamp" => in_timestamp = true,
                _ => {}
            },
            Ok(Event::Text(t)) if in_timestamp => {
                if let Some(d) = out.last_mut() {
                    d.timestamp = String::from_utf8_lossy(&t)
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .map(|f| f as i64);
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"timestamp" => in_timestamp = false,
            Ok(_) => {}
        }
    }
    Ok(out)
}

/// One fixed package of an advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedPackage {
    pub name: String,
    pub arch: String,
    /// `[epoch:]version-release`.
    pub evr: String,
}

/// One `<update>` of updateinfo.xml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advisory {
    pub id: String,
    pub kind: String,
    pub severity: Option<AdvisorySeverity>,
    pub cves: Vec<String>,
    pub packages: Vec<FixedPackage>,
}

/// Parses updateinfo.xml; unknown elements and attributes are ignored.
pub fn parse_updateinfo(path: &str, xml: &str) -> Result<Vec<Advisory>, PackageError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut current: Option<Advisory> = None;
    let mut text_of: Option<&'static str> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            PackageError::format(
                path,
                format!("bad XML at byte {}: {e}", reader.buffer_position()),
            )
        })?;
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"update" => {
                    current = Some(Advisory {
                        kind: attr(&e, "type").unwrap_or_default(),
                        ..Advisory::default()
                    })
                }
                b"id" => text_of = Some("id"),
                b"severity" => text_of = Some("severity"),
                b"reference" => {
                    if let Some(a) = current.as_mut() {
                        if attr(&e, "type").as_deref() == Some("cve") {
                            if let Some(id) = attr(&e, "id") {
                                if !a.cves.contains(&id) {
                                    a.cves.push(id);
                                }
                            }
                        }
                    }
                }
                b"package" => {
                    if let Some(a) = current.as_mut() {
                        let (Some(name), Some(version), Some(release)) =
                            (attr(&e, "name"), attr(&e, "version"), attr(&e, "release"))
                        else {
                            return Err(PackageError::format(
                                path,
                                format!(
                                    "advisory {}: a package without name, version or release",
                                    a.id
                                ),
                            ));
                        };
                        let epoch = attr(&e, "epoch").and_then(|e| e.parse().ok());
                        a.packages.push(FixedPackage {
                            name,
                            arch: attr(&e, "arch").unwrap_or_default(),
                            evr: format_evr(epoch, &version, &release),
                        });
                    }
                }
                _ => {}
            },
            Event::Text(t) => {
                if let (Some(field), Some(a)) = (text_of, current.as_mut()) {
                    let value = String::from_utf8_lossy(&t).trim().to_string();
                    match field {
                        "id" => a.id = value,
                        _ => a.severity = AdvisorySeverity::parse(&value),
                    }
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"id" | b"severity" => text_of = None,
                b"update" => {
                    if let Some(a) = current.take() {
                        if a.id.is_empty() {
                            return Err(PackageError::format(path, "an update without an id"));
                        }
                        out.push(a);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(out)
}

/// `amazonlinux-7f1e9a3c2b4d5e6f` → `amazonlinux` (dnf appends a hash of the repo's URL).
fn repo_id(dir: &str) -> String {
    match dir.rsplit_once('-') {
        Some((id, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            id.to_string()
        }
        _ => dir.to_string(),
    }
}

/// The release dnf substitutes for `$releasever`: `/etc/dnf/vars/releasever` (where Amazon Linux
/// 2023 records the release it is locked to, or `latest`), yum's `/etc/yum/vars/releasever`,
/// else os-release's `VERSION_ID`.
pub fn releasever(sysroot: &Sysroot) -> Option<String> {
    for path in ["/etc/dnf/vars/releasever", "/etc/yum/vars/releasever"] {
        if let Ok(text) = sysroot.read_to_string(path) {
            let v = text.trim();
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    let os = sysroot.read_to_string("/etc/os-release").ok()?;
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// What Amazon Linux 2023's release lock means for the advisories this metadata can show: the
/// installed release (`/etc/amazon-linux-release`) and the release dnf is locked to
/// (`/etc/dnf/vars/releasever`: a release, or `latest`). `None` elsewhere.
fn release_note(sysroot: &Sysroot) -> Option<String> {
    let text = sysroot.read_to_string("/etc/amazon-linux-release").ok()?;
    let installed = text.lines().next().unwrap_or("").trim().to_string();
    if !installed.contains("2023") {
        return None;
    }
    let locked = sysroot
        .read_to_string("/etc/dnf/vars/releasever")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    Some(match locked.as_deref() {
        Some("latest") => format!(
            "{installed}; dnf releasever = latest: dnf follows the newest release, so newer \
             releases' advisories show once the metadata is refreshed"
        ),
        Some(release) => format!(
            "{installed}; dnf locked to release {release} (/etc/dnf/vars/releasever): advisories \
             fixed only in newer releases are not in this metadata (dnf check-release-update)"
        ),
        None => format!(
            "{installed}: Amazon Linux 2023 is locked to its release, so advisories fixed only in \
             newer releases are not in this metadata (dnf check-release-update)"
        ),
    })
}

/// Reads dnf's and yum's caches against the installed packages. `Ok(None)` when there is no cache.
pub fn read(sysroot: &Sysroot, inv: &Inventory) -> Result<Option<UpdateMetadata>, PackageError> {
    let mut repomds = Vec::new();
    for pattern in CACHE_GLOBS {
        repomds.extend(sysroot.glob(pattern)?.into_iter().map(|p| (p, Layout::Dnf)));
    }
    let dnf = !repomds.is_empty();
    repomds.extend(
        sysroot
            .glob(YUM_CACHE_GLOB)?
            .into_iter()
            .map(|p| (p, Layout::Yum)),
    );
    if repomds.is_empty() {
        return Ok(None);
    }
    let mut meta = if dnf {
        UpdateMetadata::new("dnf", "/var/cache/dnf")
    } else {
        UpdateMetadata::new("yum", "/var/cache/yum")
    };
    if let Some(note) = release_note(sysroot) {
        meta.notes.push(note);
    }
    for (repomd, layout) in repomds {
        let repomd = repomd.to_string_lossy().into_owned();
        let repo_dir = layout.repo_dir(&repomd);
        let name = repo_id(repo_dir.rsplit('/').next().unwrap_or(&repo_dir));
        let data = match sysroot
            .read_to_string(&repomd)
            .map_err(PackageError::from)
            .and_then(|xml| parse_repomd(&repomd, &xml))
        {
            Ok(d) => d,
            Err(e) => {
                meta.problems.push(e.to_string());
                continue;
            }
        };
        let updateinfo = data.iter().find(|d| d.kind == "updateinfo");
        let date = updateinfo
            .and_then(|d| d.timestamp)
            .or_else(|| data.iter().filter_map(|d| d.timestamp).max())
            .and_then(|t| jiff::Timestamp::from_second(t).ok());
        let mut source = MetadataSource {
            name: name.clone(),
            path: repomd.clone(),
            security: updateinfo.is_some(),
            date,
            valid_until: None,
            indexes: Vec::new(),
        };
        if let Some(ui) = updateinfo {
            let path = layout.file(&repo_dir, &ui.href);
            source.indexes.push(path.clone());
            let advisories = super::apt::read_index(sysroot, &path)
                .and_then(|bytes| parse_updateinfo(&path, &String::from_utf8_lossy(&bytes)));
            match advisories {
                Ok(advisories) => {
                    for a in advisories.iter().filter(|a| a.kind == "security") {
                        for fixed in &a.packages {
                            for p in inv.named(&fixed.name).filter(|p| p.arch == fixed.arch) {
                                if compare_evr(&p.version, &fixed.evr).is_lt() {
                                    meta.updates.push(SecurityUpdate {
                                        name: p.name.clone(),
                                        arch: p.arch.clone(),
                                        installed: p.version.clone(),
                                        fixed: fixed.evr.clone(),
                                        advisory: Some(a.id.clone()),
                                        severity: a.severity,
                                        cves: a.cves.clone(),
                                        origin: name.clone(),
                                        index: path.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
                Err(e) => meta.problems.push(e.to_string()),
            }
        }
        meta.sources.push(source);
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update author="alas" from="alas@amazon.com" status="final" type="security" version="2.0">
    <id>ALAS2023-2024-001</id>
    <title>Amazon Linux 2023 - ALAS2023-2024-001: important priority package update for openssl</title>
    <issued date="2024-01-04 00:00"/>
    <severity>Important</severity>
    <future-field>ignored</future-field>
    <references>
      <reference href="https://x/CVE-2023-5678" id="CVE-2023-5678" title="" type="cve"/>
      <reference href="https://x/CVE-2023-6129" id="CVE-2023-6129" title="" type="cve"/>
      <reference href="https://x/bug" id="1" type="bugzilla"/>
    </references>
    <pkglist><collection short="amazon-linux-2023---latest"><name>amazon-linux-2023---latest</name>
      <package arch="x86_64" epoch="1" name="openssl-libs" release="1.amzn2023.0.10" version="3.0.8">
        <filename>Packages/openssl-libs-3.0.8-1.amzn2023.0.10.x86_64.rpm</filename></package>
      <package arch="src" epoch="1" name="openssl" release="1.amzn2023.0.10" version="3.0.8"/>
    </collection></pkglist>
  </update>
  <update type="bugfix"><id>ALAS2023-2024-002</id><severity>Low</severity></update>
</updates>"#;

    #[test]
    fn advisories_with_severity_cves_and_fixed_versions() {
        let a = parse_updateinfo("/u.xml", UPDATEINFO).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, "ALAS2023-2024-001");
        assert_eq!(a[0].kind, "security");
        assert_eq!(a[0].severity, Some(AdvisorySeverity::Important));
        assert_eq!(a[0].cves, vec!["CVE-2023-5678", "CVE-2023-6129"]);
        assert_eq!(
            a[0].packages[0],
            FixedPackage {
                name: "openssl-libs".into(),
                arch: "x86_64".into(),
                evr: "1:3.0.8-1.amzn2023.0.10".into()
            }
        );
        assert_eq!(a[1].kind, "bugfix");
    }

    #[test]
    fn malformed_updateinfo_is_an_error_naming_the_file() {
        let e = parse_updateinfo(
            "/c/u.xml",
            "<updates><update type=\"security\"><id>A</id></pkglist>",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/c/u.xml: bad XML"), "{e}");
        let e = parse_updateinfo(
            "/c/u.xml",
            "<updates><update type=\"security\"><id>A-1</id><pkglist><package name=\"x\"/></pkglist></update></updates>",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/c/u.xml: advisory A-1: a package without name, version or release"
        );
    }

    #[test]
    fn repomd_locations_and_timestamps() {
        let xml = r#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo">
          <revision>1700000000</revision>
          <data type="primary"><location href="repodata/abc-primary.xml.gz"/><timestamp>1700000001</timestamp></data>
          <data type="updateinfo"><location href="repodata/def-updateinfo.xml.xz"/><timestamp>1700000002.5</timestamp></data>
        </repomd>"#;
        let d = parse_repomd("/r.xml", xml).unwrap();
        assert_eq!(d[1].kind, "updateinfo");
        assert_eq!(d[1].href, "repodata/def-updateinfo.xml.xz");
        assert_eq!(d[1].timestamp, Some(1_700_000_002));
        assert_eq!(repo_id("amazonlinux-7f1e9a3c2b4d5e6f"), "amazonlinux");
        assert_eq!(repo_id("kernel-livepatch"), "kernel-livepatch");
    }
}
