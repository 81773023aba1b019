#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the whole workflow on the embedded default
# config (a tiny model trained from scratch, no downloads). Extra arguments go to Snakemake.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec .venv/bin/snakemake -c2 all "$@"
