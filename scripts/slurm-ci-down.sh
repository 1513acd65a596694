#!/bin/bash
# slurm-ci-down.sh: stops the cluster of slurm-ci-up.sh. Cancels every job first (otherwise
# orphaned slurmstepd processes survive), then sends SIGTERM to all daemons together (each
# needs ~2 s to exit) and waits, with SIGKILL after 10 s. Safe to run twice, or when nothing
# runs. Keeps $SLURM_CI_DIR (logs, job completion file) for inspection; the next start reuses
# its munge key and overwrites the rest.
D=${SLURM_CI_DIR:-/tmp/petit-slurm/ci/run}
export SLURM_CONF="$D/etc/slurm.conf"

pid_of() { cat "$D/run/$1.pid" 2>/dev/null; }
# running PID: alive and not a zombie (a container's PID 1 may never reap the daemons).
running() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; }

if [ -f "$SLURM_CONF" ] && running "$(pid_of slurmctld)"; then
  scancel --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 50); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.1
  done
fi
pids=""
for name in slurmd slurmctld munged; do
  p=$(pid_of "$name")
  # Only signal a pid that still runs the daemon: after a reboot the number may be reused.
  if running "$p" && grep -q "$name" "/proc/$p/comm" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null && pids="$pids $p"
  fi
done
for p in $pids; do
  for _ in $(seq 100); do
    running "$p" || break
    sleep 0.1
  done
  running "$p" && kill -KILL "$p" 2>/dev/null
done
rm -f "$D"/run/{slurmd,slurmctld,munged}.pid
exit 0
