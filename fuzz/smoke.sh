#!/usr/bin/env bash
# Short fuzzing smoke run of every target in fuzz/; .ci/run runs it for 20 s a target.
#
# Usage: fuzz/smoke.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, every target)
#
# Installs cargo-fuzz if missing (needs the nightly toolchain), copies each target's seed
# corpus (fuzz/corpus-seeds/<target>/) into a scratch corpus directory so the committed seeds
# never change, runs the target for the given time, and fails on the first crash. A crashing
# input is left in fuzz/artifacts/<target>/; add it to fuzz/corpus-seeds/<target>/ as
# `regression_<what>` and it becomes a stable test in tests/fuzz_seeds.rs.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jobs_parse schedule_parse record_decode core_step)
fi

toolchain="${PETIT_FUZZ_TOOLCHAIN:-nightly}"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/petit-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# Build every target first, so the time budget goes to fuzzing.
cargo "+$toolchain" fuzz build

status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  cp -r "corpus-seeds/$t/." "$scratch/$t/"
  echo "=== fuzz $t for ${secs}s ($(ls "$scratch/$t" | wc -l) seeds)"
  if ! cargo "+$toolchain" fuzz run "$t" "$scratch/$t" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"$scratch/$t.log"; then
    tail -n 60 "$scratch/$t.log"
    echo "=== $t: CRASH (input kept in fuzz/artifacts/$t/)"
    status=1
  else
    grep -E '^(stat::number_of_executed_units|Done)' "$scratch/$t.log" || tail -n 3 "$scratch/$t.log"
    echo "=== $t: ok"
  fi
done
exit "$status"
