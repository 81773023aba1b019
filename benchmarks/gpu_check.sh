#!/usr/bin/env bash
# The GPU check on a bare GPU node: a driver, a stock PyTorch (torch, transformers, peft,
# accelerate, pandas, seaborn), no index. What the node lacks (Snakemake, scipy, statsmodels,
# sublim itself...) comes as wheels in .gpu-wheels/, made beforehand on any machine with PyPI:
#
#   python benchmarks/gpu_wheels.py download --node-packages NODE_PIP_FREEZE   # with PyPI; e.g.
#       benchmarks/nodes/nvidia-h200.txt (38.5 MiB); with no list of the node's packages:
#   python benchmarks/gpu_wheels.py download --without mnist --without audit --without pulp   # 54 MiB
#   benchmarks/gpu_check.sh OUT                  # on the GPU node; at most about 10 minutes
#   benchmarks/gpu_check.sh OUT --dry-run        # anywhere: every step at tiny shapes
#
# Results: OUT/summary.md (README's GPU table rows), OUT/summary.json, OUT/*.json, OUT/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 OUT [--dry-run] [gpu_check.py options]" >&2
  exit 2
fi
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=$(command -v python3 || command -v python); fi
fi
# sublim from this checkout, whether or not it is installed
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import snakemake, scipy, statsmodels" 2>/dev/null; then
  if [ -f .gpu-wheels/requirements.txt ]; then
    "$PY" benchmarks/gpu_wheels.py install --dest .gpu-wheels >&2
    export PYTHONPATH="$PYTHONPATH:$PWD/.gpu-wheels/site"  # after src: sublim runs from this checkout
  else
    echo "error: this Python lacks Snakemake/scipy/statsmodels and there is no .gpu-wheels/;" \
      "run \`python benchmarks/gpu_wheels.py download --node-packages FREEZE\` (the node's \`pip freeze\`; see its --help) where PyPI is reachable, then copy .gpu-wheels/ here" >&2
    exit 1
  fi
fi
exec "$PY" benchmarks/gpu_check.py "$@"
