#!/usr/bin/env bash
# Benchmark: wall time of `ec2-harden check` (embedded baseline) on this host and on the fixture
# trees, with a release build and a warm cache. Uses hyperfine when installed (apt-get install
# hyperfine), else a plain loop. Usage: bench/check.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
cargo build --release --quiet
bin=target/release/ec2-harden
fixture=$(mktemp -d)
trap 'rm -rf "$fixture"' EXIT
cp -a tests/fixtures/roots/debian-12-default/. "$fixture/"
echo "machine: $(nproc) cores, $(uname -srm)"
echo "rules on this host: $("$bin" check --format json --fail-on never | grep -c '"duration_us"')"
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 5 --runs "$runs" -N \
        "$bin check --fail-on never" \
        "$bin check --fail-on never --format json" \
        "$bin check --fail-on never --root $fixture"
else
    for args in "check --fail-on never" "check --fail-on never --format json" "check --fail-on never --root $fixture"; do
        start=$(date +%s%N)
        for _ in $(seq "$runs"); do $bin $args >/dev/null; done
        end=$(date +%s%N)
        echo "$args: mean $(( (end - start) / runs / 1000 )) us over $runs runs"
    done
fi
