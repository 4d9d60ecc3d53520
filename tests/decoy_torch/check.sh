#!/usr/bin/env bash
# A configure with decoy LibTorch libraries first on the search path takes the environment's.
# Usage: check.sh PYTHON
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/decoys"
for name in torch c10 kineto torch_cpu; do
  printf 'not a library\n' > "$work/decoys/lib$name.so"
done
cmake -S "$here" -B "$work/build" -DSINKHORN_PYTHON="$1" -DDECOY_DIR="$work/decoys" \
      -DCMAKE_LIBRARY_PATH="$work/decoys" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
grep -q "TORCH_LIBRARY = $("$1" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')/libtorch.so" "$work/log" \
  || { cat "$work/log"; echo "check.sh: TORCH_LIBRARY is not the environment's"; exit 1; }
echo "decoy LibTorch ignored"
