#!/usr/bin/env python3
"""Write baseline/cis/<baseline>.toml: each CIS recommendation of a distribution's benchmark (number,
server level, automated or manual) with the ec2-harden rules that check it.

Facts come from ComplianceAsCode's control files, read straight from the pinned source tarball in
../shared/reference/ (numbers, levels and the Automated/Manual marker only; no titles or prose are
carried over). Which of our rules check a recommendation comes from tests/cis/cac-rules.toml: the
ComplianceAsCode rules a control lists, mapped to ours, plus the per-product additions there, kept
to the rules the baseline has.

    scripts/cis-catalogue.py            rewrite baseline/cis/*.toml
    scripts/cis-catalogue.py --check    exit 1 and show what differs (the test suite runs this)

ComplianceAsCode has no CIS Amazon Linux 2 control file. Its list comes from a clone of
ansible-lockdown/AMAZON2-CIS (an Ansible role implementing CIS Amazon Linux 2 Benchmark v3.0.0),
which only this mode reads, so the test suite cannot check it:

    scripts/cis-catalogue.py --al2 GITDIR           rewrite baseline/cis/amazon-linux-2.toml
    scripts/cis-catalogue.py --al2 GITDIR --check   compare it instead

GITDIR is the clone's git directory (a bare one will do); its HEAD is read. Each top-level task of
tasks/section_*/cis_*.yml is named "NUMBER | PATCH|AUDIT | title" (one line per recommendation when
a task covers several) and tagged level1/level2 (or level1-server/level2-server) and
automated/manual: number, server level and automation come from there. Where a task has neither
automated nor manual, the (Automated)/(Manual) marker of the title-matched ComplianceAsCode control
decides (AL2023's before RHEL 9's), else AL2_UNTAGGED below. Which rules check a recommendation:
its title is matched (case and spacing aside) to the titles of the CIS Amazon Linux 2023 and RHEL 9
control files, and the CaC rules of the matched controls go through tests/cis/cac-rules.toml as for
those products (with their per-product additions); [controls.al2] there adds rules by AL2 number
and [not_equivalent.al2] removes title-matched rules that do not check the AL2 recommendation. The
titles are used only to match; none is written.

Needs PyYAML (tests/run.sh's venv has it: target/venv/bin/python).
"""

import argparse
import difflib
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARBALL = ROOT.parent / "shared/reference/complianceascode-content-b3a2cca9.tar.xz"

# product -> (baseline, control file in the tarball, benchmark name, version)
PRODUCTS = {
    "debian12": ("debian-12", "controls/cis_debian12.yml", "CIS Debian Linux 12 Benchmark", "v1.1.0"),
    "ubuntu2204": ("ubuntu-22.04", "controls/cis_ubuntu2204.yml", "CIS Ubuntu Linux 22.04 LTS Benchmark", "v2.0.0"),
    "ubuntu2404": ("ubuntu-24.04", "controls/cis_ubuntu2404.yml", "CIS Ubuntu Linux 24.04 LTS Benchmark", "v1.0.0"),
    "al2023": ("amazon-linux-2023", "controls/cis_al2023.yml", "CIS Amazon Linux 2023 Benchmark", "v1.0.0"),
    "rhel9": ("rhel-9", "products/rhel9/controls/cis_rhel9.yml", "CIS Red Hat Enterprise Linux 9 Benchmark", "v2.0.0"),
}

# CIS Amazon Linux 2 (ansible-lockdown/AMAZON2-CIS, see the docstring)
AL2 = ("amazon-linux-2", "CIS Amazon Linux 2 Benchmark", "v3.0.0")
# The recommendations whose task is tagged neither automated nor manual and whose title matches no
# CIS Amazon Linux 2023 or RHEL 9 control: marked as CIS marks the recommendation of the same
# subject in the CIS control files of the pinned snapshot (the control named in each comment).
AL2_UNTAGGED = {
    "3.4.1.1": True,  # Debian 12 4.4.1.1, SLE 15 3.5.3.1.1 (iptables packages installed)
    "3.4.4.2.1": True,  # Debian 12 4.4.2.2 (same title)
    "3.4.4.2.2": False,  # Debian 12 4.4.2.3 (same title)
    "3.4.4.2.3": True,  # Debian 12 4.4.2.4 (same title)
    "3.4.4.2.4": True,  # Debian 12 4.4.2.1 (same title)
    "3.4.4.2.5": True,  # Debian 12 4.3.10, SLE 15 3.5.2.10 (the nftables rules are permanent)
    "3.4.4.2.6": True,  # Debian 12 4.3.9 (nftables service enabled), SLE 15 3.5.1.3 (firewalld)
    "3.4.4.3.1": True,  # Debian 12 4.4.3.2 (same title)
    "3.4.4.3.2": False,  # Debian 12 4.4.3.3 (same title)
    "3.4.4.3.3": True,  # Debian 12 4.4.3.4 (same title)
    "3.4.4.3.4": True,  # Debian 12 4.4.3.1 (same title)
    "3.4.4.3.5": True,  # as 3.4.4.2.5
    "3.4.4.3.6": True,  # as 3.4.4.2.6
    "5.1.1.1": True,  # AL2023 5.1.1.1 (rsyslog is installed)
    "5.1.1.4": True,  # AL2023 5.1.1.4 (rsyslog default file permissions are configured)
    "5.1.1.7": True,  # AL2023 5.1.1.7 (the role's title misspells receive)
    "5.1.4": True,  # AL2023 5.1.3, RHEL 9 6.2.4.1 (permissions and access of all logfiles)
    "6.2.10": True,  # AL2023 6.2.10, RHEL 9 7.2.8 (local interactive user home directories)
}

# Where the role's level tag disagrees with both its companion audit (ansible-lockdown/
# AMAZON2-CIS-Audit, branch benchmark_v3.0.0: the level each check is wrapped in) and the same
# recommendation in CIS Amazon Linux 2023 and RHEL 9: the two agreeing sources decide. The partition
# options (1.1.2.x.2-4) are Level 1 wherever the partition exists; DisableForwarding, GSSAPI and
# pwquality's enforce_for_root are Level 2.
AL2_LEVEL = {
    **{n: 1 for n in ("1.1.2.4.2", "1.1.2.4.3")},
    **{f"1.1.2.{p}.{o}": 1 for p in (5, 6, 7) for o in (2, 3, 4)},
    "4.2.8": 2,
    "4.2.9": 2,
    "4.4.2.1.4": 2,
}

MANUAL = "manual: the benchmark leaves this to a person's review of the site's own policy"
NOT_YET = "automated, but no ec2-harden rule checks it yet"


def control_files():
    """The five control files, parsed, read from the tarball without unpacking it."""
    wanted = {path: product for product, (_, path, _, _) in PRODUCTS.items()}
    found = {}
    if not TARBALL.is_file():
        sys.exit(f"cis-catalogue: {TARBALL} is missing (see ../shared/reference/README.md)")
    with tarfile.open(TARBALL) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted:
                found[wanted[name]] = yaml.safe_load(tar.extractfile(member))
    missing = set(PRODUCTS) - set(found)
    if missing:
        sys.exit(f"cis-catalogue: {TARBALL} has no control file for {sorted(missing)}")
    return found


def walk(controls):
    for c in controls:
        yield c
        yield from walk(c.get("controls", []))


def baseline_rules(name):
    """Rule ids of an embedded baseline: what it and the layers it extends define, minus `disable`."""
    data = tomllib.loads((ROOT / "baseline" / f"{name}.toml").read_text())
    head = data.get("baseline", {})
    ids = set()
    for parent in head.get("extends", []):
        ids |= baseline_rules(parent)
    for key, value in data.items():
        if key in ("baseline", "waiver", "fim") or not isinstance(value, list):
            continue
        ids |= {rule["id"] for rule in value if isinstance(rule, dict) and "id" in rule}
    return ids - set(head.get("disable", []))


def level(control):
    levels = control.get("levels", [])
    if "l1_server" in levels:
        return 1
    if "l2_server" in levels:
        return 2
    return None


def automated(control):
    marker = re.search(r"\((Automated|Manual)\)\s*$", control.get("title", ""))
    if marker:
        return marker.group(1) == "Automated"
    # two RHEL 9 titles carry no marker: ComplianceAsCode's own status decides
    return control.get("status") == "automated"


def table_head(name, version, baseline):
    """The lines from the blank one after the header comment to the list's opening bracket."""
    return [
        "",
        "[benchmark]",
        f'name = "{name}"',
        f'version = "{version}"',
        f'baseline = "{baseline}"',
        "recommendations = [",
    ]


def mapped(control, by_cac):
    """Our rules for a control's ComplianceAsCode rules (`var=value` entries are settings, skipped)."""
    return {ours for cac in control.get("rules", []) or [] if "=" not in cac for ours in by_cac.get(cac, [])}


def entry(number, lvl, auto, rules):
    """One recommendation's line: its rules, or why none checks it."""
    line = f'  {{ number = "{number}", level = {lvl}, automated = {str(auto).lower()}'
    if rules:
        line += ", rules = [" + ", ".join(f'"{r}"' for r in sorted(rules)) + "]"
    else:
        line += f', reason = "{NOT_YET if auto else MANUAL}"'
    return line + " },"


def render(product, controls, mapping):
    baseline, path, name, version = PRODUCTS[product]
    if str(controls.get("version")) != version.removeprefix("v"):
        sys.exit(f"cis-catalogue: {path} is version {controls.get('version')}, expected {version}")
    have = baseline_rules(baseline)
    extra = mapping.get("controls", {}).get(product, {})
    by_cac = mapping["rules"]
    lines = [
        f"# {name} {version}: each recommendation's number, server level and whether the benchmark",
        "# assesses it automatically, with the ec2-harden rules that check it (or why none does).",
        "# Written by scripts/cis-catalogue.py from ComplianceAsCode's control file (numbers and levels)",
        "# and tests/cis/cac-rules.toml (which rules): change those and rerun it; the suite checks.",
    ] + table_head(name, version, baseline)
    numbers = set()
    for control in walk(controls["controls"]):
        lvl = level(control)
        number = str(control["id"])
        if lvl is None or not re.fullmatch(r"\d+(\.\d+)*", number):
            continue  # workstation-only, or a ComplianceAsCode helper entry, not a recommendation
        numbers.add(number)
        auto = automated(control)
        rules = (set(extra.get(number, [])) | mapped(control, by_cac)) & have
        lines.append(entry(number, lvl, auto, rules))
    unknown = set(extra) - numbers
    if unknown:
        sys.exit(f"cis-catalogue: tests/cis/cac-rules.toml [controls.{product}] names {sorted(unknown)}, not in {path}")
    lines.append("]")
    return baseline, "\n".join(lines) + "\n"


def git(gitdir, *args):
    out = subprocess.run(["git", "-C", str(gitdir), *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"cis-catalogue: git {' '.join(args)} in {gitdir}: {out.stderr.strip()}")
    return out.stdout


def title_key(title):
    """A title for matching: no Automated/Manual marker, case and spacing aside."""
    title = re.sub(r"\((Automated|Manual)\)\s*$", "", title)
    return re.sub(r"\s+", " ", title).strip().rstrip(".").lower()


def al2_recommendations(gitdir):
    """(commit, [(number, level, automated or None, title)]) from the role's task files at HEAD."""
    commit = git(gitdir, "rev-parse", "HEAD").strip()
    defaults = yaml.safe_load(git(gitdir, "show", "HEAD:defaults/main.yml"))
    if defaults.get("benchmark_version") != AL2[2]:
        sys.exit(f"cis-catalogue: {gitdir} implements {defaults.get('benchmark_version')}, expected {AL2[2]}")
    paths = [
        p
        for p in git(gitdir, "ls-tree", "-r", "--name-only", "HEAD", "tasks").split()
        if re.fullmatch(r"tasks/section_\d+/cis_[\d.x]+\.yml", p)
    ]
    found = {}
    for path in paths:
        for task in yaml.safe_load(git(gitdir, "show", f"HEAD:{path}")) or []:
            tags = task.get("tags") or []
            levels = {int(m.group(1)) for t in tags if (m := re.fullmatch(r"level([12])(-server)?", t))}
            marks = {t for t in tags if t in ("automated", "manual")}
            for m in re.finditer(r"^\W*(\d+(?:\.\d+)+)\s*\|(?:\s*(?:PATCH|AUDIT)\s*\|)?([^|\n\"]*)", task.get("name", ""), re.M):
                number, title = m.group(1), m.group(2).strip()
                if len(levels) != 1 or len(marks) > 1:
                    sys.exit(f"cis-catalogue: {path}: {number}: server level tags {sorted(levels)}, marks {sorted(marks)}")
                entry = (number, next(iter(levels)), ("automated" in marks) if marks else None, title)
                if number in found and found[number] != entry:
                    sys.exit(f"cis-catalogue: {path}: {number} is tagged differently by two tasks")
                found[number] = entry
    return commit, sorted(found.values(), key=lambda e: [int(x) for x in e[0].split(".")])


def render_al2(gitdir, controls, mapping):
    baseline, name, version = AL2
    commit, recommendations = al2_recommendations(gitdir)
    have = baseline_rules(baseline)
    by_cac = mapping["rules"]
    extra = mapping.get("controls", {})
    adds = extra.get("al2", {})
    drops = mapping.get("not_equivalent", {}).get("al2", {})
    # title -> the CIS Amazon Linux 2023 and RHEL 9 controls of that title
    titles = {}
    for product in ("al2023", "rhel9"):
        for control in walk(controls[product]["controls"]):
            if level(control) is not None and re.fullmatch(r"\d+(\.\d+)*", str(control["id"])):
                titles.setdefault(title_key(control.get("title", "")), []).append((product, control))
    untagged = sum(auto is None for _, _, auto, _ in recommendations)
    lines = [
        f"# {name} {version}: each recommendation's number, server level and whether the benchmark",
        "# assesses it automatically, with the ec2-harden rules that check it (or why none does).",
        "# ComplianceAsCode has no control file for this benchmark. Written by scripts/cis-catalogue.py --al2",
        "# from ansible-lockdown/AMAZON2-CIS (an Ansible role implementing the benchmark) at commit",
        f"# {commit}: numbers, levels and automated/manual from its tasks'",
        "# (14 levels corrected where its companion audit and the AL2023 and RHEL 9 benchmarks agree)",
        f"# names and tags (the script says how the {untagged} whose task has neither tag are decided), and",
        "# tests/cis/cac-rules.toml (which rules). Change those and rerun it; the suite cannot check it.",
    ] + table_head(name, version, baseline)
    numbers = {number for number, _, _, _ in recommendations}
    unknown = (set(adds) | set(drops) | set(AL2_UNTAGGED) | set(AL2_LEVEL)) - numbers
    if unknown:
        sys.exit(f"cis-catalogue: {sorted(unknown)} (tests/cis/cac-rules.toml al2 tables or AL2_UNTAGGED) are not recommendations of {gitdir}")
    matched = 0
    for number, lvl, auto, title in recommendations:
        if AL2_LEVEL.get(number, lvl) == lvl and number in AL2_LEVEL:
            sys.exit(f"cis-catalogue: {number} is tagged level {lvl} already; remove it from AL2_LEVEL")
        lvl = AL2_LEVEL.get(number, lvl)
        hits = titles.get(title_key(title), [])
        matched += bool(hits)
        if auto is None:
            # the AL2023 control first: the two disagree once (5.1.1.6), where AL2's section
            # follows AL2023's
            if hits and number not in AL2_UNTAGGED:
                auto = automated(hits[0][1])
            elif not hits and number in AL2_UNTAGGED:
                auto = AL2_UNTAGGED[number]
            else:
                sys.exit(f"cis-catalogue: {number} is tagged neither automated nor manual: AL2_UNTAGGED must list it exactly when its title matches no control")
        elif number in AL2_UNTAGGED:
            sys.exit(f"cis-catalogue: {number} is tagged; remove it from AL2_UNTAGGED")
        rules = set(adds.get(number, []))
        for product, control in hits:
            rules |= set(extra.get(product, {}).get(str(control["id"]), []))
            rules |= mapped(control, by_cac)
        if not set(drops.get(number, [])) <= rules:
            sys.exit(f"cis-catalogue: [not_equivalent.al2] {number} names rules the title match does not bring")
        rules = (rules - set(drops.get(number, []))) & have
        lines.append(entry(number, lvl, auto, rules))
    lines.append("]")
    print(f"cis-catalogue: {len(recommendations)} recommendations, {matched} matched by title", file=sys.stderr)
    return baseline, "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--al2", metavar="GITDIR", help="write only amazon-linux-2.toml, from this ansible-lockdown/AMAZON2-CIS clone")
    args = parser.parse_args()
    mapping = tomllib.loads((ROOT / "tests/cis/cac-rules.toml").read_text())
    differ = False
    controls = control_files()
    if args.al2:
        outputs = [render_al2(args.al2, controls, mapping)]
    else:
        outputs = [render(product, controls[product], mapping) for product in sorted(controls)]
    for baseline, text in outputs:
        target = ROOT / "baseline/cis" / f"{baseline}.toml"
        current = target.read_text() if target.exists() else ""
        if args.check:
            if current != text:
                differ = True
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(True), text.splitlines(True), str(target), "expected"
                    )
                )
        elif current != text:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if differ:
        print("cis-catalogue: baseline/cis/ is out of date; run scripts/cis-catalogue.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
