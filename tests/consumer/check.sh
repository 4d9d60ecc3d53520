#!/usr/bin/env bash
# Installs the build tree into a temporary prefix (cmake --install), builds tests/consumer against
# it with find_package(sinkhorn), runs it. Usage: check.sh BUILD_DIR SINKHORN_PYTHON
set -euo pipefail
build="$1"
python="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
test -f "$work/prefix/include/sinkhorn/divergence.h"
test -f "$work/prefix/lib/cmake/sinkhorn/sinkhornConfig.cmake"
# Only the prefix names the library: its package configuration finds LibTorch (the PyTorch it was
# built with), Highway and zlib by itself.
cmake -S "$here" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j 2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
OMP_NUM_THREADS=1 "$work/build/consumer"
