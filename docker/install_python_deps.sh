#!/usr/bin/env bash
# Install the pinned Python stack (requirements.txt) into a virtual environment.
# Used by `make setup` on the host and by the Dockerfile, so CI exercises the same steps.
#
# usage: docker/install_python_deps.sh [VENV_DIR] [cpu|cuda]
#   VENV_DIR  where the venv lives (default .venv); "-" installs into the current interpreter
#   cpu|cuda  torch/llama.cpp flavour (default cpu). cuda builds llama-cpp-python with GGML_CUDA.
#
# requirements.txt names what we use; constraints.txt pins every transitive package to the tested set.
# Idempotent: a stamp holding the hash of both files and this script makes a second run a no-op.
set -euo pipefail

VENV=${1:-.venv}
FLAVOUR=${2:-cpu}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REQ="$ROOT/requirements.txt"
CONSTRAINTS="$ROOT/constraints.txt"
PYTHON=${PYTHON:-python3}

if [ "$VENV" = "-" ]; then
  PY=$PYTHON
  STAMP_DIR=${STAMP_DIR:-/usr/local/share/finetune}
else
  [ -x "$VENV/bin/python" ] || { echo "setup: creating virtual environment $VENV"; "$PYTHON" -m venv "$VENV"; }
  PY="$VENV/bin/python"
  STAMP_DIR="$VENV"
fi
mkdir -p "$STAMP_DIR"
STAMP="$STAMP_DIR/.requirements-$FLAVOUR.sha256"
WANT=$(cat "$REQ" "$CONSTRAINTS" "$0" | sha256sum | cut -d' ' -f1)
# this checkout, installed editable: `import ftkit` and the `ftkit` command run the code you edit. Skipped where
# only the requirements were copied (the image's build stage: the container runs the mounted checkout's code)
install_checkout() {
  [ -f "$ROOT/pyproject.toml" ] && [ -d "$ROOT/ftkit" ] || return 0
  if [ "$("$PY" -c 'import ftkit, os; print(os.path.dirname(os.path.dirname(os.path.realpath(ftkit.__file__))))' \
        2>/dev/null)" = "$(realpath "$ROOT")" ] && [ -x "$(dirname "$PY")/ftkit" ]; then
    return 0
  fi
  echo "setup: installing this checkout ($ROOT) into $VENV, editable"
  "$PY" -m pip install --disable-pip-version-check --quiet --no-deps --no-build-isolation -e "$ROOT"
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "setup: $VENV is up to date with requirements.txt ($FLAVOUR)"
  install_checkout
  exit 0
fi

# llama-cpp-python compiles llama.cpp. The multimodal library (LLAVA) is not needed for text models and
# is a large part of the build; tests/tools/examples are already off when it is built as a sub-project.
CMAKE_FLAGS="-DLLAVA_BUILD=OFF"
if [ "$FLAVOUR" = cuda ]; then
  CMAKE_FLAGS="$CMAKE_FLAGS -DGGML_CUDA=ON"
fi
export CMAKE_ARGS="${CMAKE_ARGS:-} $CMAKE_FLAGS"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

PIP_ARGS=(--disable-pip-version-check)
# cpu: torch==2.13.0 resolves to the CPU build on this project's machines (a wheel on local disk).
# cuda: PyPI's Linux x86_64 wheel of the same release is the CUDA build: CUDA runtime 13.0 (cuda-toolkit
# 13.0.3, cuDNN 9.20, NCCL 2.29.7), which needs NVIDIA driver >= 580.65.06 (make gpu-check checks it).
# TORCH_INDEX_URL picks another build (e.g. CUDA 12.8 for an older driver).
TORCH_CUDA_RUNTIME=13.0
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  PIP_ARGS+=(--extra-index-url "$TORCH_INDEX_URL")
fi

echo "setup: installing requirements.txt ($FLAVOUR; llama-cpp-python compiles llama.cpp, a few minutes the first time)"
"$PY" -m pip install "${PIP_ARGS[@]}" -r "$REQ" -c "$CONSTRAINTS"
if [ "$FLAVOUR" = cuda ] && [ -z "${TORCH_INDEX_URL:-}" ]; then
  got=$("$PY" -c 'import torch; print(torch.version.cuda)')
  if [ "$got" != "$TORCH_CUDA_RUNTIME" ]; then
    echo "setup: torch carries CUDA $got, not the pinned $TORCH_CUDA_RUNTIME (PyPI's torch 2.13.0)" >&2
    exit 1
  fi
fi
install_checkout
echo "$WANT" > "$STAMP"
echo "setup: done"
