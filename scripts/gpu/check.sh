#!/usr/bin/env bash
# The whole GPU check, run on a lent GPU machine (CUDA, CMake, ninja, a compiler and PyTorch there;
# no -dev packages, no registry) in one call of about 8 minutes:
#   1. unpacks the Debian packages of .gpu-deps/ (scripts/gpu/fetch-deps.sh, run beforehand on a
#      machine with a registry) into a prefix with dpkg -x;
#   2. configures against the machine's own PyTorch (python3 there) and that prefix, builds with
#      all its cores for its GPU's architecture;
#   3. runs the CUDA tests, the GPU benchmark (bench/gpu_benchmark.cpp; again with the opt-in
#      tensor-core softmin, SINKHORN_CUDA_TENSOR_CORES=1), the loop's opt-in batched error reads
#      (SINKHORN_CUDA_BATCHED_READS=1: the solves against the CPU, MNIST training; and with batches
#      drawn on the GPU, --draw-on device: ring8 and MNIST training), the Python package's tests
#      on CUDA tensors (when this machine's Python has its headers), `sinkhorn divergence
#      --device cuda` and `sinkhorn train --device cuda` (ring8, and MNIST when .gpu-deps/mnist has
#      it), each under its own time limit;
# writing logs and tables into RESULTS_DIR. A failing step is recorded in RESULTS_DIR/steps.txt and
# the next one still runs: whatever was measured comes back.
# Usage: scripts/gpu/check.sh RESULTS_DIR
# SINKHORN_GPU_QUICK=1 leaves out the benchmark and the training runs (a re-check of the tests).
# Through the device tool (at most 8 files come back): carry .gpu-deps and run
#   timeout 465 bash scripts/gpu/check.sh /tmp/res; tar czf $OUT/res.tgz -C /tmp res
set -uo pipefail
results="${1:?usage: scripts/gpu/check.sh RESULTS_DIR}"
mkdir -p "$results"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
prefix="${SINKHORN_GPU_PREFIX:-/tmp/sinkhorn-gpu-prefix}"
build="${SINKHORN_GPU_BUILD:-$root/build-gpu}"
python="${SINKHORN_GPU_PYTHON:-$(command -v python3)}"
jobs="$(nproc)"
start=$SECONDS

# step NAME SECONDS COMMAND...: runs it with a time limit, its output into RESULTS_DIR/NAME.log.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$results/$name.log" 2>&1
  local status=$?
  printf '%-22s exit %3d  %4d s  (at %4d s)\n' "$name" "$status" $((SECONDS - t0)) $((SECONDS - start)) | tee -a "$results/steps.txt"
  tail -n 5 "$results/$name.log"
  return $status
}

{
  nvidia-smi
  nvcc --version | tail -n 2
  "$python" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
  g++ --version | head -n 1
  cmake --version | head -n 1
  nproc
} >"$results/machine.txt" 2>&1
cat "$results/machine.txt"

mkdir -p "$prefix"
for deb in .gpu-deps/*.deb; do dpkg -x "$deb" "$prefix"; done
libdir="$prefix/usr/lib/x86_64-linux-gnu"
# zlib1g-dev's libz.so points at Debian's own runtime file by absolute path: point it at this
# machine's libz.so.1 (or, lacking one, drop it so the static libz.a links).
if [[ ! -e "$libdir/libz.so" ]]; then
  system_zlib="$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')"
  if [[ -n "$system_zlib" ]]; then ln -sf "$system_zlib" "$libdir/libz.so"; else rm -f "$libdir/libz.so"; fi
fi
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
arch="$("$python" -c 'import torch; c = torch.cuda.get_device_capability(0); print(f"{c[0]}{c[1]}")' 2>/dev/null || echo 90)"

step configure 180 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSINKHORN_PYTHON="$python" -DSINKHORN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DCMAKE_PREFIX_PATH="$prefix/usr;$libdir/cmake" \
  -DLEMON_INCLUDE_DIR="$prefix/usr/include" -DLEMON_LIBRARY="$libdir/liblemon.a" \
  -DCMAKE_CUDA_FLAGS="-Xptxas=-v" || { echo "configure failed"; exit 1; }
step build 300 cmake --build "$build" -j "$jobs" --target sinkhorn sinkhorn_cuda_tests sinkhorn_gpu_benchmark sinkhorn_tests -- -k 0
# The Python package, when this machine's Python has its headers (configure says "Python package ON").
if grep -q "Python package ON" "$results/configure.log"; then
  step build-python 120 cmake --build "$build" -j "$jobs" --target sinkhorn_python sinkhorn_python_files
fi
grep -A2 "fast_kernelILi3ELi2ELNS1_9ReductionE0" "$results/build.log" | grep -E "registers|spill" | head -n 4 >"$results/ptxas-fast-kernel.txt"
# The tensor-core softmin at D <= 16 and D <= 64 (its A fragments alone take 64 registers at 64).
for steps in 2 8; do
  grep -A2 "tensor_core_softmin_kernelILi${steps}E" "$results/build.log" | grep -E "registers|spill" | head -n 4
done >"$results/ptxas-tensor-core-kernel.txt"

# The kernels first (minutes of checks), then the numbers, then the rest of the tests.
step cuda-kernel-tests 120 "$build/tests/sinkhorn_cuda_tests" --gtest_filter='CudaOnlineKernels.*:CudaTensorCoreSoftmin.*:CudaDenseSoftmin.*:CudaExpThroughput.*' \
  --gtest_output="xml:$results/cuda-kernel-tests.xml"
# 10^6 points take minutes (130 s for the 3-D divergence on an H200): only with SINKHORN_GPU_LARGE=1.
[[ "${SINKHORN_GPU_QUICK:-0}" == 1 ]] || step gpu-benchmark 180 "$build/sinkhorn_gpu_benchmark" --out "$results" --max-n "$([[ "${SINKHORN_GPU_LARGE:-0}" == 1 ]] && echo 1000000 || echo 100000)"
# The tensor-core softmin (opt-in until this check has passed on a GPU): the same benchmark with it
# on; its sweeps at D = 64 and its 100 online iterations are the ones to compare.
mkdir -p "$results/tensor-cores"
[[ "${SINKHORN_GPU_QUICK:-0}" == 1 ]] || step gpu-benchmark-tensor-cores 120 env SINKHORN_CUDA_TENSOR_CORES=1 \
  "$build/sinkhorn_gpu_benchmark" --out "$results/tensor-cores" --max-n 100000
step cuda-solve-tests 120 "$build/tests/sinkhorn_cuda_tests" --gtest_filter='CudaReducer.*:CudaSolve.*' \
  --gtest_output="xml:$results/cuda-solve-tests.xml"
# The loop's batched reads of the marginal errors (opt-in until here): the same solves against the CPU.
step cuda-solve-batched-reads 120 env SINKHORN_CUDA_BATCHED_READS=1 "$build/tests/sinkhorn_cuda_tests" \
  --gtest_filter='CudaSolve.*' --gtest_output="xml:$results/cuda-solve-batched-reads.xml"
step cuda-training-tests 120 "$build/tests/sinkhorn_tests" --gtest_filter='*Cuda*:TrainerDevice.*:DeviceOption.*' \
  --gtest_output="xml:$results/cuda-training-tests.xml"
# Which libraries the test binary binds to first (libstdc++ must precede libtorch: the wheel's copy
# of std::filesystem::remove_all jumps to address 0), and a backtrace of the in-process CLI on CUDA
# should it still crash.
{
  readelf -d "$build/tests/sinkhorn_tests" | grep NEEDED
  readelf -d "$build"/python/sinkhorn/_C*.so 2>/dev/null | grep NEEDED
  ninja -C "$build" -t commands tests/sinkhorn_tests 2>/dev/null | tail -n 1 | tr ' ' '\n' | grep -n -- '-l\|Wl\|\.so' | head -n 20
  if command -v gdb >/dev/null; then
    timeout 60 gdb -batch -ex run -ex bt -ex 'x/8a $sp' --args "$build/tests/sinkhorn_tests" \
      --gtest_filter='DivergenceCommand.*' 2>&1 | grep -v 'New Thread\|Cuda Driver\|Thread .* exited'
  fi
} >"$results/cli-in-process.log" 2>&1

# The Python package on CUDA tensors (GPU against CPU); its other tests run with the whole suite below.
if [[ -x "$build/sinkhorn-python" ]]; then
  missing=()
  for module in pytest numpy; do "$python" -c "import $module" 2>/dev/null || missing+=("$module"); done
  if (( ${#missing[@]} )); then
    "$python" -m pip install --quiet --no-index --find-links .gpu-deps/wheels --target /tmp/sinkhorn-python-extra \
      "${missing[@]}" >"$results/python-extra.log" 2>&1
    export PYTHONPATH="/tmp/sinkhorn-python-extra${PYTHONPATH:+:$PYTHONPATH}"
  fi
  step python-cuda 90 "$build/sinkhorn-python" -m pytest -q -p no:cacheprovider -k cuda python/tests/test_samples_loss.py \
    python/tests/test_ot_cuda.py
  # Two Gloo ranks sharing the GPU: the sharded solve over the CUDA reducers (NCCL needs a GPU per rank).
  step python-distributed-cuda 90 "$build/sinkhorn-python" -m pytest -q -p no:cacheprovider -k cuda python/tests/test_distributed.py
  # A bad option reaches the library, which throws: the path that crashed Python on the H100.
  step python-errors 60 "$build/sinkhorn-python" -X faulthandler -m pytest -q -p no:cacheprovider python/tests/test_errors.py
  if ! grep -q passed "$results/python-errors.log" && command -v gdb >/dev/null; then
    timeout 60 gdb -batch -ex run -ex bt --args "$python" -c "
import sys; sys.path.insert(0, '$build/python')
import torch, sinkhorn
sinkhorn.solve(torch.randn(5, 2), torch.randn(4, 2), p=3)" 2>&1 | grep -v 'New Thread\|Cuda Driver\|Thread .* exited' >"$results/python-errors-gdb.log"
  fi
fi

# The command line on CUDA.
work="$(mktemp -d)"
"$python" -c "
import numpy as np
r = np.random.default_rng(0)
np.save('$work/x.npy', r.random((20000, 3), dtype=np.float32))
np.save('$work/y.npy', (0.6 + 0.1 * r.standard_normal((20000, 3))).astype(np.float32))"
step cli-divergence 60 bash -c "'$build/sinkhorn' divergence '$work/x.npy' '$work/y.npy' --device cuda --json --grad-x '$work/gx.npy' && '$build/sinkhorn' divergence '$work/x.npy' '$work/y.npy' --device cpu --threads $jobs --json"
if [[ "${SINKHORN_GPU_QUICK:-0}" != 1 ]]; then
  step cli-train-ring8 60 "$build/sinkhorn" train --data ring8 --device cuda --steps 100 --out "$work/ring8"
  cp "$work/ring8/metrics.csv" "$results/train-ring8-metrics.csv" 2>/dev/null
  # Issue 34's item 1 as a whole (both opt-in until here): batches drawn on the GPU, errors read in batches.
  step cli-train-ring8-on-device 60 env SINKHORN_CUDA_BATCHED_READS=1 "$build/sinkhorn" train --data ring8 --device cuda \
    --draw-on device --steps 100 --timings --out "$work/ring8-on-device"
  cp "$work/ring8-on-device/metrics.csv" "$results/train-ring8-on-device-metrics.csv" 2>/dev/null
  if [[ -d .gpu-deps/mnist ]]; then
    step cli-train-mnist 120 "$build/sinkhorn" train --data mnist --data-path .gpu-deps/mnist --split test --device cuda --steps 200 --out "$work/mnist"
    cp "$work/mnist/metrics.csv" "$results/train-mnist-metrics.csv" 2>/dev/null
    step cli-train-mnist-batched-reads 120 env SINKHORN_CUDA_BATCHED_READS=1 "$build/sinkhorn" train --data mnist \
      --data-path .gpu-deps/mnist --split test --device cuda --steps 200 --timings --out "$work/mnist-batched"
    cp "$work/mnist-batched/metrics.csv" "$results/train-mnist-batched-reads-metrics.csv" 2>/dev/null
    step cli-train-mnist-on-device 120 env SINKHORN_CUDA_BATCHED_READS=1 "$build/sinkhorn" train --data mnist \
      --data-path .gpu-deps/mnist --split test --device cuda --draw-on device --steps 200 --timings --out "$work/mnist-on-device"
    cp "$work/mnist-on-device/metrics.csv" "$results/train-mnist-on-device-metrics.csv" 2>/dev/null
    step cli-train-mnist-cpu 60 "$build/sinkhorn" train --data mnist --data-path .gpu-deps/mnist --split test --device cpu --threads "$jobs" --steps 20 --out "$work/mnist-cpu"
  fi
fi
rm -rf "$work"
# Every other test of the suite on this machine (the CPU ones see a GPU beside them here).
step all-tests 75 ctest --test-dir "$build" -j "$jobs" --timeout 60 --output-on-failure
echo "total $((SECONDS - start)) s" | tee -a "$results/steps.txt"
