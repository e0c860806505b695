#!/usr/bin/env bash
# Build llama.cpp's command-line tools from the llama.cpp/ submodule (the commit llama-cpp-python vendors).
# Used by the Dockerfile (cuda) and by `make llama-tools` on the host (cpu), so CI exercises it.
#
# usage: docker/build_llama_cpp.sh [cpu|cuda] [SRC] [DEST] [TARGET ...]
#   defaults: cpu, llama.cpp, build/llama.cpp-<flavour>/bin, llama-quantize llama-server llama-cli llama-perplexity
# llama-server (the engine Ollama >= 0.30 runs; the deployment check and `make serve` use it) is built without
# its web UI (no npm, no download) and without TLS: it serves plain HTTP, on localhost by default.
# env: CMAKE_ARGS (extra flags, e.g. -DCMAKE_CUDA_ARCHITECTURES=80;90), JOBS (default: nproc),
#      BUILD_DIR (default build/llama.cpp-<flavour>: outside the submodule, which stays a clean checkout)
set -euo pipefail

FLAVOUR=${1:-cpu}
SRC=${2:-llama.cpp}
shift $(( $# < 2 ? $# : 2 ))
BUILD=${BUILD_DIR:-build/llama.cpp-$FLAVOUR}
DEST=${1:-$BUILD/bin}
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(llama-quantize llama-server llama-cli llama-perplexity)

[ -f "$SRC/CMakeLists.txt" ] || { echo "llama-tools: $SRC is empty; run 'make llama.cpp' first" >&2; exit 1; }
case "$FLAVOUR" in
  cpu)  GPU_FLAGS=(-DGGML_CUDA=OFF) ;;
  cuda) GPU_FLAGS=(-DGGML_CUDA=ON) ;;
  *) echo "llama-tools: flavour must be cpu or cuda, not $FLAVOUR" >&2; exit 2 ;;
esac

echo "llama-tools: building ${TARGETS[*]} ($FLAVOUR) from $SRC at $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')"
# static libraries: the binaries can be copied anywhere (the runtime image) without the build tree
# shellcheck disable=SC2086
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF "${GPU_FLAGS[@]}" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" --config Release -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]}"
mkdir -p "$DEST"
for target in "${TARGETS[@]}"; do
  cp "$BUILD/bin/$target" "$DEST/" 2>/dev/null || [ "$BUILD/bin" = "$DEST" ]
done
echo "llama-tools: ${TARGETS[*]} in $DEST"
