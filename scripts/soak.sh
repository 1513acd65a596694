#!/bin/sh
# Long crash and property soak: the tests that take a seed or a case count, run much longer
# than in `cargo test`.
#
# Usage: scripts/soak.sh [ROUNDS]
#   ROUNDS  how many times to run the property tests (default 3)
#
# Runs, from the repository root, with debug builds (never --release, never cargo clean):
#   1. tests/daemon_crash.rs with PETIT_DAEMON_KILLS=1000: a real `pt run` killed with
#      kill -9 a thousand times (about 30-40 minutes on a 2-core box);
#   2. tests/engine_crash.rs with PETIT_CRASH_ITERATIONS=1000: `pt trigger`/`pt resume`
#      killed a thousand times per crash kind;
#   3. tests/sim_props.rs with PROPTEST_CASES=20000, ROUNDS times (fresh random cases each):
#      the real engine loop over the simulated world;
#   4. tests/daemon_sim.rs with PROPTEST_CASES=${DAEMON_SIM_CASES:-300}: the real daemon turn
#      over the simulated world (each case is minutes of simulated firings; ~3 s a case).
# Each test prints its seed; replay a failure with PETIT_TEST_SEED=<seed> and the same knob,
# e.g. PETIT_TEST_SEED=123 PETIT_DAEMON_KILLS=1000 cargo test --test daemon_crash.
# Output goes to the terminal and to target/soak-<date>.log; the exit status is non-zero if any
# step failed (every step runs regardless).
set -u
cd "$(dirname "$0")/.." || exit 2
rounds=${1:-3}
log="target/soak-$(date -u +%Y%m%dT%H%M%SZ).log"

step() {
    echo "=== $* ($(date -u +%H:%M:%S))" | tee -a "$log"
    # A pipe loses the exit status in POSIX sh: a failure leaves a line in the log instead.
    { env "$@" 2>&1 || echo "soak: step failed: $*"; } | tee -a "$log"
}

# `env A=1 cmd` keeps the knobs visible in the log line.
step PETIT_DAEMON_KILLS=1000 cargo test --test daemon_crash -- --nocapture
step PETIT_CRASH_ITERATIONS=1000 cargo test --test engine_crash -- --nocapture
i=1
while [ "$i" -le "$rounds" ]; do
    step PROPTEST_CASES=20000 cargo test --test sim_props
    i=$((i + 1))
done
step PROPTEST_CASES="${DAEMON_SIM_CASES:-300}" cargo test --test daemon_sim

if grep -q '^soak: step failed' "$log"; then
    echo "soak: FAILED (see $log)" | tee -a "$log"
    exit 1
fi
echo "soak: all passed" | tee -a "$log"
