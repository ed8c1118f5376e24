//! Truth test of the CIS profiles against the reference auditor. OpenSCAP (`oscap-chroot`) with
//! ComplianceAsCode's Debian 12 data stream (`../shared/reference/ssg-debian12-ds.xml.xz`, see its
//! README) judges a copy of the debootstrapped Debian 12 root (`common::debootstrap_root`) under
//! CaC's CIS Level 1 and Level 2 Server profiles, and `ec2-harden check --profile
//! cis-level1-server|cis-level2-server` judges the same tree. Over the mapping of
//! `tests/cis/cac-rules.toml`, every CaC rule that both tools decide (pass or fail) must get the
//! same verdict from both, or the disagreement must be listed in
//! `tests/cis/known-differences.toml`, and every occurrence listed there must still happen. Then
//! CaC's own bash remediation for the profile runs in the copy and both tools judge again.
//!
//! The remediation runs by `chroot` inside private mount, PID, UTS and IPC namespaces, with a
//! read-only `/proc` of its own, and, once inside the root, with a capability bounding set that
//! keeps only file ownership and permission work and setuid/setgid: no capability that reaches the
//! kernel's network, module, audit, mount or clock state, nor another chroot, so its `sysctl -w`,
//! `nft` and `mount -o remount` calls fail instead of changing this machine. It keeps the network:
//! its `apt-get install` lines fetch from Debian's archive, as on a real host. Its output is kept
//! in `target/openscap/`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use common::cac::{entry_problems, evidence_line, mapping, reference_dir, ANY_OF};
use common::repo;

/// One CIS profile as each tool names it.
struct CisProfile {
    ours: &'static str,
    cac: &'static str,
}

/// The profile ids are those `oscap info` lists for the data stream.
const PROFILES: [CisProfile; 2] = [
    CisProfile {
        ours: "cis-level1-server",
        cac: "xccdf_org.ssgproject.content_profile_cis_level1_server",
    },
    CisProfile {
        ours: "cis-level2-server",
        cac: "xccdf_org.ssgproject.content_profile_cis_level2_server",
    },
];

const PHASES: [&str; 2] = ["before", "after"];

/// The prefix of every rule id in ComplianceAsCode's data streams; the mapping and the
/// known-differences file use the short ids.
const CAC_RULE_PREFIX: &str = "xccdf_org.ssgproject.content_rule_";

/// Why a disagreement is accepted (`category` in the known-differences file).
const CATEGORIES: &[&str] = &[
    // CaC wants more than the CIS audit procedure it implements
    "cac-stricter",
    // CaC passes a state the CIS audit procedure fails
    "cac-misses",
    // the two tools cut the recommendation differently: one ec2-harden rule judges what several
    // CaC rules split (mode, owner and group), or the reverse
    "granularity",
    // ec2-harden deliberately judges otherwise
    "policy",
    // the ec2-harden rule is wrong; the entry goes when the rule is fixed
    "ours-bug",
];

/// What the remediation may do as root (`common::CONFINED_CAPS`): own, read, write and chmod
/// files, become other users (apt's download method, maintainer scripts), signal its own processes
/// (in its PID namespace).
const REMEDIATION_CAPS: &str = common::CONFINED_CAPS;

/// CaC's remediation of a whole profile takes one to three minutes here; a hang must not stall CI.
const REMEDIATION_TIMEOUT_SECS: u64 = 900;

/// Fewer decided pairs than this means CaC found the tree not applicable (its `system_with_kernel`
/// platform is the `linux-base` package) or the dpkginfo probe failed.
const MIN_DECIDED: usize = 100;

// --- the mapping and the known differences ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownFile {
    difference: Vec<Known>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Known {
    cac: String,
    ours: Vec<String>,
    category: String,
    reason: String,
    seen: Vec<Seen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seen {
    profile: String,
    phase: String,
    cac: String,
    ours: String,
}

/// (profile, phase, CaC rule) of one comparison.
type Key = (String, String, String);

/// Verdicts of a disagreement: (CaC's, ec2-harden's).
type Verdicts = (String, String);

/// The known-differences file as (profile, phase, CaC rule) -> (CaC's verdict, ours), checked
/// against the mapping; every problem is returned rather than the first.
fn known_differences(
    mapping: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<Key, Verdicts>, Vec<String>> {
    let file: KnownFile = common::cac::read_toml("tests/cis/known-differences.toml");
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for k in &file.difference {
        problems.extend(entry_problems(
            mapping,
            &k.cac,
            &k.ours,
            &k.category,
            CATEGORIES,
            &k.reason,
            k.seen.len(),
        ));
        for s in &k.seen {
            if !PROFILES.iter().any(|p| p.ours == s.profile) {
                problems.push(format!("{}: unknown profile `{}`", k.cac, s.profile));
            }
            if !PHASES.contains(&s.phase.as_str()) {
                problems.push(format!("{}: unknown phase `{}`", k.cac, s.phase));
            }
            let verdicts = [s.cac.as_str(), s.ours.as_str()];
            if verdicts.iter().any(|v| *v != "pass" && *v != "fail") || s.cac == s.ours {
                problems.push(format!(
                    "{} {} {}: cac = {}, ours = {} is no disagreement",
                    k.cac, s.profile, s.phase, s.cac, s.ours
                ));
            }
            let key = (s.profile.clone(), s.phase.clone(), k.cac.clone());
            if out.insert(key, (s.cac.clone(), s.ours.clone())).is_some() {
                problems.push(format!("{} {} {}: listed twice", k.cac, s.profile, s.phase));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[test]
fn known_differences_are_well_formed() {
    let mapping = mapping();
    let known = known_differences(&mapping)
        .unwrap_or_else(|p| panic!("tests/cis/known-differences.toml:\n  {}", p.join("\n  ")));
    assert!(!known.is_empty());
}

// --- ComplianceAsCode's verdicts -------------------------------------------------------------

/// An XCCDF results document: rule id (short) -> result, and each rule's title.
struct Xccdf {
    results: BTreeMap<String, String>,
    titles: BTreeMap<String, String>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

fn short(id: &str) -> String {
    id.strip_prefix(CAC_RULE_PREFIX).unwrap_or(id).to_string()
}

/// Reads the `<rule-result idref=...><result>...</result>` of a TestResult and the `<title>` of
/// each `<Rule>` (namespace prefixes ignored).
fn parse_xccdf(xml: &str) -> Xccdf {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut out = Xccdf {
        results: BTreeMap::new(),
        titles: BTreeMap::new(),
    };
    // the Rule whose title is next, the rule-result being read, and what the next text is
    let mut rule: Option<String> = None;
    let mut rule_result: Option<String> = None;
    let mut text_for: Option<(bool, String)> = None;
    loop {
        match reader.read_event() {
            Err(e) => panic!(
                "XCCDF results: bad XML at byte {}: {e}",
                reader.buffer_position()
            ),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"Rule" => rule = attr(&e, "id").map(|id| short(&id)),
                b"title" => {
                    if let Some(id) = rule.take() {
                        text_for = Some((false, id));
                    }
                }
                b"rule-result" => rule_result = attr(&e, "idref").map(|id| short(&id)),
                b"result" => {
                    if let Some(id) = rule_result.clone() {
                        text_for = Some((true, id));
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if let Some((is_result, id)) = text_for.take() {
                    let text = String::from_utf8_lossy(&t).trim().to_string();
                    if is_result {
                        out.results.insert(id, text);
                    } else {
                        out.titles.insert(id, text);
                    }
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"rule-result" => rule_result = None,
            Ok(_) => {}
        }
    }
    out
}

#[test]
fn xccdf_rule_results_are_read_with_their_titles() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Benchmark xmlns="http://checklists.nist.gov/xccdf/1.2" id="b">
  <Group id="g"><title>A group</title>
    <Rule id="xccdf_org.ssgproject.content_rule_sshd_set_max_sessions" selected="false">
      <title>Set SSH MaxSessions limit</title><description>not <b>this</b></description>
    </Rule>
    <Rule id="xccdf_org.ssgproject.content_rule_banner_etc_issue_cis"><title>Banner</title></Rule>
  </Group>
  <TestResult id="t">
    <title>OSCAP Scan Result</title>
    <rule-result idref="xccdf_org.ssgproject.content_rule_sshd_set_max_sessions" role="full">
      <result>fail</result><ident system="x">CCE-1</ident>
    </rule-result>
    <rule-result idref="xccdf_org.ssgproject.content_rule_banner_etc_issue_cis">
      <result>notapplicable</result>
    </rule-result>
  </TestResult>
</Benchmark>"#;
    let x = parse_xccdf(xml);
    assert_eq!(
        x.results.into_iter().collect::<Vec<_>>(),
        vec![
            (
                "banner_etc_issue_cis".to_string(),
                "notapplicable".to_string()
            ),
            ("sshd_set_max_sessions".to_string(), "fail".to_string()),
        ]
    );
    assert_eq!(
        x.titles["sshd_set_max_sessions"],
        "Set SSH MaxSessions limit"
    );
    assert_eq!(x.titles["banner_etc_issue_cis"], "Banner");
    assert_eq!(x.titles.len(), 2);
}

/// The data stream, decompressed into `dir`. A missing reference fails the test: it must never
/// pass without the auditor's content.
fn data_stream(dir: &Path) -> PathBuf {
    let xz = reference_dir().join("ssg-debian12-ds.xml.xz");
    let file = fs::File::open(&xz).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nthe reference auditor's content (ComplianceAsCode's data streams, \
             ../shared/reference/README.md) must be beside the project; this test fails without it",
            xz.display()
        )
    });
    let mut xml = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut xml)
        .unwrap_or_else(|e| panic!("{}: {e:?}", xz.display()));
    let ds = dir.join("ssg-debian12-ds.xml");
    fs::write(&ds, xml).unwrap();
    ds
}

/// An apt configuration for OpenSCAP's dpkginfo probe: in chroot mode the probe reads the apt
/// configuration of the machine it runs on, and a host setting such as an empty
/// `Dir::Cache::pkgcache` breaks it; this file reads no `apt.conf.d` at all. (The probe writes
/// `pkgcache.bin` into the audited tree, a copy.)
fn apt_config(dir: &Path) -> PathBuf {
    let parts = dir.join("apt-parts");
    fs::create_dir_all(&parts).unwrap();
    let conf = dir.join("apt.conf");
    fs::write(&conf, format!("Dir::Etc::parts \"{}\";\n", parts.display())).unwrap();
    conf
}

/// `oscap-chroot ROOT xccdf eval --profile P` and its rule results.
fn cac_eval(root: &Path, profile: &CisProfile, ds: &Path, apt_conf: &Path, work: &Path) -> Xccdf {
    let results = work.join(format!("{}-results.xml", profile.ours));
    let out = Command::new("oscap-chroot")
        .arg(root)
        .args(["xccdf", "eval", "--profile", profile.cac, "--results"])
        .arg(&results)
        .arg(ds)
        .env("APT_CONFIG", apt_conf)
        .stdin(Stdio::null())
        .output()
        .expect("oscap-chroot is installed (tests/run.sh installs openscap-utils)");
    // 0: every rule passed, 2: some failed; anything else is an error of the evaluation
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "oscap-chroot {} xccdf eval --profile {}: {}\n{}",
        root.display(),
        profile.cac,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let x = parse_xccdf(&fs::read_to_string(&results).unwrap());
    fs::remove_file(&results).unwrap();
    assert!(!x.results.is_empty(), "no rule-result in the XCCDF results");
    x
}

// --- ec2-harden's verdicts -------------------------------------------------------------------

/// One rule of our report: its status and its evidence on one line.
struct Ours {
    status: String,
    evidence: String,
}

/// `ec2-harden check --root ROOT --stage run --offline --profile P`: rule id -> result.
fn ours_eval(root: &Path, profile: &str) -> BTreeMap<String, Ours> {
    let (code, report, stderr) =
        common::check_json(root, &["--stage", "run", "--offline", "--profile", profile]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    assert_eq!(report["profile"], profile);
    let results: BTreeMap<String, Ours> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                Ours {
                    status: r["status"].as_str().expect("status").to_string(),
                    evidence: evidence_line(r, 3),
                },
            )
        })
        .collect();
    let errors: Vec<String> = results
        .iter()
        .filter(|(_, o)| o.status == "error")
        .map(|(id, o)| format!("{id}: {}", o.evidence))
        .collect();
    assert!(
        errors.is_empty(),
        "{profile}: rules in error:\n  {}",
        errors.join("\n  ")
    );
    results
}

// --- ComplianceAsCode's remediation ----------------------------------------------------------

/// Generates CaC's bash remediation for the profile and runs it in `root` (see the module
/// documentation for the confinement); returns how long it ran. Its output goes to
/// `target/openscap/<profile>-remediation.log`. The script's own exit status is not judged: in a
/// tree without a running system some of its steps fail by design (starting services, loading
/// rulesets, setting live sysctls).
fn remediate(root: &Path, profile: &CisProfile, ds: &Path) -> Duration {
    let script = Command::new("oscap")
        .args([
            "xccdf",
            "generate",
            "fix",
            "--fix-type",
            "bash",
            "--profile",
            profile.cac,
        ])
        .arg(ds)
        .output()
        .expect("run oscap");
    assert!(
        script.status.success(),
        "oscap xccdf generate fix --profile {}: {}",
        profile.cac,
        String::from_utf8_lossy(&script.stderr)
    );
    let inside = "/root/cac-remediation.sh";
    fs::write(root.join(inside.trim_start_matches('/')), &script.stdout).unwrap();
    // CaC's kernel-module remediation writes /etc/modprobe.d/<module>.conf and fails where the
    // directory does not exist (minbase does not install kmod, which ships it)
    fs::create_dir_all(root.join("etc/modprobe.d")).unwrap();
    let confined = format!(
        "mount -t proc -o ro,nosuid,nodev,noexec proc \"$1/proc\" && \
         exec chroot \"$1\" /usr/bin/setpriv --bounding-set={REMEDIATION_CAPS} --inh-caps=-all -- \
         /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
         DEBIAN_FRONTEND=noninteractive bash {inside}"
    );
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["--kill-after=10", &REMEDIATION_TIMEOUT_SECS.to_string()])
        .args([
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &confined,
            "sh",
        ])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("run timeout, unshare, setpriv (coreutils, util-linux)");
    let took = started.elapsed();
    let logs = repo().join("target/openscap");
    fs::create_dir_all(&logs).unwrap();
    let log = logs.join(format!("{}-remediation.log", profile.ours));
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    fs::write(&log, &text).unwrap();
    assert!(
        !matches!(out.status.code(), Some(124 | 137) | None),
        "the remediation did not finish in {REMEDIATION_TIMEOUT_SECS} s ({}); its output: {}",
        out.status,
        log.display()
    );
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("Remediating rule"),
        "the remediation never started ({}); its output: {}",
        out.status,
        log.display()
    );
    // the namespaces ended with the script: nothing it mounted is left behind
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount under {} outlived the remediation",
        root.display()
    );
    fs::remove_file(root.join(inside.trim_start_matches('/'))).unwrap();
    took
}

// --- the comparison --------------------------------------------------------------------------

/// Both tools' verdicts on one tree under one profile.
struct Phase {
    cac: Xccdf,
    ours: BTreeMap<String, Ours>,
}

/// One profile's run: before and after remediation, the baseline's rule ids (from an ec2-profile
/// run), and the remediation's duration.
struct ProfileRun {
    phases: [Phase; 2],
    baseline_rules: BTreeSet<String>,
    remediation: Duration,
}

fn run_profile(profile: &CisProfile, ds: &Path, apt_conf: &Path, work: &Path) -> ProfileRun {
    let root = common::debootstrap_copy(&format!("ec2h-openscap-{}-", profile.ours));
    let root = root.path();
    let (_, ec2, stderr) = common::check_json(root, &["--stage", "run", "--offline"]);
    let baseline_rules = ec2["results"]
        .as_array()
        .unwrap_or_else(|| panic!("ec2 profile report: {stderr}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let before = Phase {
        cac: cac_eval(root, profile, ds, apt_conf, work),
        ours: ours_eval(root, profile.ours),
    };
    let remediation = remediate(root, profile, ds);
    let after = Phase {
        cac: cac_eval(root, profile, ds, apt_conf, work),
        ours: ours_eval(root, profile.ours),
    };
    ProfileRun {
        phases: [before, after],
        baseline_rules,
        remediation,
    }
}

/// A CaC rule both tools decided differently.
struct Disagreement {
    key: Key,
    verdicts: Verdicts,
    detail: String,
}

#[derive(Default)]
struct Comparison {
    decided: usize,
    agree: usize,
    disagreements: Vec<Disagreement>,
    /// CaC's verdict was not pass or fail (notapplicable, notchecked, unknown, error, ...).
    cac_undecided: usize,
    /// None of our mapped rules passed or failed (not applicable, or none in the profile).
    ours_undecided: usize,
    /// Mapped rules of our baseline that CaC's profile selects and ours does not.
    unselected: Vec<String>,
}

fn compare(
    profile: &str,
    phase: &str,
    p: &Phase,
    mapping: &BTreeMap<String, Vec<String>>,
    baseline_rules: &BTreeSet<String>,
) -> Comparison {
    let mut c = Comparison::default();
    for (rule, result) in &p.cac.results {
        let Some(ours_ids) = mapping.get(rule) else {
            continue;
        };
        if result == "notselected" {
            continue;
        }
        for id in ours_ids {
            if baseline_rules.contains(id) && !p.ours.contains_key(id) {
                c.unselected.push(format!("{rule} -> {id}"));
            }
        }
        if result != "pass" && result != "fail" {
            c.cac_undecided += 1;
            continue;
        }
        let decided: Vec<(&String, &Ours)> = ours_ids
            .iter()
            .filter_map(|id| p.ours.get(id).map(|o| (id, o)))
            .filter(|(_, o)| o.status == "pass" || o.status == "fail")
            .collect();
        if decided.is_empty() {
            c.ours_undecided += 1;
            continue;
        }
        let pass = if ANY_OF.contains(&rule.as_str()) {
            decided.iter().any(|(_, o)| o.status == "pass")
        } else {
            decided.iter().all(|(_, o)| o.status == "pass")
        };
        let ours = if pass { "pass" } else { "fail" };
        c.decided += 1;
        if ours == result {
            c.agree += 1;
            continue;
        }
        let mut detail = format!(
            "  CaC  {rule} ({}): {result}\n",
            p.cac
                .titles
                .get(rule)
                .map(String::as_str)
                .unwrap_or("no title")
        );
        for (id, o) in &decided {
            detail.push_str(&format!("  ours {id}: {} - {}\n", o.status, o.evidence));
        }
        c.disagreements.push(Disagreement {
            key: (profile.to_string(), phase.to_string(), rule.clone()),
            verdicts: (result.clone(), ours.to_string()),
            detail,
        });
    }
    c
}

/// `seen` lines for the known-differences file, to paste after investigating.
fn seen_line(d: &Disagreement) -> String {
    format!(
        "  {{ profile = \"{}\", phase = \"{}\", cac = \"{}\", ours = \"{}\" }},",
        d.key.0, d.key.1, d.verdicts.0, d.verdicts.1
    )
}

#[test]
#[ignore = "needs root, network, tools: oscap, a debootstrapped Debian 12 root, Debian's archive for CaC's remediation"]
fn cis_profiles_agree_with_complianceascode_before_and_after_its_remediation() {
    let started = Instant::now();
    let mapping = mapping();
    let known = known_differences(&mapping)
        .unwrap_or_else(|p| panic!("tests/cis/known-differences.toml:\n  {}", p.join("\n  ")));
    let work = tempfile::Builder::new()
        .prefix("ec2h-openscap-")
        .tempdir()
        .unwrap();
    let ds = data_stream(work.path());
    let apt_conf = apt_config(work.path());
    // the cached root is built (or checked) once, before the two profiles copy it in parallel
    common::debootstrap_root();
    let runs: Vec<ProfileRun> = std::thread::scope(|s| {
        let handles: Vec<_> = PROFILES
            .iter()
            .map(|p| {
                let (ds, apt_conf, work) = (&ds, &apt_conf, work.path());
                s.spawn(move || run_profile(p, ds, apt_conf, work))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });

    let mut summary = String::from(
        "\nec2-harden CIS profiles vs ComplianceAsCode (OpenSCAP) on a debootstrapped Debian 12 root\n\
         profile            phase   decided  agree  differ  agreement  CaC-undecided  ours-undecided\n",
    );
    let mut occurred = BTreeSet::new();
    let mut new = Vec::new();
    let mut problems = Vec::new();
    for (profile, run) in PROFILES.iter().zip(&runs) {
        for (phase, p) in PHASES.iter().zip(&run.phases) {
            let c = compare(profile.ours, phase, p, &mapping, &run.baseline_rules);
            summary.push_str(&format!(
                "{:<18} {:<7} {:>7} {:>6} {:>7} {:>9.1}% {:>14} {:>15}\n",
                profile.ours,
                phase,
                c.decided,
                c.agree,
                c.disagreements.len(),
                100.0 * c.agree as f64 / c.decided.max(1) as f64,
                c.cac_undecided,
                c.ours_undecided
            ));
            if c.decided < MIN_DECIDED {
                problems.push(format!(
                    "{} {phase}: only {} CaC rules decided by both tools (at least {MIN_DECIDED} \
                     expected): is linux-base in the root (CaC's machine platform) and did \
                     the dpkginfo probe work?",
                    profile.ours, c.decided
                ));
            }
            if !c.unselected.is_empty() {
                problems.push(format!(
                    "{} {phase}: CaC's profile selects these mapped rules, ours does not:\n    {}",
                    profile.ours,
                    c.unselected.join("\n    ")
                ));
            }
            for d in c.disagreements {
                occurred.insert(d.key.clone());
                match known.get(&d.key) {
                    Some(v) if *v == d.verdicts => {}
                    _ => new.push(d),
                }
            }
        }
        summary.push_str(&format!(
            "{:<18} CaC's remediation ran {:.0} s\n",
            profile.ours,
            run.remediation.as_secs_f64()
        ));
    }
    summary.push_str(&format!(
        "known differences listed: {}; the whole test took {:.0} s\n",
        known.len(),
        started.elapsed().as_secs_f64()
    ));
    // on stdout directly, not through the test harness's capture: CI logs show it on success too
    std::io::stdout().write_all(summary.as_bytes()).unwrap();

    for d in &new {
        let listed = known
            .get(&d.key)
            .map(|(c, o)| format!(" (listed with cac = {c}, ours = {o})"))
            .unwrap_or_default();
        problems.push(format!(
            "new disagreement, {} {}: {}{listed}\n{}{}",
            d.key.0,
            d.key.1,
            d.key.2,
            d.detail,
            seen_line(d)
        ));
    }
    for (key, (c, o)) in &known {
        if !occurred.contains(key) {
            problems.push(format!(
                "stale entry of tests/cis/known-differences.toml: {} {} {} (cac = {c}, ours = {o}) \
                 no longer disagrees: remove it",
                key.0, key.1, key.2
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n{}", summary, problems.join("\n"));
}
