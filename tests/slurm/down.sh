#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/up.sh, each daemon by its PID file.
set -u
STATE=${SUBLIM_SLURM_STATE:-/var/lib/sublim-slurm}
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
  fi
done
exit 0
