#!/usr/bin/env bash
# Tests the static ARM `pt` under emulation (qemu-user-static), on an x86 machine: the 64-bit
# aarch64 one (default) or, with --arch armhf, the 32-bit armv7 one.
#
#   scripts/test-pi-qemu.sh [--arch arm64|armhf] [PT_BINARY]
#       (default binary: target/aarch64-unknown-linux-musl/release/pt, or for armhf
#        target/armv7-unknown-linux-musleabihf/release/pt)
#
# Build it first with scripts/build-pi.sh. Installs qemu-user-static and jq from Debian if they are missing
# (needs root and apt-get). binfmt_misc is not needed: every `pt` is run as
# `qemu-aarch64-static pt ...` (or qemu-arm-static). The tasks `pt` spawns are the host's own x86 sh/echo/sleep,
# which is fine: only `pt` is under test.
#
# Checks, in order (each failure names itself and exits non-zero):
#   1. the file is a static ELF of that machine (no program interpreter, no shared libraries);
#   2. pt --version prints the Cargo.toml version, and pt tui --help works (the dashboard is
#      in every packaged binary);
#   3. pt validate examples/ accepts every example;
#   4. pt trigger examples/ hello_world and retry_demo with the state on disk succeed, and
#      pt history (table and --json) shows them succeeded;
#   5. pt run on a jobs directory with an every-second job (`tick`) and a DAG whose first task
#      sleeps (`slow`): the daemon fires ticks; pt trigger slow --detach goes through its
#      socket; while `slow` sleeps, the daemon is killed with kill -9; a second pt run resumes:
#      the slow run succeeds with its first attempt recorded interrupted (and that attempt's
#      orphaned process killed), ticks fire again, and
#      no two tick runs share a scheduled slot; SIGTERM stops the daemon with exit 0, and
#      pt resume finishes what it interrupted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=$(cd "$root" && cargo metadata --no-deps --format-version 1 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' || true)
arch=arm64
if [ "${1:-}" = --arch ]; then arch=${2:-}; shift 2 || true; fi
case "$arch" in
arm64) triple=aarch64-unknown-linux-musl qemu=qemu-aarch64-static machine=AArch64 ;;
armhf) triple=armv7-unknown-linux-musleabihf qemu=qemu-arm-static machine=ARM ;;
*) echo "test-pi-qemu: FAIL: --arch takes arm64 or armhf, not '$arch'" >&2; exit 1 ;;
esac
bin=${1:-${target_dir:-$root/target}/$triple/release/pt}

die() { echo "test-pi-qemu: FAIL: $*" >&2; exit 1; }
ok() { echo "test-pi-qemu: ok: $*"; }

need() { # need COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        || die "$1 is missing; install the Debian package $2"
    echo "test-pi-qemu: installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } \
        || die "cannot install $2"
    command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is still missing"
}

[ -f "$bin" ] || die "no binary at $bin; build it with scripts/build-pi.sh"
need "$qemu" qemu-user-static
need jq jq
need readelf binutils

bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -9 "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

pt() { "$qemu" "$bin" "$@"; }
state=$work/state
jobs=$work/jobs
mkdir -p "$jobs"

# 1. A static executable of the right machine.
readelf -h "$bin" | grep -q "Machine:.*$machine" || die "$bin is not an $machine ELF"
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    die "$bin asks for a dynamic loader: it is not static"
fi
if readelf -d "$bin" | grep -q '(NEEDED)'; then
    die "$bin needs shared libraries: $(readelf -d "$bin" | grep '(NEEDED)' | tr -s ' ')"
fi
ok "static $machine ELF, $(stat -c %s "$bin") bytes"

# 2. --version
want=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
got=$(pt --version) || die "pt --version failed"
[ "$got" = "pt $want" ] || die "pt --version printed '$got', expected 'pt $want'"
ok "pt --version: $got"
pt tui --help >/dev/null || die "pt tui --help failed: the binary has no dashboard (build with --features tui)"
ok "pt tui is in the binary"

# 3. validate
pt validate "$root/examples/" || die "pt validate examples/ failed"
ok "pt validate examples/"

# 4. trigger with the state on disk, then history.
pt trigger "$root/examples/" hello_world --state "$state" || die "pt trigger hello_world failed"
pt trigger "$root/examples/" retry_demo --state "$state" || die "pt trigger retry_demo failed"
[ -f "$state/petit.redb" ] || die "no database at $state/petit.redb"
pt history hello_world --state "$state" || die "pt history hello_world failed"
for job in hello_world retry_demo; do
    st=$(pt history "$job" --state "$state" --json | jq -r '.[0].status')
    [ "$st" = succeeded ] || die "pt history $job --json: newest run is '$st', expected succeeded"
done
pt history --run 2 --state "$state" --json | jq -e '.tasks[] | select(.id == "flaky") | .attempts | length == 2' >/dev/null \
    || die "retry_demo's flaky task should have 2 attempts"
ok "pt trigger + pt history with state on disk"

# 5. pt run, kill -9, restart, resume.
cat >"$jobs/tick.yaml" <<YAML
id: tick
schedule: "@every 1s"
catchup: all
tasks:
  - id: t
    command: "true"
YAML
cat >"$jobs/slow.yaml" <<YAML
id: slow
tasks:
  - id: nap
    type: shell
    # Attempt 1 sleeps long enough to be caught running and killed with the daemon (recovery
    # kills its orphaned process group); the resumed attempt 2 is short.
    script: 'if [ "\$PETIT_ATTEMPT" = 1 ]; then sleep 60; else sleep 1; fi; echo "napped in $work"'
  - id: after
    depends_on: [nap]
    command: echo
    args: ["after the nap"]
YAML
pt validate "$jobs" || die "the test's own jobs do not validate"

run_state=$work/run-state
start_daemon() { # start_daemon LOGFILE
    "$qemu" "$bin" run "$jobs" --state "$run_state" --clock-sync-timeout 0 >"$1" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 100); do
        pt status --state "$run_state" --json 2>/dev/null | jq -e '.daemon' >/dev/null 2>&1 && return 0
        kill -0 "$daemon_pid" 2>/dev/null || { cat "$1" >&2; die "pt run exited at start"; }
        sleep 0.2
    done
    cat "$1" >&2
    die "pt run did not answer pt status within 20 s"
}
# Wait until the JSON of `pt history ARGS --json` satisfies the jq filter FILTER.
wait_for() { # wait_for SECONDS WHAT FILTER HISTORY_ARGS...
    local secs=$1 what=$2 filter=$3
    shift 3
    for _ in $(seq 1 $((secs * 5))); do
        pt history "$@" --state "$run_state" --json 2>/dev/null | jq -e "$filter" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    pt history "$@" --state "$run_state" --json >&2 || true
    die "timed out after ${secs}s waiting for: $what"
}

start_daemon "$work/run1.log"
wait_for 20 "two tick runs succeeded" '[.[] | select(.status == "succeeded")] | length >= 2' tick
pt trigger slow --detach --state "$run_state" || die "pt trigger slow --detach (through the daemon) failed"
slow_run=$(pt history slow --state "$run_state" --json | jq -r '.[0].id')
[ -n "$slow_run" ] && [ "$slow_run" != null ] || die "no run of slow after pt trigger --detach"
wait_for 20 "slow's nap running" '.tasks[] | select(.id == "nap") | .status == "running"' --run "$slow_run"
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
ok "pt run fired ticks, took pt trigger --detach (run #$slow_run), killed with kill -9 mid-task"
before=$(pt history tick --state "$run_state" --json --limit 100000 | jq length)
sleep 2 # firings missed while down: catchup all runs each once

start_daemon "$work/run2.log"
wait_for 40 "slow run #$slow_run succeeded after the restart" '.status == "succeeded"' --run "$slow_run"
pt history --run "$slow_run" --state "$run_state" --json \
    | jq -e '.tasks[] | select(.id == "nap") | .attempts[0].status == "interrupted" and .attempts[-1].status == "succeeded"' >/dev/null \
    || { pt history --run "$slow_run" --state "$run_state" >&2; die "slow's nap: expected attempt 1 interrupted and the last succeeded"; }
if command -v pgrep >/dev/null && pgrep -f -- "napped in $work" >/dev/null; then
    die "the process of the interrupted attempt survived the restart (recovery must kill its group)"
fi
wait_for 20 "new tick firings after the restart" "length >= $((before + 2))" tick --limit 100000
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[ "$rc" = 0 ] || { cat "$work/run2.log" >&2; die "pt run exited $rc on SIGTERM, expected 0"; }

# Runs the SIGTERM interrupted are finished by pt resume, without schedules.
pt resume --state "$run_state" >/dev/null || die "pt resume after the SIGTERM failed"
ticks=$(pt history tick --state "$run_state" --json --limit 100000)
n=$(jq length <<<"$ticks")
dups=$(jq '[.[].scheduled_at] | length - (unique | length)' <<<"$ticks")
[ "$dups" = 0 ] || die "$dups tick firings share a scheduled slot: $(jq -c '[.[].scheduled_at] | group_by(.) | map(select(length > 1))' <<<"$ticks")"
bad=$(jq '[.[] | select(.status != "succeeded" and .status != "missed" and .status != "skipped")] | length' <<<"$ticks")
[ "$bad" = 0 ] || die "$bad tick runs did not end well: $(jq -c '[.[] | select(.status != "succeeded")]' <<<"$ticks")"
pt history --run "$slow_run" --state "$run_state"
ok "restart resumed run #$slow_run; $n tick firings, none duplicated; SIGTERM exit 0"
echo "test-pi-qemu: all checks passed ($arch)"
