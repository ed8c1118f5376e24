#!/usr/bin/env bash
# The worst input of each class of hostile input, with wall time, CPU and peak memory: every one
# must end within its limits (docs/limits.md), never hang or grow without bound.
#   bench/hostile.sh [--agent PATH]   (default target/release/ec2-harden, built when missing)
# Writes bench/RESULTS-hostile.md. Needs GNU time; no root, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
agent=target/release/ec2-harden
while [ $# -gt 0 ]; do
    case $1 in
        --agent) agent=$2; shift 2 ;;
        *) echo "usage: $0 [--agent PATH]" >&2; exit 2 ;;
    esac
done
[ -x "$agent" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/measure.sh
. bench/measure.sh
export AWS_EC2_METADATA_DISABLED=true

root() { # root NAME: a tree with an os-release
    mkdir -p "$work/$1/etc"
    printf 'ID=debian\nVERSION_ID="12"\n' >"$work/$1/etc/os-release"
    echo "$work/$1"
}

# 1. sshd_config whose includes fan out: 12 files each including the next 4 times (4^12 splices)
r=$(root sshd-fanout)
mkdir -p "$r/etc/ssh"
echo "Include f0.conf" >"$r/etc/ssh/sshd_config"
for i in $(seq 0 11); do
    for _ in 1 2 3 4; do echo "Include f$((i + 1)).conf"; done >"$r/etc/ssh/f$i.conf"
done
echo "PermitRootLogin no" >"$r/etc/ssh/f12.conf"
measure hostile "sshd Include fan-out, 4^12 splices (check --only ssh)" 3 \
    "$agent" check --offline --root "$r" --only ssh

# 2. nftables.conf whose defines each double the previous one (2^43 copies)
r=$(root nft-defines)
{
    echo "define v0 = 169.254.169.254"
    for i in $(seq 1 43); do echo "define v$i = \$v$((i - 1)) \$v$((i - 1))"; done
    printf 'table inet f {\n chain o {\n  type filter hook output priority 0; policy accept;\n  ip daddr $v43 drop\n }\n}\n'
} >"$r/etc/nftables.conf"
mkdir -p "$r/usr/lib/systemd/system" "$r/etc/systemd/system/sysinit.target.wants"
printf '[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n' >"$r/usr/lib/systemd/system/nftables.service"
ln -s /usr/lib/systemd/system/nftables.service "$r/etc/systemd/system/sysinit.target.wants/"
measure hostile "nft defines doubling 43 times (check --only firewall)" 3 \
    "$agent" check --offline --root "$r" --only firewall

# 3. nftables.conf whose includes fan out: 8 levels of 10 includes (10^8 files)
r=$(root nft-includes)
cp -a "$work/nft-defines/usr" "$r/"
mkdir -p "$r/etc/systemd" && cp -a "$work/nft-defines/etc/systemd/." "$r/etc/systemd/"
echo 'include "/etc/l1.nft"' >"$r/etc/nftables.conf"
for i in $(seq 1 8); do
    if [ "$i" -lt 8 ]; then
        for _ in $(seq 10); do echo "include \"/etc/l$((i + 1)).nft\""; done >"$r/etc/l$i.nft"
    else
        echo "define x = 1" >"$r/etc/l$i.nft"
    fi
done
measure hostile "nft include fan-out, 10^8 files (check --only firewall)" 3 \
    "$agent" check --offline --root "$r" --only firewall

# 4. a 100 MB line where the credential scan and sshd look
r=$(root long-line)
mkdir -p "$r/etc/ssh"
head -c 100000000 /dev/zero | tr '\0' 'A' >"$r/etc/environment"
cp "$r/etc/environment" "$r/etc/ssh/sshd_config"
measure hostile "100 MB line in /etc/environment and sshd_config (check --only credentials,ssh)" 1 \
    "$agent" check --offline --root "$r" --only credentials,ssh

# 5. a site baseline of 20,000 rules (positions of its diagnostics were once quadratic)
{
    printf '[baseline]\nname = "big"\nversion = "1"\n\n'
    for i in $(seq 20000); do
        printf '[[file_absent]]\nid = "rule-%d"\ntitle = "t"\nseverity = "low"\nrationale = "r"\nremediation = "m"\npath = "/etc/x%d"\n\n' "$i" "$i"
    done
} >"$work/big.toml"
measure hostile "baseline validate, 20,000 rules" 3 "$agent" baseline validate "$work/big.toml"

# 6. a spool of 10,000 reports and an endpoint that refuses connections
spool="$work/spool"
mkdir -p "$spool" && chmod 700 "$spool"
r=$(root spool-source)
"$agent" check --offline --root "$r" --only ssh --format json >"$work/report.json" || true
AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
    AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
    "$agent" check --root "$r" --only ssh --report ssm --instance-id i-0123456789abcdef0 \
    --region eu-west-1 --spool-dir "$spool" --report-deadline 1 >/dev/null 2>&1 || true
entry=$(ls "$spool"/*.json | head -1)
for i in $(seq 1 10000); do cp "$entry" "$spool/$(printf '%020d-%010d' "$i" 1).json"; done
# (flush exits 3: reports are left for the next run; measured all the same)
measure hostile "report flush of a 10,000-report spool, endpoint refusing (deadline 5 s)" 1 \
    bash -c '"$@"; exit 0' flush env AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
    AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
    "$agent" report flush --region eu-west-1 --spool-dir "$spool" --report-deadline 5
left=$(ls "$spool"/*.json | wc -l)

{
    echo "# Hostile input: worst cases, bounded"
    echo
    echo "\`bench/hostile.sh\` on $(nproc) cores, $(uname -r), agent \`$agent\` ($("$agent" --version))."
    echo "Each run ends with a report whose affected rules are \`error\`s naming the limit"
    echo "(docs/limits.md), or with the spool trimmed to its cap ($left reports left after the flush)."
    echo
    echo "| input | wall s | CPU s | peak RSS MB |"
    echo "|---|---:|---:|---:|"
    awk -F'\t' '$1 == "hostile" { printf "| %s | %s | %s | %s |\n", $2, $3, $4, $5 }' "$work/rows"
} >bench/RESULTS-hostile.md
cat bench/RESULTS-hostile.md
