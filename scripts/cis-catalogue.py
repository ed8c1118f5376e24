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

Needs PyYAML (tests/run.sh's venv has it: target/venv/bin/python).
"""

import argparse
import difflib
import re
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
        "",
        "[benchmark]",
        f'name = "{name}"',
        f'version = "{version}"',
        f'baseline = "{baseline}"',
        "recommendations = [",
    ]
    numbers = set()
    for control in walk(controls["controls"]):
        lvl = level(control)
        number = str(control["id"])
        if lvl is None or not re.fullmatch(r"\d+(\.\d+)*", number):
            continue  # workstation-only, or a ComplianceAsCode helper entry, not a recommendation
        numbers.add(number)
        auto = automated(control)
        rules = set(extra.get(number, []))
        for cac in control.get("rules", []) or []:
            if "=" not in cac:
                rules |= set(by_cac.get(cac, []))
        rules &= have
        entry = f'  {{ number = "{number}", level = {lvl}, automated = {str(auto).lower()}'
        if rules:
            entry += ", rules = [" + ", ".join(f'"{r}"' for r in sorted(rules)) + "]"
        else:
            entry += f', reason = "{NOT_YET if auto else MANUAL}"'
        lines.append(entry + " },")
    unknown = set(extra) - numbers
    if unknown:
        sys.exit(f"cis-catalogue: tests/cis/cac-rules.toml [controls.{product}] names {sorted(unknown)}, not in {path}")
    lines.append("]")
    return baseline, "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    mapping = tomllib.loads((ROOT / "tests/cis/cac-rules.toml").read_text())
    differ = False
    for product, controls in sorted(control_files().items()):
        baseline, text = render(product, controls, mapping)
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
