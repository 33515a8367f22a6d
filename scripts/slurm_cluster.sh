#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests and for trying SLURM launches
# locally. Root only (the daemons run as root); installs Debian's packages when missing.
#
#   scripts/slurm_cluster.sh start DIR   # state, logs and slurm.conf under DIR; prints
#                                        # `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm_cluster.sh stop DIR    # stops the daemons started with DIR
#
# Every daemon keeps its state in DIR: nothing under /etc or /var is used, so the cluster
# can be started and thrown away as often as needed.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
state=$(realpath -m "$2")

stop() {
  # Jobs first (a test that failed half-way can leave one running), then the daemons;
  # whatever has not exited after 10 s is killed.
  if [[ -f "$state/slurmctld.pid" ]]; then
    SLURM_CONF="$state/slurm.conf" timeout 10 scancel --full --user="$(id -un)" 2>/dev/null || true
  fi
  local pids=()
  for daemon in slurmd slurmctld munged; do
    if [[ -f "$state/$daemon.pid" ]]; then
      pids+=("$(cat "$state/$daemon.pid")")
      kill "${pids[-1]}" 2>/dev/null || true
      rm -f "$state/$daemon.pid"
    fi
  done
  for _ in $(seq 20); do
    kill -0 "${pids[@]}" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && command -v sbatch >/dev/null && return
  echo "slurm_cluster: installing slurmctld slurmd slurm-client munge (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge \
    >"$state/apt.log" 2>&1 || { apt-get update -q >>"$state/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge \
    >>"$state/apt.log" 2>&1; }
}

start() {
  [[ $(id -u) -eq 0 ]] || { echo "slurm_cluster: run as root" >&2; exit 1; }
  mkdir -p "$state/ctld" "$state/spool"
  install_packages
  stop
  local host cpus memory port
  host=$(hostname -s)
  cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it follows OMP_NUM_THREADS
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  port=$(( 17000 + RANDOM % 20000 ))

  # munge: its own key and socket in DIR.
  dd if=/dev/urandom of="$state/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge.key"
  munged --force --key-file="$state/munge.key" --socket="$state/munge.socket" \
    --pid-file="$state/munged.pid" --log-file="$state/munged.log" \
    --seed-file="$state/munge.seed"

  cat >"$state/slurm.conf" <<EOF
ClusterName=litnets
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge.socket
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF="$state/slurm.conf"
  slurmctld -i -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return
    fi
    sleep 1
  done
  echo "slurm_cluster: the node did not come up; see $state/slurmctld.log and slurmd.log" >&2
  stop
  exit 1
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
