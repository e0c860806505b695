#!/usr/bin/env bash
# Populate llama.cpp/ (a git submodule pinned to the commit that llama-cpp-python vendors).
#
# Tries, in order: an already populated checkout (nothing to do); `git submodule update` when
# LLAMA_CPP_FROM=git; otherwise the llama-cpp-python source distribution from the package registry,
# which carries the same llama.cpp tree *and* its shallow git directory, so the result is a real
# checkout at the pinned commit (`git -C llama.cpp rev-parse HEAD`), with nothing fetched from GitHub.
#
# usage: docker/fetch_llama_cpp.sh [DEST]   (env: PYTHON, LLAMA_CPP_FROM=sdist|git, CACHE_DIR)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DEST=${1:-$ROOT/llama.cpp}
PYTHON=${PYTHON:-python3}
CACHE_DIR=${CACHE_DIR:-$ROOT/.cache}
VERSION=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$ROOT/requirements.txt")
PINNED=$( (git -C "$ROOT" ls-tree HEAD llama.cpp 2>/dev/null || true) | awk '$2 == "commit" {print $3}')
PINNED=${PINNED:-$(cat "$HERE/llama_cpp_commit")}

if [ -f "$DEST/convert_hf_to_gguf.py" ]; then
  echo "llama.cpp: $DEST already populated ($(git -C "$DEST" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  exit 0
fi

if [ "${LLAMA_CPP_FROM:-sdist}" = git ]; then
  git -C "$ROOT" submodule update --init llama.cpp
  exit 0
fi

mkdir -p "$CACHE_DIR"
SDIST="$CACHE_DIR/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  echo "llama.cpp: downloading the llama-cpp-python $VERSION source distribution (it vendors llama.cpp $PINNED)"
  "$PYTHON" -m pip download --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
    -d "$CACHE_DIR" "llama-cpp-python==$VERSION" >/dev/null
fi

WORK=$(mktemp -d "$CACHE_DIR/llama.cpp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "llama.cpp: unpacking vendor/llama.cpp from $SDIST"
tar -xzf "$SDIST" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp" "llama_cpp_python-$VERSION/.git/modules/vendor/llama.cpp"
SRC="$WORK/llama_cpp_python-$VERSION"
# Turn the vendored tree into a standalone checkout: its .git file points into the sdist's .git/modules.
rm -f "$SRC/vendor/llama.cpp/.git"
mv "$SRC/.git/modules/vendor/llama.cpp" "$SRC/vendor/llama.cpp/.git"
# Its config points the worktree into the sdist and carries the sdist CI's credential includes:
# replace it with a plain one.
cat > "$SRC/vendor/llama.cpp/.git/config" <<'CONFIG'
[core]
	repositoryformatversion = 0
	filemode = true
	bare = false
	logallrefupdates = true
[remote "origin"]
	url = https://github.com/ggml-org/llama.cpp.git
	fetch = +refs/heads/master:refs/remotes/origin/master
CONFIG
GOT=$(git -C "$SRC/vendor/llama.cpp" rev-parse HEAD)
if [ "$GOT" != "$PINNED" ]; then
  echo "llama.cpp: the sdist vendors $GOT but the submodule is pinned to $PINNED" >&2
  exit 1
fi
rmdir "$DEST" 2>/dev/null || true
if [ -e "$DEST" ]; then
  echo "llama.cpp: $DEST exists but is not a llama.cpp checkout; move it away first" >&2
  exit 1
fi
mv "$SRC/vendor/llama.cpp" "$DEST"
echo "llama.cpp: $DEST is at $GOT"
