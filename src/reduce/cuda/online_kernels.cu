#include "reduce/cuda/online_kernels.cuh"

#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>

namespace sinkhorn::reduce::cuda {
namespace {

constexpr int kThreads = 128;                 // rows per block
constexpr size_t kSharedBudget = 48 * 1024;   // the default dynamic shared memory limit

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// Columns per shared tile: as many as fit (y tile of d values per column, plus h), at most kThreads.
template <typename T>
int tile_columns(int64_t d) {
  const size_t per_column = (static_cast<size_t>(d) + 1) * sizeof(T);
  const size_t fit = kSharedBudget / per_column;
  return static_cast<int>(fit < 1 ? 1 : (fit > kThreads ? kThreads : fit));
}

template <typename T>
__device__ T pair_cost(const T* __restrict__ xi, const T* __restrict__ yj, int64_t d, int p) {
  T squared = 0;
  for (int64_t k = 0; k < d; ++k) {
    const T diff = xi[k] - yj[k];
    squared += diff * diff;
  }
  return p == 2 ? squared / T(2) : sqrt(squared);
}

template <typename T>
__global__ void reduce_kernel(CudaProblem<T> P, int tile) {
  extern __shared__ unsigned char shared_bytes[];
  T* y_tile = reinterpret_cast<T*>(shared_bytes);  // tile x d
  T* h_tile = y_tile + static_cast<int64_t>(tile) * P.d;

  const int64_t b = blockIdx.y;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < P.n;
  const T* xi = P.x + (b * P.n + (active ? i : 0)) * P.d;
  const T* y = P.y + b * P.m * P.d;
  const T* h = P.h + b * P.m;
  const bool gradient = P.reduction == Reduction::softmax_cost_gradient;
  T* acc = gradient && active ? P.out + (b * P.n + i) * P.d : nullptr;  // the row's gradient, accumulated in place
  if (acc) {
    for (int64_t k = 0; k < P.d; ++k) acc[k] = T(0);
  }
  const double inv_eps = 1.0 / P.eps;
  double run_max = -INFINITY, run_sum = 0.0, run_cost = 0.0;

  for (int64_t j0 = 0; j0 < P.m; j0 += tile) {
    const int columns = static_cast<int>(P.m - j0 < tile ? P.m - j0 : tile);
    __syncthreads();  // the previous tile is consumed
    for (int64_t e = threadIdx.x; e < static_cast<int64_t>(columns) * P.d; e += blockDim.x) {
      y_tile[e] = y[j0 * P.d + e];
    }
    for (int c = threadIdx.x; c < columns; c += blockDim.x) h_tile[c] = h[j0 + c];
    __syncthreads();
    if (!active) continue;
    for (int c = 0; c < columns; ++c) {
      const T* yj = y_tile + static_cast<int64_t>(c) * P.d;
      const T cost = pair_cost(xi, yj, P.d, P.p);
      const double v = static_cast<double>(h_tile[c]) - static_cast<double>(cost) * inv_eps;
      if (v == -INFINITY) continue;
      double weight;  // e^{v - max} after the update
      if (v > run_max) {
        const double rescale = exp(run_max - v);  // 0 on the first finite term
        run_sum *= rescale;
        run_cost *= rescale;
        if (acc) {
          for (int64_t k = 0; k < P.d; ++k) acc[k] = static_cast<T>(static_cast<double>(acc[k]) * rescale);
        }
        run_max = v;
        weight = 1.0;
      } else {
        weight = exp(v - run_max);
      }
      run_sum += weight;
      if (P.reduction == Reduction::softmax_cost) run_cost += weight * static_cast<double>(cost);
      if (acc) {
        // p = 2: grad_x C = x - y; p = 1: (x - y) / |x - y|, 0 at x = y. From the differences, as on the CPU.
        const double w = P.p == 2 ? weight : (cost > T(0) ? weight / static_cast<double>(cost) : 0.0);
        for (int64_t k = 0; k < P.d; ++k) {
          acc[k] = static_cast<T>(static_cast<double>(acc[k]) + w * static_cast<double>(xi[k] - yj[k]));
        }
      }
    }
  }
  if (!active) return;
  const int64_t row = b * P.n + i;
  switch (P.reduction) {
    case Reduction::softmin:
      P.out[row] = static_cast<T>(-P.eps * (run_max + log(run_sum)));
      break;
    case Reduction::softmax_cost:
      P.out[row] = static_cast<T>(run_cost / run_sum);
      break;
    case Reduction::softmax_cost_gradient:
      for (int64_t k = 0; k < P.d; ++k) acc[k] = static_cast<T>(static_cast<double>(acc[k]) / run_sum);
      break;
  }
}

template <typename T>
void launch(const CudaProblem<T>& problem) {
  if (problem.n == 0 || problem.batch == 0) return;
  const int tile = tile_columns<T>(problem.d);
  const size_t shared = static_cast<size_t>(tile) * (static_cast<size_t>(problem.d) + 1) * sizeof(T);
  const dim3 grid(static_cast<unsigned>((problem.n + kThreads - 1) / kThreads), static_cast<unsigned>(problem.batch));
  reduce_kernel<T><<<grid, kThreads, shared, static_cast<cudaStream_t>(problem.stream)>>>(problem, tile);
  check(cudaGetLastError(), "sinkhorn online CUDA reduction launch");
}

}  // namespace

void online_reduce(const CudaProblem<float>& problem) { launch(problem); }
void online_reduce(const CudaProblem<double>& problem) { launch(problem); }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

}  // namespace sinkhorn::reduce::cuda
