#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole suite (unit tests and the
# end-to-end Snakemake run on tests/config.yaml).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec .venv/bin/python -m pytest -q tests "$@"
