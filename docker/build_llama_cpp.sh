#!/usr/bin/env bash
# Build llama.cpp's command-line tools from the llama.cpp/ submodule (the commit llama-cpp-python vendors).
# Used by the Dockerfile (cuda) and by `make llama-tools` on the host (cpu), so CI exercises it.
#
# usage: docker/build_llama_cpp.sh [cpu|cuda] [SRC] [DEST] [TARGET ...]
#   defaults: cpu, llama.cpp, build/llama.cpp-<flavour>/bin, llama-quantize llama-server llama-cli llama-perplexity
# llama-server (the engine Ollama >= 0.30 runs; the deployment check and `make serve` use it) is built without
# its web UI (no npm, no download) and without TLS: it serves plain HTTP, on localhost by default.
# env: CMAKE_ARGS (extra flags, e.g. -DCMAKE_CUDA_ARCHITECTURES=80;90), JOBS (default: nproc),
#      BUILD_DIR (default build/llama.cpp-<flavour>: outside the submodule, which stays a clean checkout),
#      LLAMA_TOOLS_CACHE (default ~/.cache/ftkit/llama.cpp; "off": no cache, as in the image)
#
# The binary cache: a build takes about ten minutes on two cores, and its inputs rarely change. Built tools are
# kept under LLAMA_TOOLS_CACHE/<key>/, the key a digest of everything the binaries depend on (the submodule's
# commit, the CMake flags, this script, the compiler and CMake versions, the CPU features a native build targets).
# A key that matches copies the tools in seconds; one that does not builds them (with ccache where it is
# installed) and fills the cache, each file written under a temporary name and then renamed.
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
# static libraries: the binaries can be copied anywhere (the runtime image) without the build tree
# shellcheck disable=SC2206
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF "${GPU_FLAGS[@]}" ${CMAKE_ARGS:-})
COMMIT=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)

# what the binaries depend on, one line each (written beside the cached tools, for a person to read)
cache_key_inputs() {
  echo "commit $COMMIT"
  echo "flavour $FLAVOUR"
  echo "cmake flags ${CMAKE_FLAGS[*]}"
  echo "build script $(sha256sum "$0" | cut -d' ' -f1)"
  echo "c compiler $(${CC:-cc} --version 2>/dev/null | head -n1)"
  echo "c++ compiler $(${CXX:-c++} --version 2>/dev/null | head -n1)"
  echo "cmake $(cmake --version 2>/dev/null | head -n1)"
  [ "$FLAVOUR" = cuda ] && echo "nvcc $(nvcc --version 2>/dev/null | tail -n1)"
  # a native build (GGML_NATIVE, on unless turned off) compiles for this CPU's instruction sets
  echo "cpu $(uname -m) $(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | tr ' ' '\n' | sort | tr '\n' ' ')"
}

CACHE_ROOT=${LLAMA_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ftkit/llama.cpp}
if [ "$CACHE_ROOT" != off ] && [ "$COMMIT" != unknown ]; then
  KEY=$(cache_key_inputs | sha256sum | cut -c1-20)
  CACHED="$CACHE_ROOT/$KEY"
else
  CACHED=""
fi

# every target in the cache: copy them out and stop
if [ -n "$CACHED" ] && ( for t in "${TARGETS[@]}"; do [ -x "$CACHED/$t" ] || exit 1; done ); then
  mkdir -p "$DEST"
  for target in "${TARGETS[@]}"; do
    cp "$CACHED/$target" "$DEST/.$target.tmp.$$" && mv -f "$DEST/.$target.tmp.$$" "$DEST/$target"
  done
  echo "llama-tools: ${TARGETS[*]} ($FLAVOUR, llama.cpp ${COMMIT:0:7}) from the cache $CACHED into $DEST"
  exit 0
fi

# ccache, where installed, for a new build folder only: a launcher added to a configured one recompiles it all
LAUNCHER=()
CCACHE=$(command -v ccache || true)
[ -n "$CCACHE" ] || { [ -x "${VENV:-.venv}/bin/ccache" ] && CCACHE=$(cd "${VENV:-.venv}/bin" && pwd)/ccache; } || true
if [ -n "$CCACHE" ] && [ ! -f "$BUILD/CMakeCache.txt" ]; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER="$CCACHE" -DCMAKE_CXX_COMPILER_LAUNCHER="$CCACHE")
else
  CCACHE=""
fi

echo "llama-tools: building ${TARGETS[*]} ($FLAVOUR) from $SRC at ${COMMIT:0:7}${CCACHE:+ (through ccache)}"
cmake -S "$SRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" "${LAUNCHER[@]}" >/dev/null
cmake --build "$BUILD" --config Release -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]}"
mkdir -p "$DEST"
for target in "${TARGETS[@]}"; do
  cp "$BUILD/bin/$target" "$DEST/" 2>/dev/null || [ "$BUILD/bin" = "$DEST" ]
done
echo "llama-tools: ${TARGETS[*]} in $DEST"

# fill the cache; a cache that cannot be written costs the next build, not this one
if [ -n "$CACHED" ] && mkdir -p "$CACHED" 2>/dev/null; then
  for target in "${TARGETS[@]}"; do
    cp "$BUILD/bin/$target" "$CACHED/.$target.tmp.$$" && mv -f "$CACHED/.$target.tmp.$$" "$CACHED/$target" || true
  done
  cache_key_inputs > "$CACHED/.key.tmp.$$" && mv -f "$CACHED/.key.tmp.$$" "$CACHED/key.txt" || true
  echo "llama-tools: cached in $CACHED (the next build with the same inputs copies them from there)"
fi
