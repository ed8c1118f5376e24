#!/usr/bin/env bash
# ec2-harden against its peers, on this machine, in one run, warm cache; writes bench/RESULTS.md.
#
#   bench/compare.sh [--quick] [--skip-scaling] [--skip-criterion]
#
# Rows (wall time, CPU time = user + sys, peak RSS, from GNU time -v; the median run of several):
#   check       `ec2-harden check --skip fim` of this host   vs  `lynis audit system --quick`, and
#               the same check without the files family (its whole-filesystem metadata walk)
#   walk        `ec2-harden check --only files` (world-writable, unowned, ungrouped, setuid
#               over every local file)               vs  the CIS audit's `find / -xdev` for the same
#   fim init    over /usr/bin /usr/sbin /usr/lib /etc       vs  AIDE --init (sha256 only),
#               find | xargs -0 -P$(nproc) sha256sum, the same with `openssl dgst -sha256`
#   fim verify  the same tree                               vs  AIDE --check (sha256 only)
#   scaling     fim init on generated trees of 10k, 100k and 1M small files (time and RSS)
#   parsers     criterion microbenchmarks (benches/parsers.rs)
# The agent measured is the shipped artifact: the static x86_64 musl binary, release profile
# (scripts/build-static.sh). Needs root (lynis, AIDE and the agent read root-only files), GNU time,
# lynis and aide (apt-get install time lynis aide), hyperfine for the --version row. The peers are
# benchmark-only: CI does not install them. --quick: fewer runs, no 1M-file tree.
# bench/check.sh and bench/fim.sh are the quick single-topic versions of the first rows.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 scaling=1 criterion=1
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        --skip-scaling) scaling=0 ;;
        --skip-criterion) criterion=0 ;;
        *) echo "usage: bench/compare.sh [--quick] [--skip-scaling] [--skip-criterion]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/compare.sh: run as root (lynis, AIDE and the agent read root-only files)" >&2; exit 2; }
for tool in /usr/bin/time lynis aide openssl sha256sum hyperfine; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench/compare.sh: needs $tool (apt-get install time lynis aide hyperfine)" >&2; exit 2; }
done

bin=$(scripts/build-static.sh x86_64-unknown-linux-musl)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /var/tmp/ec2h-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc)
dirs=(/usr/bin /usr/sbin /usr/lib /etc)
path_args=()
for d in "${dirs[@]}"; do path_args+=(--path "$d"); done
if [ "$quick" -eq 1 ]; then agent_runs=3 peer_runs=1; else agent_runs=5 peer_runs=3; fi
export AWS_EC2_METADATA_DISABLED=true # the agent's IMDS step would only time out here

# shellcheck source=bench/measure.sh
. bench/measure.sh

echo "== check of this host (warm-up run first)" >&2
"$bin" check --skip fim --fail-on never --format json >"$work/check.json" 2>/dev/null || true
IFS=$'\t' read -r rules _ entries < <(report_facts "$work/check.json")
measure check "ec2-harden check --skip fim ($rules rules)" "$agent_runs" "$bin" check --skip fim --fail-on never
rules_nowalk=$("$bin" check --skip fim,files --fail-on never --format json 2>/dev/null | grep -c '"duration_us"' || true)
measure check "ec2-harden check --skip fim,files ($rules_nowalk rules: no filesystem walk)" "$agent_runs" "$bin" check --skip fim,files --fail-on never
lynis audit system --quick --no-colors >/dev/null 2>&1 || true
measure check "lynis audit system --quick" "$peer_runs" lynis audit system --quick --no-colors

echo "== the whole-filesystem walk of the files family" >&2
measure walk "ec2-harden check --only files" "$agent_runs" "$bin" check --only files --fail-on never
# the CIS benchmark's audit commands for the same rules, as one find (GNU find caches the
# user and group lookups of -nouser/-nogroup)
measure walk "find / -xdev ... ( -perm -0002 -o -nouser -o -nogroup -o -perm /6000 )" "$peer_runs" bash -c \
    'find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run \) -prune -o \( -perm -0002 -o -nouser -o -nogroup -o -perm /6000 \) -print >/dev/null 2>&1 || true'

echo "== fim over ${dirs[*]} (warm cache)" >&2
files=$(find "${dirs[@]}" -xdev -type f 2>/dev/null | wc -l)
bytes=$(find "${dirs[@]}" -xdev -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
find "${dirs[@]}" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P"$jobs" -n 512 cat >/dev/null 2>&1 || true
manifest=$work/manifest
"$bin" fim init "${path_args[@]}" --manifest "$manifest" >/dev/null
measure "fim init" "ec2-harden fim init" "$agent_runs" "$bin" fim init "${path_args[@]}" --manifest "$manifest"
{
    echo "database_in=file:$work/aide.db"
    echo "database_out=file:$work/aide.db.new"
    echo "gzip_dbout=no"
    echo "Sha = p+u+g+s+n+sha256"
    for d in "${dirs[@]}"; do echo "$d Sha"; done
} >"$work/aide.conf"
measure "fim init" "aide --init (sha256)" "$peer_runs" aide --init --config "$work/aide.conf"
cp "$work/aide.db.new" "$work/aide.db"
measure "fim init" "find | xargs -P$jobs sha256sum" "$peer_runs" bash -c \
    'find "$@" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P'"$jobs"' -n 256 sha256sum >/dev/null 2>&1 || true' _ "${dirs[@]}"
measure "fim init" "find | xargs -P$jobs openssl dgst -sha256" "$peer_runs" bash -c \
    'find "$@" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P'"$jobs"' -n 256 openssl dgst -sha256 >/dev/null 2>&1 || true' _ "${dirs[@]}"
measure "fim verify" "ec2-harden fim verify" "$agent_runs" "$bin" fim verify --manifest "$manifest"
# AIDE's exit status is a bit mask of what changed (1 added, 2 removed, 4 changed); 14+ is an error
measure "fim verify" "aide --check (sha256)" "$peer_runs" bash -c \
    'aide --check --config "$1"; rc=$?; [ "$rc" -lt 14 ]' _ "$work/aide.conf"

if [ "$scaling" -eq 1 ]; then
    echo "== scaling: fim init on generated trees of small files" >&2
    sizes=(10000 100000 1000000)
    [ "$quick" -eq 0 ] || sizes=(10000 100000)
    made=0
    for n in "${sizes[@]}"; do
        tree=$work/tree
        # grow the same tree: 1000 files of 64-200 bytes per directory
        python3 - "$tree/files" "$made" "$n" <<'EOF'
import os, sys
top, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(start, end):
    d = os.path.join(top, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d" % (i % 1000)), "wb") as f:
        f.write(("file %d\n" % i).encode() * (8 + i % 17))
EOF
        made=$n
        "$bin" fim init --root "$tree" --path /files --manifest "$work/scale.manifest" >/dev/null
        measure scaling "fim init, $n files" 1 "$bin" fim init --root "$tree" --path /files --manifest "$work/scale.manifest"
    done
fi

if [ "$criterion" -eq 1 ]; then
    echo "== criterion: cargo bench --bench parsers" >&2
    cargo bench --quiet --bench parsers -- --noplot 2>/dev/null | tee "$work/criterion" >&2
fi

echo "== --version (hyperfine)" >&2
hyperfine -N --warmup 20 --runs 300 --export-json "$work/version.json" "$bin --version" >/dev/null 2>&1
version_ms=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.2f ms mean, %.2f ms max" % (r["mean"]*1000, r["max"]*1000))' "$work/version.json")

# --- RESULTS.md --------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
size=$(stat -c %s "$bin")
{
    echo "# Benchmark results"
    echo
    echo "Written by \`bench/compare.sh\` on $(date -u +%Y-%m-%d) (all rows from one run, warm page cache)."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | $cpu, $jobs cores ($(grep -m1 -o -w sha_ni /proc/cpuinfo || echo 'no sha_ni')) |"
    echo "| memory | $mem |"
    echo "| OS | $os, kernel $(uname -r) |"
    echo "| agent | \`ec2-harden $("$bin" --version | awk '{print $2}')\`, static x86_64 musl, release profile, $size bytes stripped; \`--version\`: $version_ms |"
    echo "| peers | lynis $(lynis --version), $(aide --version 2>&1 | head -1), $(openssl version | cut -d' ' -f1-2), GNU coreutils $(sha256sum --version | head -1 | awk '{print $NF}') |"
    echo "| FIM tree | ${dirs[*]}: $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }') |"
    walk_wall=$(awk -F'\t' '$1 == "walk" { print $3; exit }' "$work/rows")
    echo "| local filesystems | $entries entries walked by the files family's tree scans ($(awk -v w="$walk_wall" -v n="$entries" 'BEGIN { printf "%.0f ms per 100k entries", w * 1000 / n * 100000 }') with \`check --only files\`) |"
    echo "| load average | $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine competes for its cores) |"
    echo
    echo "Wall and CPU time (user + sys) are the median of $agent_runs runs for the agent and $peer_runs for the peers;"
    echo "peak RSS is the largest seen (for the find | xargs pipelines, that of the largest single process)."
    echo "The ratio is the peer's wall time over the agent's (how many times faster the agent is)."
    echo
    # check: the agent's two rows against lynis (the last row); the others: each peer against
    # the agent (the first row)
    for group in check walk "fim init" "fim verify"; do
        echo "### $group"
        echo
        if [ "$group" = check ]; then table "$group" last; else table "$group" first; fi
        echo
    done
    if [ "$scaling" -eq 1 ]; then
        echo "### scaling: \`fim init\` on generated trees of small files (64-200 bytes, 1000 per directory)"
        echo
        echo "| files | wall s | CPU s | peak RSS MB | wall per 100k files |"
        echo "|---:|---:|---:|---:|---:|"
        awk -F'\t' '$1 == "scaling" { split($2, w, " "); n = w[3]; printf "| %d | %.3f | %.3f | %.1f | %.3f s |\n", n, $3, $4, $5, $3 / n * 100000 }' "$work/rows"
        echo
    fi
    if [ "$criterion" -eq 1 ]; then
        echo "### parsers (criterion, \`cargo bench --bench parsers\`)"
        echo
        echo "| benchmark | time (95% interval: low, estimate, high) | throughput |"
        echo "|---|---|---|"
        awk '
            /^[a-z].*\// && !/time:/ { name = $0; sub(/[ \t]+$/, "", name) }
            /time:/ {
                if ($0 ~ /^[^ ]/) { name = $0; sub(/[ \t]+time:.*/, "", name) }
                line = $0; sub(/.*time: *\[/, "", line); sub(/\].*/, "", line); t[name] = line; order[++n] = name
            }
            /thrpt:/ { line = $0; sub(/.*thrpt: *\[/, "", line); sub(/\].*/, "", line); split(line, p, " "); th[name] = p[3] " " p[4] }
            END { for (i = 1; i <= n; i++) printf "| %s | %s | %s |\n", order[i], t[order[i]], th[order[i]] }' "$work/criterion"
        echo
    fi
} > bench/RESULTS.md
cat bench/RESULTS.md
