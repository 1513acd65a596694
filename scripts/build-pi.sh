#!/usr/bin/env bash
# The one command that makes Petit for a Raspberry Pi (and for amd64), from any Linux machine
# with rustup: no C cross compiler, no Docker, no `cross`.
#
#   scripts/build-pi.sh [--arch all|arm64|amd64]         (default: all)
#
# For each architecture it:
#   1. installs the Rust target if missing (rustup target add aarch64-unknown-linux-musl /
#      x86_64-unknown-linux-musl); if that is impossible it says so and FAILS;
#   2. cargo build --release --locked --target <that target> (linked by rust-lld, fully static,
#      see .cargo/config.toml);
#   3. checks the binary: the right machine, static (no program interpreter, no shared
#      libraries); the arm64 one at most 6 MiB (the target in docs/performance.md; FAILS if over),
#      the amd64 one's size is printed, with a NOTE if it is over;
#   4. builds the Debian package with packaging/build-deb.sh.
# Results (under Cargo's target directory, target/ unless CARGO_TARGET_DIR says otherwise):
#   target/aarch64-unknown-linux-musl/release/pt     static pt for 64-bit Pi OS / Ubuntu (Pi 3/4/5, RK1)
#   target/x86_64-unknown-linux-musl/release/pt      static pt for amd64
#   target/debian/petit_VERSION-1_arm64.deb, target/debian/petit_VERSION-1_amd64.deb
# Test them with scripts/test-aarch64-qemu.sh and scripts/test-deb.sh. See docs/install-pi.md.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-pi.sh: FAIL: $*" >&2; exit 1; }
say() { echo "build-pi.sh: $*"; }

archs=(arm64 amd64)
case "${1:-}" in
"" ) ;;
--arch) case "${2:-}" in
        all) ;; arm64|amd64) archs=("$2") ;;
        *) die "--arch takes all, arm64 or amd64" ;; esac ;;
-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
*) die "unknown argument '$1' (usage: scripts/build-pi.sh [--arch all|arm64|amd64])" ;;
esac

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: the packages are built with dpkg (Debian, Ubuntu)"
if ! command -v readelf >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils >/dev/null; } \
            || die "cannot install binutils (readelf)"
    else
        die "readelf not found: install binutils"
    fi
fi

# Cargo's target directory (honours CARGO_TARGET_DIR and build.target-dir).
target_dir=$(cargo metadata --no-deps --format-version 1 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=$PWD/target
max_bytes=$((6 * 1024 * 1024))
host_pt=  # a pt that runs here, for the man page

target_of() { case "$1" in arm64) echo aarch64-unknown-linux-musl ;; amd64) echo x86_64-unknown-linux-musl ;; esac; }
machine_of() { case "$1" in arm64) echo AArch64 ;; amd64) echo 'X86-64' ;; esac; }

add_target() {
    local t=$1 why
    if rustup target list --installed 2>/dev/null | grep -qx "$t"; then return 0; fi
    command -v rustup >/dev/null \
        || die "cannot install the $t target: rustup is not installed (a distribution's rustc has no cross targets); the cross-build check FAILS"
    say "installing the Rust target $t"
    why=$(rustup target add "$t" 2>&1) \
        || die "cannot install the $t target: $(tail -n 1 <<<"$why"); the cross-build check FAILS"
}

check_binary() { # check_binary ARCH PATH
    local arch=$1 bin=$2 size
    readelf -h "$bin" | grep -q "Machine:.*$(machine_of "$arch")" || die "$bin is not a $(machine_of "$arch") binary"
    readelf -l "$bin" | grep -q 'Requesting program interpreter' && die "$bin is dynamically linked (has a program interpreter)"
    readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)' && die "$bin needs shared libraries"
    size=$(stat -c %s "$bin")
    mib=$(awk "BEGIN{printf \"%.2f\", $size/1048576}")
    if [ "$arch" = arm64 ]; then
        [ "$size" -le "$max_bytes" ] || die "$bin is $size bytes ($mib MiB), over the 6 MiB budget ($max_bytes bytes)"
        say "$bin: static $(machine_of "$arch"), $size bytes ($mib MiB; budget 6 MiB: ok)"
    elif [ "$size" -le "$max_bytes" ]; then
        say "$bin: static $(machine_of "$arch"), $size bytes ($mib MiB; within 6 MiB)"
    else
        # The budget is enforced for the Pi's binary. x86-64 code is larger here, and the
        # default static-PIE adds its relocations; reported, not hidden.
        say "NOTE: $bin: static $(machine_of "$arch"), $size bytes ($mib MiB): OVER the 6 MiB budget, which this script enforces for arm64 only"
    fi
}

# Build x86_64 first when asked for both: its binary writes the man page of both packages.
built=()
for arch in amd64 arm64; do
    [[ " ${archs[*]} " == *" $arch "* ]] || continue
    t=$(target_of "$arch")
    add_target "$t"
    say "cargo build --release --locked --target $t"
    start=$SECONDS
    cargo build --release --locked --target "$t" || die "cargo build for $t failed"
    bin=$target_dir/$t/release/pt
    say "built $t in $((SECONDS - start)) s"
    check_binary "$arch" "$bin"
    if [ -z "$host_pt" ] && "$bin" --version >/dev/null 2>&1; then host_pt=$bin; fi
    built+=("$arch")
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$host_pt" ]; then
    # Only the arm64 build, on an x86 machine: write the man page through qemu if it is here.
    if command -v qemu-aarch64-static >/dev/null; then
        printf '#!/bin/sh\nexec qemu-aarch64-static %q "$@"\n' "$target_dir/aarch64-unknown-linux-musl/release/pt" >"$tmp/pt"
        chmod +x "$tmp/pt"
        host_pt=$tmp/pt
    else
        die "no pt that runs on this machine to write the man page: use --arch all, or install qemu-user-static"
    fi
fi

for arch in "${built[@]}"; do
    deb=$(packaging/build-deb.sh "$arch" "$target_dir/$(target_of "$arch")/release/pt" "$host_pt" "$target_dir/debian") \
        || die "packaging/build-deb.sh $arch failed"
    say "package: $deb ($(stat -c %s "$deb") bytes)"
done
say "done"
