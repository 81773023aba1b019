#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the whole workflow on the embedded default
# config (a tiny model trained from scratch, no downloads). Extra arguments go to Snakemake.
# `sublim warm` gives the jobs a warm interpreter: torch and transformers imported once
# (src/sublim/warm.py), not once per job.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec .venv/bin/sublim warm -- .venv/bin/snakemake -c2 all "$@"
