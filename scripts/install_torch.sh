#!/usr/bin/env bash
# Install PyTorch before medst, so that pip never picks a build by accident:
#   - an NVIDIA GPU is visible (nvidia-smi lists one): PyPI's Linux wheel, which is a CUDA build;
#   - no GPU: the CPU build (about 200 MB rather than several GB of CUDA libraries).
# The CPU build is first looked for as the local version "+cpu" (pip's find-links, e.g. a wheel cache on
# disk), then on PyTorch's CPU index. Nothing is done when a torch that satisfies medst is already installed.
# Usage: scripts/install_torch.sh PATH/TO/pip        (TORCH_VERSION overrides the version below)
set -euo pipefail
PIP=${1:-pip}
# 2.13.0: the release medst is tested with (CI and the measured benchmarks); its CPU wheel is cached on the CI
# machines. medst itself needs torch >= 2.4 (pyproject.toml).
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

PY="$(dirname "$PIP")/python"
[ -x "$PY" ] || PY=python3
if "$PY" -c "import torch, sys; sys.exit(0 if tuple(map(int, torch.__version__.split('+')[0].split('.')[:2])) >= (2, 4) else 1)" 2>/dev/null; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') is already installed"
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing the CUDA build of torch $TORCH_VERSION"
  "$PIP" install "torch==$TORCH_VERSION"
else
  echo "no NVIDIA GPU: installing the CPU build of torch $TORCH_VERSION"
  "$PIP" install "torch==$TORCH_VERSION+cpu" 2>/dev/null \
    || "$PIP" install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
