#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/up.sh, each daemon by its PID file, and
# remove the slurm.conf it wrote.
set -u
STATE=${SUBLIM_SLURM_STATE:-/var/lib/sublim-slurm}
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
done
# the configuration goes with the cluster (see up.sh); only the file up.sh wrote
if [ -f /etc/slurm/slurm.conf ] && [ "$(head -n 1 /etc/slurm/slurm.conf)" = "# written by tests/slurm/up.sh" ]; then
  rm -f /etc/slurm/slurm.conf
fi
exit 0
