#!/usr/bin/env bash
# Benchmark: what asking IMDS adds to `ec2-harden check` when IMDS is missing or misbehaves, measured
# in private network namespaces so that no packet leaves this machine:
#   noroute  no route to 169.254.169.254 (connect fails at once)
#   drop     a link where nothing answers for 169.254.169.254 (the 1 s connect timeout runs out)
#   hang     169.254.169.254:80 accepts and reads, and never answers (two 1 s request timeouts)
# each against the same run with AWS_EC2_METADATA_DISABLED=true (IMDS not asked). The deadline says
# none of them may add more than ~3 s. Needs root, ip(8), python3 and hyperfine (Debian's package).
# Usage: bench/imds.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
[ "$(id -u)" -eq 0 ] || { echo "bench/imds.sh: needs root (network namespaces)" >&2; exit 2; }
command -v hyperfine >/dev/null 2>&1 || { echo "bench/imds.sh: apt-get install hyperfine" >&2; exit 2; }
cargo build --release --quiet
bin=$(pwd)/target/release/ec2-harden
tag="ec2h-imds-$$"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    for ns in noroute drop hang; do ip netns del "$tag-$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

for ns in noroute drop hang; do
    ip netns add "$tag-$ns"
    ip -n "$tag-$ns" link set lo up
done
# a link where nobody answers ARP for 169.254.169.254: the SYN never leaves, connect times out
ip -n "$tag-drop" link add veth0 type veth peer name veth1
ip -n "$tag-drop" addr add 169.254.0.2/16 dev veth0
ip -n "$tag-drop" link set veth0 up
ip -n "$tag-drop" link set veth1 up
ip -n "$tag-hang" addr add 169.254.169.254/32 dev lo
# accept, read, never answer; bounded: it exits by itself after 10 minutes
ip netns exec "$tag-hang" python3 -c '
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("169.254.169.254", 80)); s.listen(64); s.settimeout(1)
held = []; end = time.time() + 600
while time.time() < end:
    try:
        c, _ = s.accept(); c.settimeout(0.5)
        try: c.recv(4096)
        except OSError: pass
        held.append(c)
    except socket.timeout:
        pass
' &
server=$!
sleep 0.5

echo "machine: $(nproc) cores, $(uname -srm)"
for ns in noroute drop hang; do
    echo "== $ns: $(ip netns exec "$tag-$ns" "$bin" check --only imds 2>/dev/null | grep '^imds')"
    # only the imds family: the rest of a check (a whole-filesystem tree scan) is noise here
    ip netns exec "$tag-$ns" hyperfine -N --warmup 1 --runs "$runs" \
        -n "$ns: IMDS asked" "$bin check --only imds --fail-on never" \
        -n "$ns: AWS_EC2_METADATA_DISABLED=true" "env AWS_EC2_METADATA_DISABLED=true $bin check --only imds --fail-on never"
done
