#!/usr/bin/env bash
# The Petit benchmark harness: one command for every figure of docs/performance.md.
#
#   bash bench/run.sh [--quick] [--rounds N] [--json-out FILE] [--skip SECTIONS] [--only SECTIONS]
#   (SECTIONS: a comma list of dags,idle,paused,history,web,binary; e.g. --only web)
#
# 1. Installs the peers if missing (make, ninja-build, binutils for strip, python3, strace) with
#    apt-get on Debian; needs root or sudo for that, else install them yourself. (Peak RSS and I/O
#    come from wait4 and /proc, through bench/tools/src/bin/measure.rs, not GNU time.)
# 2. Builds `pt` twice in release: the glibc build (cargo build --release, target/release/pt)
#    and the static musl one that ships (--target x86_64-unknown-linux-musl --features tui,
#    the command of scripts/build-pi.sh; installs the Rust target with rustup if missing), and
#    the harness's helper programs (bench/tools: `measure`, `histgen`, `spawnfloor`,
#    `pagecount`; a crate of its own that shares the target directory with pt).
# 3. Runs bench/bench.py: the same DAGs under make -j4, ninja -j4, the spawn floor (spawnfloor
#    -j 4: posix_spawnp and waitpid, nothing else) and pt trigger -t 4 with both binaries,
#    alternating the tools every round (default 5 rounds, --quick 2); then the footprint
#    figures: bytes written per attempt and where they go (strace of the commits), idle daemon
#    RSS (smaps_rollup) and wake-ups over 60 s or 10 s with --quick for both binaries, a paused
#    every-second job's writes over 10 s, restart after kill -9 and `pt history` with 100,000
#    runs, `pt web` (page latency with 100 jobs and 100,000 runs, trigger to event over SSE,
#    five idle SSE pages' wake-ups, RSS) for both binaries, and the stripped sizes of the glibc,
#    musl x86_64 and (if scripts/build-pi.sh built them) aarch64 and armv7 binaries.
#    See the docstring of bench/bench.py for what each figure means and how it is measured.
#
# Prints a table with every figure next to its target. Exits non-zero on any error.
# Temporary files go to target/bench-tmp/run-*/ (on disk, not tmpfs) and are removed at the end;
# no pt process is left running. Quick mode takes about 3 minutes once everything is built.
# Results of a full run on the reference machine: docs/performance.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need=()
command -v make >/dev/null || need+=(make)
command -v ninja >/dev/null || need+=(ninja-build)
command -v strip >/dev/null || need+=(binutils)
command -v python3 >/dev/null || need+=(python3)
command -v strace >/dev/null || need+=(strace)  # optional: syscall counts per attempt
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y "${need[@]}" >&2 || {
        $sudo apt-get update >&2
        $sudo apt-get install -y "${need[@]}" >&2
    }
fi

# Cargo's target directory (honours CARGO_TARGET_DIR and build.target-dir), as scripts/build-pi.sh.
target_dir=$(cargo metadata --no-deps --format-version 1 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir="$root/target"

echo "bench: building pt (release, glibc)" >&2
cargo build --release --locked --bin pt >&2
# The static musl binary that ships: built as scripts/build-pi.sh builds it (with the TUI, linked
# by rust-lld per .cargo/config.toml), so that cargo has nothing to do if build-pi.sh ran.
musl=x86_64-unknown-linux-musl
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
    echo "bench: installing the Rust target $musl" >&2
    rustup target add "$musl" >&2
fi
echo "bench: building pt (release, static musl, --features tui)" >&2
cargo build --release --locked --target "$musl" --features tui --bin pt >&2
echo "bench: building bench/tools (release)" >&2
cargo build --release --locked --manifest-path bench/tools/Cargo.toml \
    --target-dir "$target_dir" >&2

exec python3 bench/bench.py --pt "$target_dir/release/pt" \
    --pt-musl "$target_dir/$musl/release/pt" --target-dir "$target_dir" \
    --tools "$target_dir/release" "$@"
