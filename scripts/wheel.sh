#!/usr/bin/env bash
# make wheel: dist/sinkhorn-<version>-<python>-<platform>.whl, a binary wheel of the Python package.
#   1. pip builds it with scikit-build-core against the project's environment's PyTorch
#      (scripts/install-deps.sh; the metadata pins that PyTorch's minor release,
#      scripts/packaging/torch_pin.py), the CUDA module inside when nvcc was found;
#   2. auditwheel (PyPI, pinned in scripts/requirements.txt) repairs it into a manylinux wheel:
#      every library the extension needs from the system (Highway's libhwy.so.1, the one -dev
#      package without a static library) is copied inside and found through the extension's run
#      path; PyTorch's own libraries (and the CUDA runtime its wheel brings) are left out: they are
#      found at import time from the installed torch, which `import sinkhorn` loads first.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/install-deps.sh
venv="${SINKHORN_VENV:-/opt/sinkhorn/venv}"
python="$venv/bin/python"
raw="build-wheel/raw"
rm -rf "$raw" && mkdir -p "$raw" dist
export CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-$(nproc)}"
"$python" -m pip wheel --no-build-isolation --no-deps --wheel-dir "$raw" . >build-wheel/pip.log 2>&1 ||
  { tail -40 build-wheel/pip.log; echo "wheel: pip wheel failed (build-wheel/pip.log)"; exit 1; }
built="$(ls "$raw"/sinkhorn-*.whl)"
# PyTorch's libraries, by the names the extension and the CUDA module need them.
excludes=()
for name in libtorch.so libtorch_cpu.so libtorch_python.so libtorch_cuda.so libc10.so libc10_cuda.so \
            libgomp.so.1 'libcudart.so.*' 'libnccl.so.*'; do
  excludes+=(--exclude "$name")
done
PATH="$venv/bin:$PATH" "$python" -m auditwheel repair "${excludes[@]}" --wheel-dir dist "$built" \
  >build-wheel/auditwheel.log 2>&1 || { cat build-wheel/auditwheel.log; exit 1; }
wheel="$(ls -t dist/sinkhorn-*.whl | head -1)"
echo "wheel: $wheel"
PATH="$venv/bin:$PATH" "$python" -m auditwheel show "$wheel" | sed 's/^/  /'
