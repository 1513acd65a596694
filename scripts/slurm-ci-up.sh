#!/bin/bash
# slurm-ci-up.sh: a throwaway one-node Slurm cluster (munge + slurmctld + slurmd) for Petit's
# integration tests. Runs as root, needs no systemd; everything lives under $SLURM_CI_DIR.
#
# Prints `export SLURM_CONF=...` on stdout once a probe batch job has COMPLETED (the first
# scheduling pass runs ~3 s after slurmctld starts, so `sinfo` saying idle is not enough).
# Idempotent: if this directory's cluster is already up it only re-probes it and prints the
# line again. Facts and timings behind each setting: docs/slurm.md.
#
#   eval "$(scripts/slurm-ci-up.sh)"      # then run the tests; scripts/slurm-ci-down.sh stops it
#
# Settings chosen for tests: MinJobAge=300 (finished jobs stay visible to squeue for 5 min),
# KillWait=5 (scancel/timeout escalate SIGTERM to SIGKILL after 5 s instead of 30 s, so cancel
# tests are fast), batch_sched_delay=0 (batch jobs start on the controller's next 1 s tick).
set -euo pipefail
D=${SLURM_CI_DIR:-/tmp/petit-slurm/ci/run}
CP=${SLURM_CI_CTLD_PORT:-6817}
DP=${SLURM_CI_SLURMD_PORT:-6818}
export SLURM_CONF="$D/etc/slurm.conf"

log() { echo "slurm-ci-up: $*" >&2; }

alive() { # alive NAME: the daemon whose pid file is $D/run/NAME.pid is running
  local pid
  pid=$(cat "$D/run/$1.pid" 2>/dev/null) || return 1
  # Alive and not a zombie: a container's PID 1 may never reap the daemons.
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat"
}

probe() { # submits a trivial batch job and waits (at most 30 s) until it COMPLETED
  local j state
  j=$(sbatch --parsable -o /dev/null -J ci-probe --wrap true 2>/dev/null) || return 1
  j=${j%%;*}
  for _ in $(seq 300); do
    state=$(scontrol show job "$j" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
    case $state in
      JobState=COMPLETED) return 0 ;;
      JobState=PENDING | JobState=RUNNING | JobState=COMPLETING | JobState=CONFIGURING | "") sleep 0.1 ;;
      *) log "probe job $j ended $state"; return 1 ;;
    esac
  done
  return 1
}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null
fi

# Already up (a second call, or a previous CI step)? Then check it still works and reuse it.
if alive munged && alive slurmctld && alive slurmd; then
  if probe; then
    log "already running in $D"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  log "daemons in $D are running but do not answer; stop them with slurm-ci-down.sh"
  exit 1
fi
# Half up (one daemon died): stop the rest first, then start from scratch.
if alive munged || alive slurmctld || alive slurmd; then
  log "some daemons of $D are running, others not: restarting"
  SLURM_CI_DIR=$D "$(dirname "$0")/slurm-ci-down.sh" >&2
fi

for p in $CP $DP; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    log "port $p is busy (another Slurm?); set SLURM_CI_CTLD_PORT / SLURM_CI_SLURMD_PORT"
    exit 1
  fi
done

mkdir -p "$D"/{etc,state,spool,log,run,munge}
chmod 700 "$D/munge"
chmod 755 "$D" "$D/run" # munged refuses a socket directory that is not world-executable
[ -s "$D/munge/munge.key" ] || mungekey --create --keyfile="$D/munge/munge.key"
# One global key per line: slurm.conf rejects several on one line.
cat >"$D/etc/slurm.conf" <<CONF
ClusterName=petitci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/run/munge.socket.2
SlurmctldPort=$CP
SlurmdPort=$DP
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MinJobAge=300
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

munged --key-file="$D/munge/munge.key" --socket="$D/run/munge.socket.2" \
  --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/seed"
slurmctld -f "$SLURM_CONF" # both daemonize and write their pid files
slurmd -N localhost -f "$SLURM_CONF"
for _ in $(seq 300); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.1
done
if probe; then
  echo "export SLURM_CONF=$SLURM_CONF"
  exit 0
fi
log "slurm did not come up; see $D/log"
exit 1
