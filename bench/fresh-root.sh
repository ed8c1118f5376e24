#!/usr/bin/env bash
# `ec2-harden check` against `lynis audit system --quick` on a freshly installed Debian 12, not on
# this (development) machine: debootstrap makes the system (minbase plus what an EC2 image carries:
# the cloud kernel, cloud-init, unattended-upgrades, the packages of tests/debootstrap.rs, and
# lynis), /proc, /sys and /dev of this kernel are mounted into it, and both tools run inside it
# under chroot, each auditing the system it runs on.
#
#   sudo bench/fresh-root.sh [--runs N]
#
# Writes bench/RESULTS-fresh-root.md (wall, CPU and peak RSS of the median run, as bench/compare.sh).
# Needs root, debootstrap, GNU time and Debian's archive (about 150 MB downloaded). The root, its
# mounts and everything else are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
        *) echo "usage: bench/fresh-root.sh [--runs N]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/fresh-root.sh: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
for tool in /usr/bin/time debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench/fresh-root.sh: needs $tool (apt-get install time debootstrap)" >&2; exit 2; }
done

bin=$(scripts/build-static.sh x86_64-unknown-linux-musl)
work=$(mktemp -d /var/tmp/ec2h-fresh.XXXXXX)
root=$work/root
cleanup() {
    local m
    for m in dev sys proc; do
        umount -R "$root/$m" 2>/dev/null || umount -lR "$root/$m" 2>/dev/null || true
    done
    # never into a mount that is still there (this machine's /dev, /sys): --one-file-system, and
    # not at all if one is left
    if grep -q " $work/" /proc/self/mounts; then
        echo "bench/fresh-root.sh: mounts left under $work; not removing it" >&2
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/measure.sh
. bench/measure.sh

echo "== debootstrap bookworm into $root" >&2
# what a Debian 12 EC2 image carries (its kernel, cloud-init, unattended upgrades, ...) and the
# packages tests/debootstrap.rs hardens, plus the peer; cloud-init (Python) is installed with apt
# afterwards, its Python packages do not configure in debootstrap's second stage
packages=linux-image-cloud-$(dpkg --print-architecture),unattended-upgrades,openssh-server,sudo,cron,chrony,auditd,nftables,libpam-pwquality,curl,ca-certificates,less,man-db,locales,systemd-sysv,lynis
later=cloud-init
debootstrap --variant=minbase --include="$packages" bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
install -m 0755 "$bin" "$root/usr/local/bin/ec2-harden"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
# no service may start inside the root (it would run on this machine)
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q "$later" >>"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"
packages="$packages,$later"
export AWS_EC2_METADATA_DISABLED=true # the agent's IMDS step would only time out here

in_root() { chroot "$root" "$@"; }
# the warm-up run, whose report says what the measured runs do
in_root /usr/local/bin/ec2-harden check --skip fim --fail-on never --format json >"$work/check.json" 2>/dev/null || true
IFS=$'\t' read -r rules baseline entries < <(report_facts "$work/check.json")
echo "== check vs lynis inside the fresh root ($entries entries, $rules rules of $baseline)" >&2
measure check "ec2-harden check --skip fim ($rules rules of $baseline, the tree scans over $entries entries included)" "$runs" chroot "$root" /usr/local/bin/ec2-harden check --skip fim --fail-on never
in_root lynis audit system --quick --no-colors >/dev/null 2>&1 || true
measure check "lynis audit system --quick" "$(( (runs + 1) / 2 ))" chroot "$root" lynis audit system --quick --no-colors

{
    echo "# ec2-harden check vs Lynis on a freshly installed Debian 12"
    echo
    echo "Written by \`bench/fresh-root.sh\` on $(date -u +%Y-%m-%d): \`debootstrap --variant=minbase\` of bookworm with"
    echo "${packages//,/, }; this machine's /proc, /sys and /dev mounted into it; both tools"
    echo "run inside it under \`chroot\` and audit it as their live system (warm cache, median of $runs agent"
    echo "runs and $(( (runs + 1) / 2 )) Lynis runs)."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores |"
    echo "| kernel | $(uname -r) |"
    echo "| root | $entries entries on its filesystem |"
    echo "| agent | \`ec2-harden $("$bin" --version | awk '{print $2}')\`, static x86_64 musl, release profile |"
    echo "| peer | lynis $(in_root lynis --version) (Debian's package) |"
    echo
    table check last
} > bench/RESULTS-fresh-root.md
cat bench/RESULTS-fresh-root.md
