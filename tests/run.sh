#!/usr/bin/env bash
# The whole test suite: the command the README gives and the one CI (.ci/run) calls.
# It installs what is missing, then runs formatting, lints, unit and integration tests, including
# the ones plain `cargo test` leaves out: `#[ignore = "needs root: ..."]`, `"needs network: ..."`,
# `"needs tools: ..."` (fixture files with exact owners, network namespaces, debootstrap, qemu,
# packer, OpenSCAP, the Python venv; see tests/common/mod.rs). So it needs root and network, and
# ComplianceAsCode's content beside the project in ../shared/reference/ (tests/openscap.rs fails
# without it).
# Plain `cargo test`, as any user and offline, is the fast tier: unit tests and what runs
# unprivileged.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E env "PATH=$PATH" bash "$0" "$@"
    fi
    echo "tests/run.sh: the test suite must run as root (fixtures set file owners)" >&2
    exit 2
fi

# --- prerequisites ---------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "tests/run.sh: cargo not found (install Rust with rustup)" >&2; exit 2; }
if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
    done
fi
apt_needed=()
command -v cc >/dev/null 2>&1 || apt_needed+=(gcc libc6-dev)
# a real Debian root for tests/debootstrap.rs (cached under target/debootstrap after the first run)
command -v debootstrap >/dev/null 2>&1 || apt_needed+=(debootstrap)
# the patch family's oracles (tests/patch.rs): dpkg is there; rpm, rpmbuild, createrepo_c and dnf
command -v rpmbuild >/dev/null 2>&1 || apt_needed+=(rpm)
command -v createrepo_c >/dev/null 2>&1 || apt_needed+=(createrepo-c)
command -v dnf >/dev/null 2>&1 || apt_needed+=(dnf)
# Berkeley DB's own db5.3_load writes Amazon Linux 2's rpm Packages database for tests/patch.rs
command -v db5.3_load >/dev/null 2>&1 || apt_needed+=(db5.3-util)
# dpkg-scanpackages indexes the file:// repository of the --refresh-metadata test
command -v dpkg-scanpackages >/dev/null 2>&1 || apt_needed+=(dpkg-dev)
# the integrations (tests/integrations.rs): Packer 1.6.6 and sshd for its null-source build,
# cloud-init's schema, systemd-analyze, and a Python venv (below) for the AWS CLI, moto, cfn-lint
command -v packer >/dev/null 2>&1 || apt_needed+=(packer)
command -v cloud-init >/dev/null 2>&1 || apt_needed+=(cloud-init)
[ -x /usr/sbin/sshd ] || apt_needed+=(openssh-server)
command -v sudo >/dev/null 2>&1 || apt_needed+=(sudo)
command -v systemd-analyze >/dev/null 2>&1 || apt_needed+=(systemd)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || apt_needed+=(python3-venv)
# the firewall family (tests/firewall.rs): real nftables/iptables inside private network namespaces
command -v nft >/dev/null 2>&1 || apt_needed+=(nftables)
command -v iptables >/dev/null 2>&1 || apt_needed+=(iptables)
command -v ip >/dev/null 2>&1 || apt_needed+=(iproute2)
command -v python3 >/dev/null 2>&1 || apt_needed+=(python3)
# the static binaries and packages (tests/dist.rs via scripts/dist.sh, which installs its own zig,
# cargo-zigbuild, cargo-deb and cargo-generate-rpm): readelf proves them static and stripped
command -v readelf >/dev/null 2>&1 || apt_needed+=(binutils)
# ... and the aarch64 one runs under user-mode qemu, invoked directly (no binfmt needed)
command -v qemu-aarch64-static >/dev/null 2>&1 || apt_needed+=(qemu-user-static)
# ... and the .rpm's %post runs in a bare rpm root under a static busybox shell
[ -x /bin/busybox ] || apt_needed+=(busybox-static)
# the crypt family (tests/crypt.rs): real LUKS1/LUKS2 headers from cryptsetup luksFormat on files;
# tests/crypt_vm.rs boots a Debian kernel in qemu from a cpio initramfs that runs this host's
# cryptsetup and mke2fs (the kernel and busybox-static are downloaded by the test, never installed)
command -v cryptsetup >/dev/null 2>&1 || apt_needed+=(cryptsetup-bin)
command -v cpio >/dev/null 2>&1 || apt_needed+=(cpio)
command -v mke2fs >/dev/null 2>&1 || apt_needed+=(e2fsprogs)
# the CIS profiles' truth test (tests/openscap.rs): OpenSCAP's oscap and oscap-chroot judge a
# debootstrapped root with ComplianceAsCode's data stream, read from ../shared/reference/
{ command -v oscap && command -v oscap-chroot; } >/dev/null 2>&1 || apt_needed+=(openscap-scanner openscap-utils)
# ComplianceAsCode's rule scenarios (tests/scenarios.rs): tests/scenarios/render.py renders them with
# CaC's own test tooling under Debian's python3 (Jinja2, PyYAML); overlayfs, unshare and setpriv
# (util-linux) confine each one
/usr/bin/python3 -c 'import jinja2, yaml' 2>/dev/null || apt_needed+=(python3-jinja2 python3-yaml)
command -v setpriv >/dev/null 2>&1 || apt_needed+=(util-linux)
# qemu without its recommends (the GTK front end, firmware for other machines)
apt_needed_lean=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || apt_needed_lean+=(qemu-system-x86)
if [ "${#apt_needed[@]}" -gt 0 ] || [ "${#apt_needed_lean[@]}" -gt 0 ]; then
    apt-get update -qq
fi
if [ "${#apt_needed[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}"
fi
if [ "${#apt_needed_lean[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_needed_lean[@]}"
fi
# Python tools in a venv cached under target/ (rebuilt when this list changes): tests/integrations.rs
# (AWS CLI, moto, PyYAML, cfn-lint) and the local SSM endpoint tests/ssm/endpoint.py (botocore from
# awscli, moto behind it; tests/ssm_endpoint.rs drives it with the AWS CLI)
venv_packages=(awscli "moto[server]" pyyaml cfn-lint)
if [ "$(cat target/venv/.packages 2>/dev/null)" != "${venv_packages[*]}" ]; then
    rm -rf target/venv
    /usr/bin/python3 -m venv target/venv
    target/venv/bin/pip install -q --disable-pip-version-check "${venv_packages[@]}"
    echo "${venv_packages[*]}" > target/venv/.packages
fi
# tests/patch.rs compares the agent with apt over this host's own lists: there must be some
if ! ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'; then
    apt-get update -qq
fi

# --- checks ----------------------------------------------------------------------------------
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# every test binary runs even when one fails, so the closing count covers the whole suite
status=0
INSTA_UPDATE=no cargo test --all-targets --no-fail-fast -- --include-ignored 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
