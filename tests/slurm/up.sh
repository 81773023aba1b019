#!/usr/bin/env bash
# Start a single-node Slurm cluster for the integration tests: slurmctld + slurmd + munge
# from Debian packages, running as root without systemd. Idempotent: if the cluster is up
# it only prints its state. Prints the partition name on the last line.
#
#   tests/slurm/up.sh        # install (if needed), configure, start, wait until idle
#   tests/slurm/down.sh      # stop every daemon by its PID file, remove /etc/slurm/slurm.conf
#
# /etc/slurm/slurm.conf exists only while this cluster runs (job steps' srun needs the
# system-wide file). Left behind with no controller, it stalled every `snakemake` start-up
# by 9 s: the Slurm executor plugin runs `scontrol show config` on import, which waits for
# the dead controller.
set -euo pipefail
STATE=${SUBLIM_SLURM_STATE:-/var/lib/sublim-slurm}
PARTITION=debug
mkdir -p "$STATE"

need=()
for bin in slurmctld slurmd munged sbatch; do command -v "$bin" >/dev/null || need+=("$bin"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing slurm and munge from Debian packages (missing: ${need[*]})" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: one key, daemon as root (needs --force)
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown root:root /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid; then
  munged --force --pid-file=/run/munge/munged.pid --log-file=/var/log/munge/munged.log
fi

host=$(hostname -s)
node=$(slurmd -C | head -n 1)              # NodeName=<host> CPUs=... RealMemory=...
node=${node/NodeName=* CPUs/NodeName=$host CPUs}
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
mem=$((mem * 9 / 10))                     # leave the OS some room
node=$(sed "s/RealMemory=[0-9]*/RealMemory=$mem/" <<<"$node")
mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" /var/log/slurm
conf=$(cat <<CONF
# written by tests/slurm/up.sh
ClusterName=sublim
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# no accounting daemon: keep finished jobs visible to squeue for a day
MinJobAge=86400
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# impossible requests fail at submission instead of pending forever
EnforcePartLimits=ALL
KillWait=10
SchedulerParameters=sched_interval=1
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  # settings changed: restart whatever runs
  for d in slurmd slurmctld; do alive "$STATE/$d.pid" && kill "$(cat "$STATE/$d.pid")" && sleep 1; done
fi
alive "$STATE/slurmctld.pid" || slurmctld
alive "$STATE/slurmd.pid" || slurmd

for _ in $(seq 1 60); do
  st=$(sinfo -h -p "$PARTITION" -o %t 2>/dev/null || true)
  case "$st" in idle*|mix*|alloc*) echo "slurm up: node $host $st" >&2; echo "$PARTITION"; exit 0 ;; esac
  sleep 0.5
done
echo "slurm did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
