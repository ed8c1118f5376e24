#!/usr/bin/env bash
# Benchmark: the tree scans (`[[tree_scan]]`: world-writable files and directories, unowned and
# ungrouped files, setuid/setgid inventory, all from one parallel walk) against the `find`
# commands an auditor runs for the same questions, release build, warm page cache, hyperfine.
#
# Usage: bench/tree_scan.sh [ROOT...]   (default: / and the debootstrap root of tests/debootstrap.rs
#                                        under target/debootstrap/bookworm-ec2, when it exists)
#
# Compared on each ROOT:
#   ec2-harden (5 scans)  `check --root ROOT` with a baseline of just the five tree_scan rules
#   ec2-harden --only files  the embedded baseline's whole `files` family (tree scans included)
#   find suid/sgid        find ROOT -xdev \( -perm -4000 -o -perm -2000 \) -type f
#   find all-in-one       one find with every predicate (-nouser/-nogroup use the scanner's NSS)
#   find x5 (CIS style)   the five audit commands run one after the other, as benchmarks list them
# `find -xdev` never enters another filesystem; on the live root ec2-harden also walks the other
# local mounts (none on a single-volume AMI), so it never does less work than find.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 2; }
roots=("$@")
if [ ${#roots[@]} -eq 0 ]; then
    roots=(/)
    [ -d target/debootstrap/bookworm-ec2 ] && roots+=("$PWD/target/debootstrap/bookworm-ec2")
fi
cargo build --release --quiet
bin=$PWD/target/release/ec2-harden
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The five scans alone (family `bench`, selected with --only), so the time is the walk's; the
# embedded baseline is still parsed, as in every run.
{
    printf '[baseline]\nname = "bench-tree-scan"\nversion = "1"\ndescription = "tree scans only"\n'
    for scan in world-writable-files world-writable-dirs-no-sticky unowned ungrouped suid-sgid; do
        printf '\n[[tree_scan]]\nid = "bench-%s"\ntitle = "t"\nseverity = "info"\nfamily = "bench"\n' "$scan"
        printf 'rationale = "r"\nremediation = "r"\nscan = "%s"\n' "$scan"
    done
} >"$work/scans.toml"

echo "machine: $(nproc) cores, $(uname -srm)"
for root in "${roots[@]}"; do
    root=${root%/}
    r=${root:-/}
    entries=$(find "$r" -xdev 2>/dev/null | wc -l)
    echo
    echo "== root $r: $entries entries on its filesystem (find -xdev)"
    prune="\\( -path $root/proc -o -path $root/sys -o -path $root/dev -o -path $root/run \\) -prune -o"
    "$bin" check --root "$r" --baseline "$work/scans.toml" --only bench --format json --fail-on never \
        >"$work/report.json"
    python3 - "$work/report.json" <<'EOF' || true
import json, sys
r = json.load(open(sys.argv[1]))
for x in r["results"]:
    ev = x.get("evidence") or [{}]
    print(f'   {x["id"]:<40} {x["status"]:<6} {ev[0].get("message", x.get("cause", ""))[:110]}')
EOF
    hyperfine --warmup 3 --runs "${RUNS:-10}" -i --export-markdown "$work/$(echo "$r" | tr / _).md" \
        -n "ec2-harden (5 scans)" \
        "$bin check --root $r --baseline $work/scans.toml --only bench --format json --fail-on never" \
        -n "ec2-harden --only files" \
        "$bin check --root $r --only files --format json --fail-on never" \
        -n "find suid/sgid" \
        "find $r -xdev $prune \( -perm -4000 -o -perm -2000 \) -type f -print" \
        -n "find all-in-one" \
        "find $r -xdev $prune \( -type f -perm -0002 -o -type d -perm -0002 ! -perm -1000 -o -nouser -o -nogroup -o -type f -perm /6000 \) -print" \
        -n "find x5 (CIS style)" \
        "find $r -xdev $prune -type f -perm -0002 -print; find $r -xdev $prune -type d -perm -0002 ! -perm -1000 -print; find $r -xdev $prune -nouser -print; find $r -xdev $prune -nogroup -print; find $r -xdev $prune -type f -perm /6000 -print" \
        | grep -v '^ *Range\|^ *Warning\|^  *$' || true
    cat "$work/"*.md
    rm -f "$work/"*.md
done
