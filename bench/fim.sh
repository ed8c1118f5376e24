#!/usr/bin/env bash
# Benchmark: `ec2-harden fim init` and `fim verify` against plain hashing tools on the same tree,
# release build, warm page cache. Wall time and peak RSS come from `/usr/bin/time -v` (for the
# find|xargs pipelines, peak RSS is that of the largest single process). AIDE runs too when it
# is installed (apt-get install aide), with a sha256-only rule.
#
# Usage: bench/fim.sh [DIR...]        (default: /usr/bin /usr/sbin /usr/lib /etc)
#
# `fim init --path DIR` (repeatable) replaces the default include list, so the benchmark covers
# exactly DIR... with the default exclusions.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(/usr/bin /usr/sbin /usr/lib /etc)
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/ec2-harden
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
manifest=$work/manifest
path_args=()
for d in "${dirs[@]}"; do path_args+=(--path "$d"); done
jobs=$(nproc)

files=$(find "${dirs[@]}" -xdev -type f 2>/dev/null | wc -l)
bytes=$(find "${dirs[@]}" -xdev -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}')
echo "machine: $jobs cores, $(uname -srm), $(grep -m1 -o -w sha_ni /proc/cpuinfo || echo 'no sha_ni')"
echo "tree:    ${dirs[*]}: $files files, $(awk -v b="$bytes" 'BEGIN {printf "%.2f GB", b/1e9}')"

# Warm the page cache (and check the commands work) before timing anything.
"$bin" fim init "${path_args[@]}" --manifest "$manifest" >/dev/null
cat_all() { find "${dirs[@]}" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P"$jobs" -n 512 cat >/dev/null 2>&1 || true; }
cat_all

rows=()
# measure NAME COMMAND...: runs under /usr/bin/time -v, records "name wall_s rss_mb".
measure() {
    local name=$1; shift
    local log=$work/time.log
    /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/stderr" || {
        local rc=$?
        # fim verify exits 1 when something changed between the two runs; that is still a run.
        if [ "$name" != "fim verify" ] || [ "$rc" -ne 1 ]; then
            echo "$name failed ($rc):" >&2; cat "$work/stderr" >&2; exit 1
        fi
    }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$log")
    rows+=("$name"$'\t'"$wall"$'\t'"$rss")
}

measure "fim init" "$bin" fim init "${path_args[@]}" --manifest "$manifest"
measure "fim verify" "$bin" fim verify --manifest "$manifest"
measure "find|xargs -P$jobs sha256sum" bash -c \
    'find "$@" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P'"$jobs"' -n 256 sha256sum >/dev/null 2>&1 || true' _ "${dirs[@]}"
measure "find|xargs -P$jobs openssl dgst" bash -c \
    'find "$@" -xdev -type f -print0 2>/dev/null | xargs -0 -r -P'"$jobs"' -n 256 openssl dgst -sha256 >/dev/null 2>&1 || true' _ "${dirs[@]}"
if command -v aide >/dev/null 2>&1; then
    {
        echo "database_out=file:$work/aide.db.new"
        echo "gzip_dbout=no"
        echo "Sha = p+u+g+s+n+sha256"
        for d in "${dirs[@]}"; do echo "$d Sha"; done
    } >"$work/aide.conf"
    measure "aide --init (sha256)" aide --init --config "$work/aide.conf"
fi

echo "manifest: $(stat -c %s "$manifest") bytes compressed"
echo
printf '%-32s %10s %12s %14s\n' "command" "wall s" "peak RSS MB" "wall vs init"
init_wall=$(printf '%s\n' "${rows[0]}" | cut -f2)
for row in "${rows[@]}"; do
    IFS=$'\t' read -r name wall rss <<<"$row"
    ratio=$(awk -v a="$wall" -v b="$init_wall" 'BEGIN { if (b > 0) printf "%.2fx", a/b; else print "-" }')
    printf '%-32s %10s %12s %14s\n' "$name" "$wall" "$rss" "$ratio"
done
