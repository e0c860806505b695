#!/usr/bin/env bash
# Container entrypoint: the same Make targets and scripts as on the host, inside the pinned toolchain.
# HF_TOKEN (for gated models such as Llama-2) is passed at run time with `docker run -e HF_TOKEN`;
# it is never baked into the image.
set -euo pipefail
if [ -n "${HF_TOKEN:-}" ]; then
  export HUGGING_FACE_HUB_TOKEN="$HF_TOKEN"
fi
mkdir -p "${HF_HOME:-/cache/huggingface}" data models reports 2>/dev/null || true
exec "$@"
