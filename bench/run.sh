#!/usr/bin/env bash
# The Petit benchmark harness: one command for every figure of docs/performance.md.
#
#   bash bench/run.sh [--quick] [--rounds N] [--json-out FILE] [--skip idle,history,binary]
#
# 1. Installs the peers if missing (make, ninja-build, binutils for strip, python3, strace) with
#    apt-get on Debian; needs root or sudo for that, else install them yourself. (Peak RSS and I/O
#    come from wait4 and /proc, through bench/tools/src/bin/measure.rs, not GNU time.)
# 2. Builds `pt` in release (cargo build --release) and the harness's helper programs
#    (bench/tools: `measure`, `histgen`; a crate of its own that shares target/ with pt).
# 3. Runs bench/bench.py: the same DAGs under make -j4, ninja -j4 and pt trigger -t 4,
#    alternating the tools every round (default 5 rounds, --quick 2), then the footprint
#    figures (bytes written per attempt, idle daemon RSS and wake-ups over 60 s or 10 s with
#    --quick, restart after kill -9 and `pt history` with 100,000 runs, stripped binary size).
#    See the docstring of bench/bench.py for what each figure means and how it is measured.
#
# Prints a table with every figure next to its target. Exits non-zero on any error.
# Temporary files go to target/bench-tmp/run-*/ (on disk, not tmpfs) and are removed at the end;
# no pt process is left running. Quick mode takes about 2-3 minutes once everything is built.
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

echo "bench: building pt (release)" >&2
cargo build --release --locked --bin pt >&2
echo "bench: building bench/tools (release)" >&2
tools_target="$root/target"
cargo build --release --locked --manifest-path bench/tools/Cargo.toml \
    --target-dir "$tools_target" >&2

exec python3 bench/bench.py --pt "$root/target/release/pt" --tools "$tools_target/release" "$@"
