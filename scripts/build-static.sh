#!/usr/bin/env bash
# Static release binaries of ec2-harden for EC2's two architectures, linked against musl with zig
# as the C toolchain (the C in our dependencies: bundled SQLite, and the TLS stack's crypto).
#
#   scripts/build-static.sh [--profile NAME] [TARGET...]
#
# TARGET: x86_64-unknown-linux-musl and/or aarch64-unknown-linux-musl (default: both).
# --profile: the cargo profile (default `release`; CI's packaging uses `dist`, see Cargo.toml).
# Prints the path of each stripped static binary on stdout, one per line, in TARGET order; logs go
# to stderr. Installs what it needs, only when missing, at pinned versions:
#   - the rustup targets,
#   - cargo-zigbuild (cargo install --locked, into ~/.cargo/bin),
#   - zig from the `ziglang` PyPI package, in a venv under target/zig-venv.
# A second run with nothing changed is a no-op build (cargo's own cache, under target/static).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_ZIGBUILD_VERSION=0.24.1
ZIG_VERSION=0.15.2

log() { echo "build-static: $*" >&2; }
die() { log "error: $*"; exit 2; }

profile=release
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
        --profile=*) profile="${1#--profile=}"; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        x86_64-unknown-linux-musl|aarch64-unknown-linux-musl) targets+=("$1"); shift ;;
        *) die "unknown target or option '$1' (expected x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, --profile NAME)" ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
command -v rustup >/dev/null 2>&1 || die "rustup not found (the musl targets are added with it)"

# --- toolchain -------------------------------------------------------------------------------
installed_targets=$(rustup target list --installed)
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$installed_targets"; then
        log "rustup target add $t"
        rustup target add "$t" >&2
    fi
done

if [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]; then
    log "cargo install cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
    cargo install --locked --quiet cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION" >&2
fi

venv=target/zig-venv
if [ "$(cat "$venv/.version" 2>/dev/null)" != "ziglang==$ZIG_VERSION" ]; then
    log "zig $ZIG_VERSION (PyPI ziglang) into $venv"
    rm -rf "$venv"
    python=/usr/bin/python3
    [ -x "$python" ] || python=python3
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIG_VERSION" >&2
    echo "ziglang==$ZIG_VERSION" > "$venv/.version"
fi
zig=$("$venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
[ -x "$zig" ] || die "no zig executable at $zig"
export CARGO_ZIGBUILD_ZIG_PATH="$zig"

# --- build -----------------------------------------------------------------------------------
# A target dir of its own: the static builds never wait on (or invalidate) the debug/test builds.
target_dir=target/static
for t in "${targets[@]}"; do
    log "cargo zigbuild --profile $profile --target $t"
    start=$(date +%s)
    # strip=symbols: rustc has the linker drop the symbol tables (zig cc supports it for both
    # arches, where binutils' strip only knows the host's)
    strip_var="CARGO_PROFILE_$(tr 'a-z-' 'A-Z_' <<<"$profile")_STRIP"
    env "$strip_var=symbols" \
        cargo zigbuild --locked --quiet --profile "$profile" --target "$t" --target-dir "$target_dir" >&2
    bin="$target_dir/$t/$profile/ec2-harden"
    [ -x "$bin" ] || die "cargo built no $bin"
    # static means no program interpreter (dynamic loader) in the program headers
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        die "$bin has a PT_INTERP program header: it is not static"
    fi
    if readelf -SW "$bin" | grep -q '\.symtab'; then
        die "$bin still has a symbol table: it is not stripped"
    fi
    log "$t: $(stat -c %s "$bin") bytes, built in $(( $(date +%s) - start )) s"
    echo "$PWD/$bin"
done
