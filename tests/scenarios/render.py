#!/usr/bin/env python3
"""Render ComplianceAsCode's rule test scenarios for one product with ComplianceAsCode's own code.

tests/scenarios.rs runs this with an unpacked ComplianceAsCode source tree (the pinned tarball in
../shared/reference/) and an output directory. For every rule that the product's CIS control file
selects at the server levels, it does what ComplianceAsCode's test runner (tests/automatus.py,
the ssg_test_suite package) does before it uploads scenarios to a test machine: loads the rule
for the product, renders the template's scenarios (minus those the rule's test_config.yml denies)
and the rule's own tests/ directory through ComplianceAsCode's Jinja environment, parses each
scenario's header with its Scenario class, and renders tests/shared/ (the $SHARED directory the
scenarios source). Nothing here decides a verdict; it only records, per scenario, the facts the
Rust test needs to decide whether a scenario can run on the debootstrapped root:

- whether ComplianceAsCode applies it to the product (its `platform` header),
- whether its check type exists for the rule (`check`), and which profiles it names,
- the packages it needs, with the product's package name overrides applied,
- the XCCDF variables the rule's checks read, with the value the scenario is judged under (its
  `variables` header, else the default) and the value the CIS control file sets (else the
  default), so that scenarios judged under other values than CIS's can be skipped.

Output: OUT/shared/..., OUT/rules/<rule>/<files>, OUT/index.json. Needs PyYAML and Jinja2.
"""

import argparse
import json
import lzma
import os
import re
import sys
import xml.etree.ElementTree as ET

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"
VALUE_PREFIX = "xccdf_org.ssgproject.content_value_"
PROFILE_PREFIX = "xccdf_org.ssgproject.content_profile_"


def control_rules(path, levels):
    """CaC rules and variable settings of the controls at any of `levels` (nested controls too)."""
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f)
    rules, variables = set(), {}

    def walk(controls):
        for c in controls or []:
            if any(level in levels for level in c.get("levels", []) or []):
                for r in c.get("rules", []) or []:
                    if "=" in r:
                        name, value = r.split("=", 1)
                        variables[name] = value
                    else:
                        rules.add(r)
            walk(c.get("controls"))

    walk(doc["controls"])
    return rules, variables


def datastream_facts(path):
    """From the product's data stream: rule -> (check systems, exported variables); variable ->
    (default value, {selector: value}); profile short id -> {variable: selector it refines}."""
    with lzma.open(path) as f:
        tree = ET.parse(f)
    rules, values, profiles = {}, {}, {}
    for benchmark in tree.iter(XCCDF + "Benchmark"):
        for rule in benchmark.iter(XCCDF + "Rule"):
            rid = rule.get("id", "").removeprefix(RULE_PREFIX)
            systems, exported = set(), set()
            for check in rule.iter(XCCDF + "check"):
                system = check.get("system", "")
                systems.add("oval" if "oval" in system else "sce" if "sce" in system else system)
                for export in check.iter(XCCDF + "check-export"):
                    exported.add(export.get("value-id", "").removeprefix(VALUE_PREFIX))
            rules[rid] = (sorted(systems), sorted(exported))
        for value in benchmark.iter(XCCDF + "Value"):
            vid = value.get("id", "").removeprefix(VALUE_PREFIX)
            default, options = None, {}
            for v in value.findall(XCCDF + "value"):
                selector = v.get("selector")
                text = v.text or ""
                if selector is None:
                    default = text
                else:
                    options[selector] = text
            values[vid] = (default, options)
        for profile in benchmark.iter(XCCDF + "Profile"):
            refined = {}
            for refine in profile.iter(XCCDF + "refine-value"):
                var = refine.get("idref", "").removeprefix(VALUE_PREFIX)
                refined[var] = refine.get("selector")
            profiles[profile.get("id", "").removeprefix(PROFILE_PREFIX)] = refined
    return rules, values, profiles


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", required=True, help="unpacked ComplianceAsCode source tree")
    ap.add_argument("--datastream", required=True, help="the product's data stream (.xml.xz)")
    ap.add_argument("--product", required=True)
    ap.add_argument("--controls", required=True, help="control file, relative to --content")
    ap.add_argument("--levels", required=True, help="comma-separated control levels")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    content = os.path.abspath(args.content)
    datastream = os.path.abspath(args.datastream)
    out = os.path.abspath(args.out)
    sys.path.insert(0, content)
    os.chdir(content)
    # ComplianceAsCode's own test tooling: the functions tests/automatus.py runs (through
    # ssg_test_suite.rule.RuleChecker) to find, render and parse a rule's scenarios
    from ssg.rules import is_rule_dir
    from ssg.utils import is_applicable_for_product
    from ssg.jinja import process_file
    from tests.ssg_test_suite import common
    from tests.ssg_test_suite.rule import Scenario

    product = args.product
    product_yaml = common.get_product_context(product)
    overrides = product_yaml.get("platform_package_overrides") or {}
    levels = set(args.levels.split(","))
    wanted, cis_values = control_rules(os.path.join(content, args.controls), levels)
    ds_rules, ds_values, ds_profiles = datastream_facts(datastream)

    rule_dirs = {}
    for dirpath, _, _ in common.walk_through_benchmark_dirs(product):
        if is_rule_dir(dirpath):
            rule_dirs[os.path.basename(dirpath)] = dirpath

    def resolve(var, value):
        """A selector of the variable, or a literal value, as the value the check compares."""
        _, options = ds_values.get(var, (None, {}))
        return options.get(value, value)

    os.makedirs(os.path.join(out, "rules"), exist_ok=True)
    index = {"product": product, "controls": args.controls, "levels": sorted(levels), "rules": []}
    used_templates = {}
    for rid in sorted(wanted):
        entry = {"rule": rid, "scenarios": []}
        index["rules"].append(entry)
        if rid not in rule_dirs:
            entry["missing"] = "no rule directory for the product"
            continue
        if rid not in ds_rules:
            entry["missing"] = "not in the product's data stream"
            continue
        rule, local_env = common.load_rule_and_env(rule_dirs[rid], product_yaml, product)
        template = rule.template["name"] if rule.template and rule.template.get("vars") else None
        entry["template"] = template
        checks, exported = ds_rules[rid]
        entry["checks"] = checks
        # the variables the rule's checks read: the value CIS judges with (its control file's
        # setting, else the variable's default)
        cis = {}
        for var in exported:
            default, _ = ds_values.get(var, (None, {}))
            cis[var] = resolve(var, cis_values[var]) if var in cis_values else default
        entry["cis_variables"] = cis
        if template == "sysctl":
            # the kernel parameter and the value CIS wants (the rule's fixed value, else its variable)
            tvars = rule.template["vars"]
            fixed = tvars.get("sysctlval")
            value = fixed if isinstance(fixed, str) and fixed else None
            if value is None and len(cis) == 1:
                value = next(iter(cis.values()))
            entry["sysctl"] = {"key": tvars["sysctlvar"], "cis_value": value}

        # as RuleChecker._find_tests_paths and _load_all_tests: templated scenarios (allowed by the
        # rule's test_config.yml), overridden by the rule's own files of the same name
        rule_nt = type("Rule", (), {})()
        rule_nt.rule, rule_nt.directory = rule, os.path.join(rule_dirs[rid], "tests")
        templated = common.fetch_templated_tests_paths(rule_nt, product_yaml)
        local = common.fetch_local_tests_paths(rule_nt.directory)
        for name in local:
            templated.pop(name, None)
        files = {}
        if templated:
            files.update(common.load_templated_tests(templated.values(), rule.template, local_env))
        files.update(common.load_local_tests(local.values(), local_env))

        rule_out = os.path.join(out, "rules", rid)
        os.makedirs(rule_out, exist_ok=True)
        for name, text in sorted(files.items()):
            # as common.write_rule_test_content_to_dir
            path = os.path.join(rule_out, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
                if not re.search(r".*\.[^.]*\.sh$", name):
                    f.write("\n")
            if not re.search(r".*\.[^.]*\.sh$", name):
                continue
            s = Scenario(name, text)
            p = s.script_params
            variables = {}
            for token in p["variables"]:
                var, value = token.split("=", 1)
                variables[var.strip()] = value.strip()
            named_profiles = [x.removeprefix(PROFILE_PREFIX) for x in p["profiles"]]
            viable = [x for x in named_profiles if x == "(all)" or x in ds_profiles]
            # per profile the scenario is scanned with (as tests/automatus.py does): the value each
            # variable the rule reads is judged with: the scenario's own setting, else the
            # profile's, else the default ("(all)" refines nothing)
            judged = {}
            for prof in viable:
                refined = ds_profiles.get(prof, {})
                judged[prof] = {
                    var: variables[var] if var in variables
                    else resolve(var, refined[var]) if var in refined
                    else ds_values.get(var, (None, {}))[0]
                    for var in cis
                }
            entry["scenarios"].append({
                "script": name,
                "expect": s.context,
                "templated": name in templated and name not in local,
                "platform": p["platform"],
                "platform_applies": is_applicable_for_product(",".join(p["platform"]), product),
                "check": p["check"],
                "check_applies": "any" in p["check"] or any(c in checks for c in p["check"]),
                "profiles": named_profiles,
                "profiles_in_product": viable,
                "remediation": p["remediation"],
                "packages": sorted({overrides.get(x) or x for x in p["packages"]}),
                "variables": variables,
                "judged_variables": judged,
            })
        if template:
            used_templates.setdefault(template, []).append(rid)

    # the $SHARED directory, rendered for the product (RuleChecker._get_shared_test_content)
    shared_src = os.path.join(content, "tests", "shared")
    for dirpath, _, filenames in os.walk(shared_src):
        for name in filenames:
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, shared_src)
            dst = os.path.join(out, "shared", rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                text = process_file(src, product_yaml)
            except Exception as e:  # as the test runner: a file that fails to render is left out
                print(f"render: {rel}: {e}", file=sys.stderr)
                continue
            with open(dst, "w") as f:
                f.write(text)
                f.write("\n")

    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    total = sum(len(r["scenarios"]) for r in index["rules"])
    print(f"rendered {total} scenarios of {len(index['rules'])} rules into {out}")


if __name__ == "__main__":
    main()
