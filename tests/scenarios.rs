//! ComplianceAsCode's own rule test scenarios as a test suite for the CIS profiles.
//!
//! ComplianceAsCode ships, per rule, bash scenarios that put a system into a compliant
//! (`NAME.pass.sh`) or non-compliant (`NAME.fail.sh`) state. `tests/scenarios/render.py` renders
//! them for Debian 12 with ComplianceAsCode's own test tooling (the pinned source tarball in
//! `../shared/reference/`), for every CaC rule of the CIS Debian 12 server levels; the rendered
//! tree is cached under `target/scenarios/` by the digests of the tarball and of the script.
//!
//! For each scenario of a CaC rule that `tests/cis/cac-rules.toml` maps to rules of the
//! `debian-12` baseline's Level 2 Server profile, the script runs in an overlay of the cached
//! debootstrapped root (the root itself is never written), confined: private mount, network,
//! PID, UTS and IPC namespaces; no `/proc`, `/sys` or `/dev` of this machine (a `/dev` of its
//! own with the null, zero, full and random devices); a capability bounding set limited to file
//! ownership and permissions and setuid/setgid inside the chroot, so `sysctl -w`, `nft`,
//! `modprobe`, `mount` and `auditctl` cannot reach this machine's kernel; and a timeout. Then
//! `ec2-harden check --root OVERLAY --offline --profile cis-level2-server --rule ...` judges the
//! mapped rules, in the same namespaces. A pass scenario agrees when no mapped rule fails (all
//! pass, or none applies); a fail scenario agrees when at least one fails. An error never agrees.
//!
//! Scenarios are skipped, with the reason counted, when ComplianceAsCode would not run them on
//! Debian 12 (platform, check type, profiles), when they are judged under XCCDF variable values
//! other than the CIS control file's, when they need packages the root does not have, or when
//! their state needs a running system (services, runtime sysctls, mounts, package installs).
//!
//! Every disagreement must be listed in `tests/cis/scenario-differences.toml` with a category and
//! a reason; the test fails on an unlisted one and on a listed one that no longer happens.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use common::cac::{entry_problems, evidence_line, mapping, reference_dir, ANY_OF};
use common::repo;

const TARBALL: &str = "complianceascode-content-b3a2cca9.tar.xz";
const DATASTREAM: &str = "ssg-debian12-ds.xml.xz";
const PRODUCT: &str = "debian12";
const CONTROLS: &str = "controls/cis_debian12.yml";
const LEVELS: &str = "l1_server,l2_server";
const PROFILE: &str = "cis-level2-server";

/// Scenario scripts run in parallel on this many workers (CI's machine has two cores).
const WORKERS: usize = 2;

/// One scenario script may take this long (seconds) before it is killed.
const SCRIPT_TIMEOUT_SECS: u32 = 60;

/// Fewer scored scenarios than this means the harness broke (rendering, the overlay, the index).
const MIN_SCORED: usize = 500;

/// Why a disagreement is accepted (`category` in the differences file).
const CATEGORIES: &[&str] = &[
    // CaC wants more than the CIS audit procedure: a stricter value, a keyword written out
    "cac-stricter",
    // CaC passes a state the CIS audit procedure fails
    "cac-misses",
    // one ec2-harden rule judges what several CaC rules split, or the reverse
    "granularity",
    // ec2-harden deliberately judges otherwise
    "policy",
    // the scenario's state is not what its name says on this root (it relies on the state of
    // ComplianceAsCode's test machines, or a step of it cannot happen offline)
    "scenario",
];

// --- the rendered scenarios --------------------------------------------------------------------

#[derive(Deserialize)]
struct Index {
    product: String,
    rules: Vec<IndexRule>,
}

#[derive(Deserialize)]
struct IndexRule {
    rule: String,
    #[serde(default)]
    missing: Option<String>,
    #[serde(default)]
    cis_variables: BTreeMap<String, Option<String>>,
    #[serde(default)]
    sysctl: Option<SysctlFact>,
    #[serde(default)]
    scenarios: Vec<IndexScenario>,
}

#[derive(Deserialize)]
struct SysctlFact {
    key: String,
    cis_value: Option<String>,
}

#[derive(Deserialize)]
struct IndexScenario {
    script: String,
    expect: Option<String>,
    platform: Vec<String>,
    platform_applies: bool,
    check: Vec<String>,
    check_applies: bool,
    profiles: Vec<String>,
    profiles_in_product: Vec<String>,
    packages: Vec<String>,
    judged_variables: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

fn sha256_file(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nComplianceAsCode's source (../shared/reference/README.md) must be beside the \
             project; this test fails without it",
            path.display()
        )
    });
    format!("{:x}", Sha256::digest(bytes))
}

/// The rendered scenarios for Debian 12: `target/scenarios/render-<digest>/` (`index.json`,
/// `rules/<rule>/`, `shared/`), made by `tests/scenarios/render.py` from the unpacked tarball
/// when the tarball or the script changed.
fn rendered() -> PathBuf {
    let tarball = reference_dir().join(TARBALL);
    let script = repo().join("tests/scenarios/render.py");
    let digest = format!(
        "{:x}",
        Sha256::digest(format!(
            "{}\n{}",
            sha256_file(&tarball),
            sha256_file(&script)
        ))
    );
    let base = repo().join("target/scenarios");
    let dir = base.join(format!("render-{}", &digest[..16]));
    if dir.join("index.json").is_file() {
        return dir;
    }
    fs::create_dir_all(&base).unwrap();
    let work = tempfile::Builder::new()
        .prefix("render-")
        .tempdir_in(&base)
        .unwrap();
    let content = work.path().join("content");
    fs::create_dir_all(&content).unwrap();
    let out = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&content)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar -xJf {}: {}",
        tarball.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // the tarball holds one top-level directory (or the tree itself)
    let entries: Vec<PathBuf> = fs::read_dir(&content)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let tree = match entries.as_slice() {
        [only] if only.is_dir() && !only.join("ssg").is_dir() => only.clone(),
        _ => content.clone(),
    };
    let rendering = work.path().join("rendered");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg("--content")
        .arg(&tree)
        .arg("--datastream")
        .arg(reference_dir().join(DATASTREAM))
        .args([
            "--product",
            PRODUCT,
            "--controls",
            CONTROLS,
            "--levels",
            LEVELS,
        ])
        .arg("--out")
        .arg(&rendering)
        .output()
        .expect("run /usr/bin/python3 (tests/run.sh installs python3-jinja2 and python3-yaml)");
    assert!(
        out.status.success(),
        "tests/scenarios/render.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // older renderings go: they are keyed by digests that no longer hold
    for entry in fs::read_dir(&base).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("render-") && entry.path() != work.path() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    fs::rename(&rendering, &dir).unwrap();
    dir
}

// --- the mapping, the root, the differences ----------------------------------------------------

/// Packages dpkg records as installed in the root.
fn installed_packages(root: &Path) -> BTreeSet<String> {
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).expect("dpkg status");
    status
        .split("\n\n")
        .filter(|p| p.lines().any(|l| l == "Status: install ok installed"))
        .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("Package: ")))
        .map(str::to_string)
        .collect()
}

/// The rule ids the profile runs on the root (from a full run).
fn profile_rules(root: &Path) -> BTreeSet<String> {
    let (code, report, stderr) =
        common::check_json(root, &["--stage", "run", "--offline", "--profile", PROFILE]);
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DifferencesFile {
    #[serde(default)]
    difference: Vec<Difference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Difference {
    cac: String,
    ours: Vec<String>,
    category: String,
    reason: String,
    scenarios: Vec<Listed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listed {
    script: String,
    ours: String,
}

/// The verdicts ec2-harden can give a scenario's mapped rules as a whole.
const VERDICTS: &[&str] = &["pass", "fail", "error", "notapplicable"];

/// What a scenario expects from its name: `NAME.pass.sh` or `NAME.fail.sh`.
fn expectation(script: &str) -> Option<&'static str> {
    if script.ends_with(".pass.sh") {
        Some("pass")
    } else if script.ends_with(".fail.sh") {
        Some("fail")
    } else {
        None
    }
}

/// Whether ec2-harden's verdict agrees with the scenario's expectation.
fn agrees(expect: &str, ours: &str) -> bool {
    match expect {
        "pass" => ours == "pass" || ours == "notapplicable",
        _ => ours == "fail",
    }
}

/// (CaC rule, script) -> our listed verdict, checked against the mapping.
fn listed_differences(
    mapping: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<(String, String), String>, Vec<String>> {
    let file: DifferencesFile = common::cac::read_toml("tests/cis/scenario-differences.toml");
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for d in &file.difference {
        problems.extend(entry_problems(
            mapping,
            &d.cac,
            &d.ours,
            &d.category,
            CATEGORIES,
            &d.reason,
            d.scenarios.len(),
        ));
        for s in &d.scenarios {
            match expectation(&s.script) {
                None => problems.push(format!(
                    "{} {}: not a NAME.pass.sh or NAME.fail.sh scenario",
                    d.cac, s.script
                )),
                Some(expect) => {
                    if !VERDICTS.contains(&s.ours.as_str()) || agrees(expect, &s.ours) {
                        problems.push(format!(
                            "{} {}: ours = {} is no disagreement with a {expect} scenario",
                            d.cac, s.script, s.ours
                        ));
                    }
                }
            }
            let key = (d.cac.clone(), s.script.clone());
            if out.insert(key, s.ours.clone()).is_some() {
                problems.push(format!("{} {}: listed twice", d.cac, s.script));
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
fn scenario_differences_are_well_formed() {
    let mapping = mapping();
    let listed = listed_differences(&mapping)
        .unwrap_or_else(|p| panic!("tests/cis/scenario-differences.toml:\n  {}", p.join("\n  ")));
    assert!(!listed.is_empty());
}

// --- which scenarios run -----------------------------------------------------------------------

/// The text a scenario runs: the script and, recursively, the files it sources from its rule's
/// directory and from `$SHARED`.
fn expanded_text(rule_dir: &Path, shared: &Path, script: &str) -> String {
    fn walk(path: &Path, rule_dir: &Path, shared: &Path, depth: u32, out: &mut String) {
        let Ok(text) = fs::read_to_string(path) else {
            return;
        };
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            let t = line.trim_start();
            let Some(rest) = t
                .strip_prefix("source ")
                .or_else(|| t.strip_prefix(". "))
                .map(|r| r.trim().trim_matches('"'))
            else {
                continue;
            };
            if depth > 4 {
                continue;
            }
            let target = if let Some(p) = rest
                .strip_prefix("$SHARED/")
                .or_else(|| rest.strip_prefix("${SHARED}/"))
                .or_else(|| rest.strip_prefix("\"$SHARED\"/"))
            {
                shared.join(p.trim_matches('"'))
            } else if !rest.contains('$') {
                rule_dir.join(rest)
            } else {
                continue;
            };
            walk(&target, rule_dir, shared, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(&rule_dir.join(script), rule_dir, shared, 0, &mut out);
    out
}

/// Lines as bash runs them: without comments (a `#` starting a word) and blank lines.
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let mut quote = None;
            let mut prev = ' ';
            for (i, c) in l.char_indices() {
                match (quote, c) {
                    (None, '\'' | '"') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (None, '#') if prev.is_whitespace() || i == 0 => return l[..i].to_string(),
                    _ => {}
                }
                prev = c;
            }
            l.to_string()
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// A command at a command position of a line (start, after `;`, `&&`, `||`, `|`, `then`, `do`,
/// `$(`), or any word of the line for `systemctl` (scenarios keep it in a variable).
fn runs(lines: &[String], command: &str) -> bool {
    let re = regex::Regex::new(&format!(
        r"(^|[;&|(]\s*|\bthen\s+|\bdo\s+|\belse\s+|\$\(\s*|/)({command})(\s|$|;)"
    ))
    .unwrap();
    lines.iter().any(|l| re.is_match(l.trim_start()))
}

/// Why a scenario needs a running system, if it does: the state it sets up lives in a running
/// kernel or service manager, or it installs packages, none of which a root audited offline has.
fn needs_running_system(text: &str, rule: &IndexRule) -> Option<String> {
    let lines = code_lines(text);
    if lines.iter().any(|l| l.contains("systemctl")) || runs(&lines, "service") {
        return Some("needs a running system: services (systemctl)".into());
    }
    if runs(&lines, "apt-get|apt|dnf|yum|zypper") {
        return Some("needs a running system: installs packages".into());
    }
    if runs(&lines, "mount|umount|swapon|swapoff") {
        return Some("needs a running system: mounts filesystems".into());
    }
    if runs(&lines, "modprobe|insmod|rmmod") {
        return Some("needs a running system: loads kernel modules".into());
    }
    if runs(&lines, "auditctl") {
        return Some("needs a running system: loads audit rules into the kernel".into());
    }
    if runs(&lines, "nft|iptables|ip6tables|ufw|firewall-cmd") {
        return Some("needs a running system: changes the live firewall".into());
    }
    // `sysctl -w KEY=VALUE`: a runtime value other than CIS's decides ComplianceAsCode's verdict
    // (its check reads the running kernel too); one equal to it changes nothing that is judged
    let set = regex::Regex::new(r#"sysctl\s+-w\s+"?([\w./-]+)\s*=\s*"?([^"\s]*)"?"#).unwrap();
    for l in &lines {
        if let Some(c) = set.captures(l) {
            let same = rule
                .sysctl
                .as_ref()
                .is_some_and(|s| s.key == c[1] && s.cis_value.as_deref() == Some(&c[2]));
            if !same {
                return Some("needs a running system: sets a runtime kernel parameter".into());
            }
        }
    }
    None
}

/// One scenario to run.
struct Job {
    cac: String,
    ours: Vec<String>,
    script: String,
    expect: &'static str,
    rule_dir: PathBuf,
}

/// What happened to one scenario.
struct Outcome {
    job: usize,
    exit: Option<i32>,
    /// The last command that failed in the script, with its status (`STATUS COMMAND`).
    last_failed: Option<String>,
    /// Our mapped rules: id -> (status, evidence line).
    ours: BTreeMap<String, (String, String)>,
    log: PathBuf,
}

// --- the confinement ---------------------------------------------------------------------------

/// The shell that runs inside `unshare`: overlay, a /dev of its own, the scenario's files on a
/// tmpfs, the script chrooted with a narrow capability bounding set under `timeout`, the files
/// and /dev taken away again, then ec2-harden on the overlay. Arguments: lower root, work dir,
/// rule directory, shared directory, script, ec2-harden binary, then `--rule` arguments.
const CONFINED: &str = r#"
set -eu
lower=$1 work=$2 rule_dir=$3 shared=$4 script=$5 bin=$6
shift 6
root=$work/merged
mkdir -p "$work/upper" "$work/ovl" "$root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" "$root"
mount -t tmpfs -o mode=0755,nosuid,size=1m ec2h-dev "$root/dev"
for d in null:3 zero:5 full:7 random:8 urandom:9; do
    mknod -m 0666 "$root/dev/${d%:*}" c 1 "${d#*:}"
done
mkdir "$root/dev/pts" "$root/dev/shm"
# the directories kmod and systemd ship for module configuration, which every test machine of
# ComplianceAsCode has; minbase installs neither, and the kernel-module scenarios write there
for d in etc/modprobe.d usr/lib/modprobe.d etc/modules-load.d usr/lib/modules-load.d; do
    [ -d "$root/$d" ] || mkdir -p -m 0755 "$root/$d"
done
mount -t tmpfs -o mode=0700,size=64m ec2h-scenario "$root/mnt"
mkdir "$root/mnt/rule" "$root/mnt/shared"
cp -R "$rule_dir/." "$root/mnt/rule/"
cp -R "$shared/." "$root/mnt/shared/"
# every failing command of the script (and of the shells it starts) is noted, so a non-zero exit
# can be told apart: a runtime step the confinement refuses, or a setup that did not happen
printf '%s\n' 'set -o errtrace' \
    "trap 'echo \"\$? \$BASH_COMMAND\" >>/mnt/ec2h-failed' ERR" >"$root/mnt/ec2h-trap.sh"
set +e
timeout --kill-after=5 "$SCRIPT_TIMEOUT" chroot "$root" /usr/bin/setpriv \
    --bounding-set="$CAPS" --inh-caps=-all --no-new-privs -- \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive SHARED=/mnt/shared BASH_ENV=/mnt/ec2h-trap.sh \
    /bin/bash -c 'cd /mnt/rule && exec /bin/bash -x "$0"' "$script" </dev/null >"$work/script.log" 2>&1
echo "$?" >"$work/script.exit"
cp "$root/mnt/ec2h-failed" "$work/failed" 2>/dev/null
set -e
umount -l "$root/mnt"
umount -l "$root/dev"
"$bin" check --root "$root" --stage run --offline --profile "$PROFILE" --format json \
    --fail-on never "$@" >"$work/report.json" 2>"$work/check.err"
"#;

fn run_one(job: &Job, lower: &Path, shared: &Path, logs: &Path, index: usize) -> Outcome {
    let work = tempfile::Builder::new()
        .prefix("ec2h-scenario-")
        .tempdir()
        .unwrap();
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=10", &(SCRIPT_TIMEOUT_SECS + 60).to_string()])
        .args([
            "unshare",
            "--mount",
            "--net",
            "--pid",
            "--uts",
            "--ipc",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            CONFINED,
            "sh",
        ])
        .arg(lower)
        .arg(work.path())
        .arg(&job.rule_dir)
        .arg(shared)
        .arg(&job.script)
        .arg(env!("CARGO_BIN_EXE_ec2-harden"));
    for id in &job.ours {
        cmd.args(["--rule", id]);
    }
    let out = cmd
        .env("SCRIPT_TIMEOUT", SCRIPT_TIMEOUT_SECS.to_string())
        .env("CAPS", common::CONFINED_CAPS)
        .env("PROFILE", PROFILE)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("EC2_HARDEN_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run timeout, unshare (coreutils, util-linux)");
    let read = |name: &str| fs::read_to_string(work.path().join(name)).unwrap_or_default();
    let exit = read("script.exit").trim().parse().ok();
    let last_failed = read("failed").lines().last().map(str::to_string);
    let log = logs.join(format!("{}--{}.log", job.cac, job.script));
    let mut text = format!(
        "# {} {} (expect {})\n# script exit: {exit:?}\n",
        job.cac, job.script, job.expect
    );
    text.push_str(&read("script.log"));
    text.push_str("\n# failed commands\n");
    text.push_str(&read("failed"));
    text.push_str("\n# ec2-harden stderr\n");
    text.push_str(&read("check.err"));
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&read("report.json")).unwrap_or_else(|e| {
            panic!(
                "{} {}: no report ({e}; confinement exit {}):\n{text}",
                job.cac, job.script, out.status
            )
        });
    fs::write(&log, &text).unwrap();
    let ours = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                (
                    r["status"].as_str().unwrap().to_string(),
                    evidence_line(r, 2),
                ),
            )
        })
        .collect();
    // the namespace ended with the run: nothing it mounted is left behind
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&work.path().display().to_string()),
        "a mount under {} outlived the scenario",
        work.path().display()
    );
    Outcome {
        job: index,
        exit,
        last_failed,
        ours,
        log,
    }
}

/// Our verdict on a scenario over its mapped rules: error if one errs, else fail if one fails
/// (for an any-of CaC rule: none passes), else pass if one passes, else not applicable.
fn verdict(cac: &str, ours: &BTreeMap<String, (String, String)>) -> &'static str {
    let statuses: Vec<&str> = ours.values().map(|(s, _)| s.as_str()).collect();
    if statuses.contains(&"error") {
        return "error";
    }
    let decided: Vec<&str> = statuses
        .iter()
        .copied()
        .filter(|s| *s == "pass" || *s == "fail")
        .collect();
    if decided.is_empty() {
        return "notapplicable";
    }
    let pass = if ANY_OF.contains(&cac) {
        decided.contains(&"pass")
    } else {
        !decided.contains(&"fail")
    };
    if pass {
        "pass"
    } else {
        "fail"
    }
}

// --- this machine stays as it was --------------------------------------------------------------

/// The kernel parameters the scenarios write and the live ruleset, read before and after.
fn host_state(keys: &BTreeSet<String>) -> String {
    let mut state = String::new();
    for key in keys {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let value = fs::read_to_string(&path).unwrap_or_else(|e| format!("unreadable: {e}"));
        state.push_str(&format!("{key} = {}\n", value.trim()));
    }
    if let Ok(out) = Command::new("nft").args(["list", "ruleset"]).output() {
        state.push_str("nft list ruleset:\n");
        state.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    state
}

// --- the test ----------------------------------------------------------------------------------

#[test]
#[ignore = "needs root, tools: namespaces, overlayfs, a debootstrapped Debian 12 root, python3-jinja2 and python3-yaml, ../shared/reference"]
fn complianceascode_scenarios_agree_with_the_cis_profile() {
    let started = Instant::now();
    let mapping = mapping();
    let listed = listed_differences(&mapping)
        .unwrap_or_else(|p| panic!("tests/cis/scenario-differences.toml:\n  {}", p.join("\n  ")));
    let rendered = rendered();
    let index: Index =
        serde_json::from_str(&fs::read_to_string(rendered.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.product, PRODUCT);
    let shared = rendered.join("shared");
    let lower = common::debootstrap_root();
    let installed = installed_packages(&lower);
    let in_profile = profile_rules(&lower);
    // EC2_HARDEN_SCENARIOS=REGEX runs only the scenarios whose `RULE/SCRIPT` matches (to
    // investigate); the closing checks then cover those alone
    let filter = std::env::var("EC2_HARDEN_SCENARIOS")
        .ok()
        .map(|f| regex::Regex::new(&f).expect("EC2_HARDEN_SCENARIOS is a regex"));

    // choose the scenarios, counting why the others are skipped
    let mut jobs = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut rendered_count = 0;
    let mut rules_used = 0;
    let mut sysctl_keys = BTreeSet::new();
    for rule in &index.rules {
        let Some(ours) = mapping.get(&rule.rule) else {
            continue;
        };
        let ours: Vec<String> = ours
            .iter()
            .filter(|id| in_profile.contains(*id))
            .cloned()
            .collect();
        if ours.is_empty() {
            continue;
        }
        if let Some(why) = &rule.missing {
            panic!("{}: {why}", rule.rule);
        }
        rules_used += 1;
        if let Some(s) = &rule.sysctl {
            sysctl_keys.insert(s.key.clone());
        }
        let rule_dir = rendered.join("rules").join(&rule.rule);
        for s in &rule.scenarios {
            rendered_count += 1;
            let expect = match s.expect.as_deref() {
                Some("pass") => "pass",
                Some("fail") => "fail",
                other => {
                    *skipped
                        .entry(format!("expects neither pass nor fail ({other:?})"))
                        .or_default() += 1;
                    continue;
                }
            };
            let reason = if !s.platform_applies {
                Some(format!(
                    "platform not Debian 12 (`# platform = {}`)",
                    if s.platform.len() == 1 {
                        s.platform[0].as_str()
                    } else {
                        "..."
                    }
                ))
            } else if !s.check_applies {
                Some(format!("check type {:?} not the rule's", s.check))
            } else if s.profiles_in_product.is_empty() {
                Some(format!(
                    "profiles {:?} not in the Debian 12 content",
                    s.profiles
                ))
            } else if s.judged_variables.values().any(|vars| {
                vars.iter()
                    .any(|(var, value)| rule.cis_variables.get(var) != Some(value))
            }) {
                Some("XCCDF variables other than the CIS control file's".into())
            } else if let Some(missing) = s.packages.iter().find(|p| !installed.contains(*p)) {
                Some(format!("package not in the root ({missing})"))
            } else {
                let text = expanded_text(&rule_dir, &shared, &s.script);
                needs_running_system(&text, rule)
            };
            if let Some(reason) = reason {
                let reason = if reason.starts_with("platform") {
                    "platform not Debian 12".to_string()
                } else if reason.starts_with("package not in the root") {
                    "packages not in the root".to_string()
                } else {
                    reason
                };
                *skipped.entry(reason).or_default() += 1;
                continue;
            }
            if filter
                .as_ref()
                .is_some_and(|f| !f.is_match(&format!("{}/{}", rule.rule, s.script)))
            {
                continue;
            }
            jobs.push(Job {
                cac: rule.rule.clone(),
                ours: ours.clone(),
                script: s.script.clone(),
                expect,
                rule_dir: rule_dir.clone(),
            });
        }
    }

    let logs = repo().join("target/scenarios/logs");
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).unwrap();
    let before = host_state(&sysctl_keys);
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    let run_started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else {
                    break;
                };
                let o = run_one(job, &lower, &shared, &logs, i);
                outcomes.lock().unwrap().push(o);
            });
        }
    });
    let run_secs = run_started.elapsed().as_secs_f64();
    let after = host_state(&sysctl_keys);
    assert_eq!(
        before, after,
        "this machine's kernel parameters or ruleset changed while the scenarios ran"
    );
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|o| o.job);

    // compare
    let mut scored = BTreeMap::<&str, (usize, usize)>::new();
    let mut notapplicable = 0;
    let mut refused = 0;
    let mut setup_failed = Vec::new();
    let mut occurred = BTreeSet::new();
    let mut problems = Vec::new();
    for o in &outcomes {
        let job = &jobs[o.job];
        if o.exit != Some(0) {
            // as ComplianceAsCode's runner, a script that exits non-zero set nothing up, unless
            // what failed last is the runtime half of a setting the confinement refuses by design
            // (`sysctl -w` of a value equal to CIS's, see needs_running_system): its files are set
            let command = o
                .last_failed
                .as_deref()
                .and_then(|l| l.split_once(' '))
                .map(|(_, c)| c);
            if command.is_some_and(|c| c.starts_with("sysctl -w ")) {
                refused += 1;
            } else {
                *skipped
                    .entry("setup script failed on this root (exit status not 0)".into())
                    .or_default() += 1;
                setup_failed.push(format!(
                    "{} {} (exit {:?}, last failed: {})",
                    job.cac,
                    job.script,
                    o.exit,
                    o.last_failed.as_deref().unwrap_or("-")
                ));
                continue;
            }
        }
        let ours = verdict(&job.cac, &o.ours);
        if ours == "notapplicable" {
            notapplicable += 1;
        }
        let entry = scored.entry(job.expect).or_default();
        entry.0 += 1;
        if agrees(job.expect, ours) {
            entry.1 += 1;
            continue;
        }
        let key = (job.cac.clone(), job.script.clone());
        occurred.insert(key.clone());
        match listed.get(&key) {
            Some(v) if v == ours => {}
            other => {
                let mut detail = format!(
                    "new disagreement: {} {} expects {}, ec2-harden says {ours}{} (script exit {:?}; log {})\n",
                    job.cac,
                    job.script,
                    job.expect,
                    other
                        .map(|v| format!(" (listed as {v})"))
                        .unwrap_or_default(),
                    o.exit,
                    o.log.display()
                );
                for (id, (status, evidence)) in &o.ours {
                    detail.push_str(&format!("    {id}: {status} - {evidence}\n"));
                }
                detail.push_str(&format!(
                    "    {{ script = \"{}\", ours = \"{ours}\" }},",
                    job.script
                ));
                problems.push(detail);
            }
        }
    }
    for ((cac, script), ours) in &listed {
        if filter
            .as_ref()
            .is_some_and(|f| !f.is_match(&format!("{cac}/{script}")))
        {
            continue;
        }
        if !occurred.contains(&(cac.clone(), script.clone())) {
            problems.push(format!(
                "stale entry of tests/cis/scenario-differences.toml: {cac} {script} (ours = {ours}) \
                 no longer disagrees (or no longer runs): remove it"
            ));
        }
    }

    let total_scored: usize = scored.values().map(|(n, _)| n).sum();
    let total_agree: usize = scored.values().map(|(_, a)| a).sum();
    let mut summary = format!(
        "\nComplianceAsCode's rule scenarios (Debian 12) against ec2-harden --profile {PROFILE}\n\
         CaC rules mapped to the profile: {rules_used}; scenarios rendered: {rendered_count}; \
         skipped: {}; scored: {total_scored}\n",
        skipped.values().sum::<usize>()
    );
    for (reason, n) in &skipped {
        summary.push_str(&format!("  skipped {n:>4}  {reason}\n"));
    }
    for (expect, (n, agree)) in &scored {
        summary.push_str(&format!(
            "  {expect} scenarios: {n:>4} scored, {agree:>4} agree ({:.1} %)\n",
            100.0 * *agree as f64 / (*n).max(1) as f64
        ));
    }
    summary.push_str(&format!(
        "  all: {total_agree} of {total_scored} agree ({:.1} %); listed differences: {}; \
         ec2-harden not applicable: {notapplicable}; scored although the runtime \
         `sysctl -w` the confinement refuses failed: {refused}\n\
         ran in {run_secs:.0} s on {WORKERS} workers; the whole test took {:.0} s; logs in {}\n",
        100.0 * total_agree as f64 / total_scored.max(1) as f64,
        listed.len(),
        started.elapsed().as_secs_f64(),
        logs.display()
    ));
    if !setup_failed.is_empty() {
        summary.push_str("scenarios whose setup failed on this root:\n");
        for s in &setup_failed {
            summary.push_str(&format!("  {s}\n"));
        }
    }
    std::io::stdout().write_all(summary.as_bytes()).unwrap();
    assert!(
        total_scored >= MIN_SCORED || filter.is_some(),
        "{summary}only {total_scored} scenarios scored (at least {MIN_SCORED} expected)"
    );
    assert!(problems.is_empty(), "{summary}\n{}", problems.join("\n"));
}
