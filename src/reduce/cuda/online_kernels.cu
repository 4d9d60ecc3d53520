#include "reduce/cuda/online_kernels.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace sinkhorn::reduce::cuda {
namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

int multiprocessors() {
  int device = 0, count = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return count;
}

// 2^v by the special-function unit: one instruction, relative error 2^-22, 0 for v = -inf;
// subnormal results flush to 0 (terms below 2^-126 of the row's largest, as the CPU clamps them).
__device__ __forceinline__ float fast_exp2(float v) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
}

// ---------------------------------------------------------------------------------------------
// Fast float32 kernel: x_i in registers, tiles of y in shared memory, 32 columns per chunk.

constexpr int kFastThreads = 256;

template <int DIM>
struct FastShape {
  static constexpr int stride = (DIM + 1 + 3) / 4 * 4;  // a column: y_j then h_j log2(e), padded to 16 bytes
  static constexpr int tile = DIM <= 4 ? 256 : 128;     // columns per shared tile (35 KB at D = 64)
  static constexpr int chunk = DIM <= 4 ? 32 : 8;       // columns whose exponents sit in registers
};

// Partial results of one split of the columns, merged by merge_kernel: (max, sum, extra...) in double.
template <int DIM>
__host__ __device__ constexpr int partial_width(Reduction reduction) {
  return 2 + (reduction == Reduction::softmax_cost ? 1 : reduction == Reduction::softmax_cost_gradient ? DIM : 0);
}

// |x - y|^2 (p = 2) or |x - y| (p = 1) from the differences.
template <int DIM, int P>
__device__ __forceinline__ float raw_cost(const float (&xr)[DIM], const float* __restrict__ column) {
  float squared = 0.f;
#pragma unroll
  for (int k = 0; k < DIM; ++k) {
    const float diff = xr[k] - column[k];
    squared = fmaf(diff, diff, squared);
  }
  return P == 2 ? squared : sqrtf(squared);
}

template <int DIM, int P, Reduction R>
__global__ void __launch_bounds__(kFastThreads) fast_kernel(const CudaProblem<float> problem, int64_t split_columns,
                                                            double* partials) {
  using Shape = FastShape<DIM>;
  constexpr int S = Shape::stride, TILE = Shape::tile, K = Shape::chunk;
  constexpr bool kCost = R == Reduction::softmax_cost;
  constexpr bool kGradient = R == Reduction::softmax_cost_gradient;
  __shared__ __align__(16) float tile[TILE * S];

  const int64_t b = blockIdx.y, n = problem.n, m = problem.m;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kFastThreads + threadIdx.x;
  const bool active = i < n;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * split_columns;
  const int64_t last = min(m, first + split_columns);
  const float* y = problem.y + b * m * DIM;
  const float* h = problem.h + b * m;

  float xr[DIM];
#pragma unroll
  for (int k = 0; k < DIM; ++k) xr[k] = active ? problem.x[(b * n + i) * DIM + k] : 0.f;
  // Exponents in base 2: v_j = h_j log2(e) - C_ij log2(e) / eps, C = raw (p = 1) or raw / 2 (p = 2).
  const float cost_scale = static_cast<float>((P == 2 ? 0.5 : 1.0) * kLog2e / problem.eps);
  const float h_scale = static_cast<float>(kLog2e);

  float run_max = -INFINITY;
  double run_sum = 0.0, run_cost = 0.0;
  double grad[kGradient ? DIM : 1];
#pragma unroll
  for (int k = 0; k < (kGradient ? DIM : 1); ++k) grad[k] = 0.0;

  for (int64_t j0 = first; j0 < last; j0 += TILE) {
    const int columns = static_cast<int>(min(static_cast<int64_t>(TILE), last - j0));
    __syncthreads();  // the previous tile is consumed
    for (int e = threadIdx.x; e < TILE * DIM; e += kFastThreads) {
      const int c = e / DIM, k = e - c * DIM;
      tile[c * S + k] = c < columns ? y[(j0 + c) * DIM + k] : 0.f;
    }
    for (int c = threadIdx.x; c < TILE; c += kFastThreads) {
      tile[c * S + DIM] = c < columns ? h[j0 + c] * h_scale : -INFINITY;  // -inf: no weight
    }
    __syncthreads();
    if (!active) continue;
    const int chunks = (columns + K - 1) / K;
    for (int q = 0; q < chunks; ++q) {
      const float* base = tile + q * K * S;
      float v[K];
      float raw[(kCost || (kGradient && P == 1)) ? K : 1];
      float chunk_max = -INFINITY;
#pragma unroll
      for (int c = 0; c < K; ++c) {
        const float cost = raw_cost<DIM, P>(xr, base + c * S);
        v[c] = fmaf(-cost_scale, cost, base[c * S + DIM]);
        if constexpr (kCost || (kGradient && P == 1)) raw[c] = cost;
        chunk_max = fmaxf(chunk_max, v[c]);
      }
      if (chunk_max == -INFINITY) continue;  // all 32 weights zero (and -inf - -inf would be NaN)
      if (chunk_max > run_max) {
        const double rescale = exp2(static_cast<double>(run_max) - chunk_max);  // 0 on the first chunk
        run_sum *= rescale;
        if constexpr (kCost) run_cost *= rescale;
#pragma unroll
        for (int k = 0; k < (kGradient ? DIM : 1); ++k) grad[k] *= rescale;
        run_max = chunk_max;
      }
      float sum = 0.f, cost_sum = 0.f;
      float g[kGradient ? DIM : 1];
#pragma unroll
      for (int k = 0; k < (kGradient ? DIM : 1); ++k) g[k] = 0.f;
#pragma unroll
      for (int c = 0; c < K; ++c) {
        const float w = fast_exp2(v[c] - run_max);
        sum += w;
        if constexpr (kCost) cost_sum = fmaf(w, raw[c], cost_sum);
        if constexpr (kGradient) {
          // grad_x C: x - y (p = 2), (x - y) / |x - y| (p = 1, 0 at x = y), from the differences.
          float weight = w;
          if constexpr (P == 1) weight = raw[c] > 0.f ? w / raw[c] : 0.f;
#pragma unroll
          for (int k = 0; k < DIM; ++k) g[k] = fmaf(weight, xr[k] - base[c * S + k], g[k]);
        }
      }
      run_sum += sum;
      if constexpr (kCost) run_cost += cost_sum;
      if constexpr (kGradient) {
#pragma unroll
        for (int k = 0; k < DIM; ++k) grad[k] += g[k];
      }
    }
  }
  if (!active) return;
  const int64_t row = b * n + i;
  if (partials != nullptr) {  // one split of several: merge_kernel finishes the row
    constexpr int W = partial_width<DIM>(R);
    double* record = partials + (static_cast<int64_t>(blockIdx.z) * problem.batch * n + row) * W;
    record[0] = run_max;
    record[1] = run_sum;
    if constexpr (kCost) record[2] = run_cost;
    if constexpr (kGradient) {
#pragma unroll
      for (int k = 0; k < DIM; ++k) record[2 + k] = grad[k];
    }
    return;
  }
  if constexpr (R == Reduction::softmin) {
    problem.out[row] = static_cast<float>(-problem.eps * (static_cast<double>(run_max) * kLn2 + log(run_sum)));
  } else if constexpr (kCost) {
    problem.out[row] = static_cast<float>((P == 2 ? 0.5 : 1.0) * run_cost / run_sum);
  } else {
#pragma unroll
    for (int k = 0; k < DIM; ++k) problem.out[row * DIM + k] = static_cast<float>(grad[k] / run_sum);
  }
}

// Merges the splits' partial (max, sum, ...) records of every row (the log-sum-exp rule).
template <int DIM, int P, Reduction R>
__global__ void merge_kernel(const CudaProblem<float> problem, int splits, const double* partials) {
  constexpr int W = partial_width<DIM>(R);
  const int64_t rows = problem.batch * problem.n;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  double top = -INFINITY;
  for (int s = 0; s < splits; ++s) top = fmax(top, partials[(s * rows + row) * W]);
  double sum = 0.0, extra[W - 2 > 0 ? W - 2 : 1] = {};
  if (top > -INFINITY) {
    for (int s = 0; s < splits; ++s) {
      const double* record = partials + (s * rows + row) * W;
      const double scale = exp2(record[0] - top);  // 0 for a split without weight
      sum += scale * record[1];
      for (int k = 0; k < W - 2; ++k) extra[k] += scale * record[2 + k];
    }
  }
  if constexpr (R == Reduction::softmin) {
    problem.out[row] = static_cast<float>(-problem.eps * (top * kLn2 + log(sum)));
  } else if constexpr (R == Reduction::softmax_cost) {
    problem.out[row] = static_cast<float>((P == 2 ? 0.5 : 1.0) * extra[0] / sum);
  } else {
    for (int k = 0; k < DIM; ++k) problem.out[row * DIM + k] = static_cast<float>(extra[k] / sum);
  }
}

// A launch over row blocks x batch entries x column splits. Few rows leave most multiprocessors
// idle: the columns are split, each split a whole number of tiles, until about eight blocks per
// multiprocessor run; the splits' partial (max, sum, ...) records, `width` doubles per row, are
// then merged by `merge(splits, partials)`. `kernel(grid, split_columns, partials)` launches the
// reduction (partials null for one split).
template <typename Kernel, typename Merge>
void launch_split(const CudaProblem<float>& problem, int64_t rows_per_block, int64_t tile, int width,
                  const Kernel& kernel, const Merge& merge, const char* what) {
  const auto stream = static_cast<cudaStream_t>(problem.stream);
  const int64_t row_blocks = (problem.n + rows_per_block - 1) / rows_per_block;
  const int64_t blocks = row_blocks * problem.batch;
  const int64_t wanted = 8 * static_cast<int64_t>(multiprocessors());
  const int64_t tiles = (problem.m + tile - 1) / tile;
  const int64_t splits = std::clamp<int64_t>((wanted + blocks - 1) / blocks, 1, std::min<int64_t>(tiles, 65535));
  const int64_t split_columns = (tiles + splits - 1) / splits * tile;
  const int64_t used_splits = (problem.m + split_columns - 1) / split_columns;
  check(row_blocks <= 0x7fffffff && problem.batch <= 65535 ? cudaSuccess : cudaErrorInvalidConfiguration,
        "sinkhorn CUDA reduction: too many rows or batch entries for one launch");
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(problem.batch),
                  static_cast<unsigned>(used_splits));
  double* partials = nullptr;
  if (used_splits > 1) {
    const size_t bytes = static_cast<size_t>(used_splits * problem.batch * problem.n) * width * sizeof(double);
    check(cudaMallocAsync(reinterpret_cast<void**>(&partials), bytes, stream), "sinkhorn CUDA reduction workspace");
  }
  kernel(grid, split_columns, partials);
  cudaError_t status = cudaGetLastError();
  if (partials != nullptr) {
    if (status == cudaSuccess) {
      merge(static_cast<int>(used_splits), partials);
      status = cudaGetLastError();
    }
    cudaFreeAsync(partials, stream);
  }
  check(status, what);
}

// The merge of the splits' partial records of every row (merge_kernel).
template <int DIM, int P, Reduction R>
void launch_merge(const CudaProblem<float>& problem, int splits, const double* partials) {
  const int64_t rows = problem.batch * problem.n;
  merge_kernel<DIM, P, R><<<static_cast<unsigned>((rows + 255) / 256), 256, 0, static_cast<cudaStream_t>(problem.stream)>>>(
      problem, splits, partials);
}

template <int DIM, int P, Reduction R>
void launch_fast(const CudaProblem<float>& problem) {
  launch_split(
      problem, kFastThreads, FastShape<DIM>::tile, partial_width<DIM>(R),
      [&](const dim3& grid, int64_t split_columns, double* partials) {
        fast_kernel<DIM, P, R><<<grid, kFastThreads, 0, static_cast<cudaStream_t>(problem.stream)>>>(
            problem, split_columns, partials);
      },
      [&](int splits, const double* partials) { launch_merge<DIM, P, R>(problem, splits, partials); },
      "sinkhorn online CUDA reduction launch");
}

template <int DIM, int P>
void dispatch_reduction(const CudaProblem<float>& problem) {
  switch (problem.reduction) {
    case Reduction::softmin: return launch_fast<DIM, P, Reduction::softmin>(problem);
    case Reduction::softmax_cost: return launch_fast<DIM, P, Reduction::softmax_cost>(problem);
    case Reduction::softmax_cost_gradient:
      if constexpr (DIM <= 4) return launch_fast<DIM, P, Reduction::softmax_cost_gradient>(problem);
      break;
  }
  throw std::logic_error("sinkhorn CUDA reduction: no fast kernel for this problem");
}

template <int DIM>
void dispatch_cost(const CudaProblem<float>& problem) {
  if (problem.p == 1) return dispatch_reduction<DIM, 1>(problem);
  return dispatch_reduction<DIM, 2>(problem);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core softmin (float32, p = 2, 16 <= D <= 64; opt-in, CudaProblem::tensor_cores).
//
// softmin_i = |x_i|^2 / 2 - eps log sum_j exp(h_j - |y_j|^2 / (2 eps) + <x_i, y_j> / eps): the dot
// products on tensor cores (mma.sync m16n8k8, TF32 operands, float32 accumulators) in three
// passes, x = x_hi + x_lo and y = y_hi + y_lo split into TF32 parts (x_hi = tf32(x), x_lo =
// tf32(x - x_hi)): <x, y> ~ <x_hi, y_hi> + <x_hi, y_lo> + <x_lo, y_hi> ("3xTF32"); the small terms
// in an accumulator of their own. |x_i|^2 / 2 never enters an exponent (it is a constant of the
// row, added at the end in double); |y_j|^2 / 2 is folded into h in double per column. Error bound
// (docs/numerics.md, "Tensor cores"): every exponent is off by at most about
// (3 D + 16) u |x_i| |y_j| / eps + u |v|, u = 2^-24, so softmin by at most
// (3 D + 16) u max_j |x_i| |y_j| plus the fast kernel's u (|softmin| + eps): centred clouds keep
// |x| |y| near the cost scale. TF32 alone would be 2^13 times worse.
//
// Layout: a block of 4 warps, each 16 rows (their x in registers as A fragments, hi and lo); tiles
// of 64 columns of y staged in shared memory as TF32 bit patterns (row stride D + 4 words: the B
// fragments' loads hit 32 distinct banks); per tile each thread holds 2 rows x 16 columns of
// exponents, their max, one rescale of the running sums, one ex2 per pair. The quad of threads
// sharing a row merges its (max, sum) pairs by shuffles at the end.

constexpr int kTensorWarps = 4;
constexpr int kTensorRows = 16 * kTensorWarps;  // rows per block
constexpr int kTensorTile = 64;                 // columns per shared tile: 8 MMA column blocks

__device__ __forceinline__ uint32_t to_tf32(float v) {
  uint32_t r;
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
#else
  r = __float_as_uint(v) & 0xffffe000u;  // never run: the launch checks the device is sm_80 or newer
#endif
  return r;
}

// The float a TF32 register stands for. The ISA leaves the 13 low bits of a .tf32 register
// implementation-defined: cleared here, so that x - tf32_value(to_tf32(x)) is the part the MMA
// does not see.
__device__ __forceinline__ float tf32_value(uint32_t r) { return __uint_as_float(r & 0xffffe000u); }

// c += a b for a 16 x 8 (rows x k) and b 8 x 8 (k x columns) of TF32, c 16 x 8 of float32. Lane l
// (g = l / 4, t = l % 4) holds a[r] at (g + 8 (r % 2), t + 4 (r / 2)), b[r] at (t + 4 r, g) and
// c[r] at (g + 8 (r / 2), 2 t + r % 2) (PTX ISA, "Matrix fragments for mma.m16n8k8").
__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // an image for an older architecture: tensor_core_device() never launches it
#endif
}

template <int KSTEPS>
__global__ void __launch_bounds__(kTensorWarps * 32)
    tensor_core_softmin_kernel(const CudaProblem<float> problem, int64_t split_columns, double* partials) {
  constexpr int DP = KSTEPS * 8;  // D padded with zeros to whole MMA steps
  constexpr int S = DP + 4;
  __shared__ uint32_t y_hi[kTensorTile * S];
  __shared__ uint32_t y_lo[kTensorTile * S];
  __shared__ float h_tile[kTensorTile];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int64_t b = blockIdx.y, n = problem.n, m = problem.m, d = problem.d;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kTensorRows + warp * 16;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * split_columns;
  const int64_t last = min(m, first + split_columns);
  const float* x = problem.x + b * n * d;
  const float* y = problem.y + b * m * d;
  const float* h = problem.h + b * m;
  const double inv_eps = 1.0 / problem.eps;
  const float dot_scale = static_cast<float>(kLog2e * inv_eps);

  uint32_t a_hi[KSTEPS][4], a_lo[KSTEPS][4];
#pragma unroll
  for (int s = 0; s < KSTEPS; ++s) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t row = row0 + g + 8 * (r % 2);
      const int64_t k = 8 * s + t + 4 * (r / 2);
      const float v = row < n && k < d ? x[row * d + k] : 0.f;
      a_hi[s][r] = to_tf32(v);
      a_lo[s][r] = to_tf32(v - tf32_value(a_hi[s][r]));
    }
  }
  // Rows g and g + 8 of this warp's 16: running max (base 2) and sum.
  float run_max[2] = {-INFINITY, -INFINITY};
  double run_sum[2] = {0.0, 0.0};

  for (int64_t j0 = first; j0 < last; j0 += kTensorTile) {
    const int columns = static_cast<int>(min(static_cast<int64_t>(kTensorTile), last - j0));
    __syncthreads();  // the previous tile is consumed
    for (int e = threadIdx.x; e < kTensorTile * DP; e += kTensorWarps * 32) {
      const int c = e / DP, k = e - c * DP;
      const float v = c < columns && k < d ? y[(j0 + c) * d + k] : 0.f;
      const uint32_t hi = to_tf32(v);
      y_hi[c * S + k] = hi;
      y_lo[c * S + k] = to_tf32(v - tf32_value(hi));
    }
    {
      // h'_j = (h_j - |y_j|^2 / (2 eps)) log2(e), |y_j|^2 in double: two threads per column (every
      // thread of the block, so that the pair's shuffle has its whole warp), each half of the
      // coordinates, interleaved so that a warp's loads are contiguous.
      static_assert(2 * kTensorTile == kTensorWarps * 32, "two threads per column of a tile");
      const int c = threadIdx.x >> 1, half = threadIdx.x & 1;
      double squared = 0.0;
      if (c < columns) {
        for (int64_t k = half; k < d; k += 2) {
          const double coordinate = y[(j0 + c) * d + k];
          squared += coordinate * coordinate;
        }
      }
      squared += __shfl_xor_sync(0xffffffffu, squared, 1);
      if (half == 0) {
        float value = -INFINITY;  // no column, or no weight
        if (c < columns && h[j0 + c] > -INFINITY) {
          value = static_cast<float>((static_cast<double>(h[j0 + c]) - 0.5 * squared * inv_eps) * kLog2e);
        }
        h_tile[c] = value;
      }
    }
    __syncthreads();

    float v[kTensorTile / 8][4];
#pragma unroll
    for (int block = 0; block < kTensorTile / 8; ++block) {
      float big[4] = {0.f, 0.f, 0.f, 0.f}, small[4] = {0.f, 0.f, 0.f, 0.f};
      const int column = block * 8 + g;
#pragma unroll
      for (int s = 0; s < KSTEPS; ++s) {
        const int k = 8 * s + t;
        const uint32_t hi0 = y_hi[column * S + k], hi1 = y_hi[column * S + k + 4];
        const uint32_t lo0 = y_lo[column * S + k], lo1 = y_lo[column * S + k + 4];
        mma_tf32(small, a_lo[s], hi0, hi1);
        mma_tf32(small, a_hi[s], lo0, lo1);
        mma_tf32(big, a_hi[s], hi0, hi1);
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        v[block][r] = fmaf(big[r] + small[r], dot_scale, h_tile[block * 8 + 2 * t + r % 2]);
      }
    }
#pragma unroll
    for (int q = 0; q < 2; ++q) {  // row g (c[0], c[1]) and row g + 8 (c[2], c[3])
      float top = -INFINITY;
#pragma unroll
      for (int block = 0; block < kTensorTile / 8; ++block) top = fmaxf(top, fmaxf(v[block][2 * q], v[block][2 * q + 1]));
      if (top == -INFINITY) continue;
      if (top > run_max[q]) {
        run_sum[q] *= exp2(static_cast<double>(run_max[q]) - top);  // 0 on the first
        run_max[q] = top;
      }
      float sum = 0.f;
#pragma unroll
      for (int block = 0; block < kTensorTile / 8; ++block) {
        sum += fast_exp2(v[block][2 * q] - run_max[q]) + fast_exp2(v[block][2 * q + 1] - run_max[q]);
      }
      run_sum[q] += sum;
    }
  }
  // The four threads of a quad hold the same rows' other columns: merge their (max, sum).
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    double top = run_max[q], sum = run_sum[q];
#pragma unroll
    for (int offset = 1; offset <= 2; offset <<= 1) {
      const double other_top = __shfl_xor_sync(0xffffffffu, top, offset);
      const double other_sum = __shfl_xor_sync(0xffffffffu, sum, offset);
      const double next = fmax(top, other_top);
      if (next > -INFINITY) {
        sum = sum * exp2(top - next) + other_sum * exp2(other_top - next);
        top = next;
      }
    }
    const int64_t row = row0 + g + 8 * q;
    if (t != 0 || row >= n) continue;
    // The row's |x_i|^2 / 2 enters as a shift of the base-2 maximum: -eps (top ln 2 + log sum) + |x_i|^2 / 2.
    double squared = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const double coordinate = x[row * d + k];
      squared += coordinate * coordinate;
    }
    const double shifted = top - 0.5 * squared * inv_eps * kLog2e;
    if (partials != nullptr) {
      double* record = partials + (static_cast<int64_t>(blockIdx.z) * problem.batch * n + b * n + row) * 2;
      record[0] = top > -INFINITY ? shifted : top;
      record[1] = sum;
    } else {
      problem.out[b * n + row] = static_cast<float>(-problem.eps * ((top > -INFINITY ? shifted : top) * kLn2 + log(sum)));
    }
  }
}

template <int KSTEPS>
void launch_tensor_core_softmin(const CudaProblem<float>& problem) {
  // Its partial records are (max, sum), as the softmin's of any dimension: one merge serves.
  launch_split(
      problem, kTensorRows, kTensorTile, 2,
      [&](const dim3& grid, int64_t split_columns, double* partials) {
        tensor_core_softmin_kernel<KSTEPS><<<grid, kTensorWarps * 32, 0, static_cast<cudaStream_t>(problem.stream)>>>(
            problem, split_columns, partials);
      },
      [&](int splits, const double* partials) { launch_merge<1, 2, Reduction::softmin>(problem, splits, partials); },
      "sinkhorn tensor-core CUDA softmin launch");
}

void dispatch_tensor_core_softmin(const CudaProblem<float>& problem) {
  switch ((problem.d + 7) / 8) {
    case 2: return launch_tensor_core_softmin<2>(problem);
    case 3: return launch_tensor_core_softmin<3>(problem);
    case 4: return launch_tensor_core_softmin<4>(problem);
    case 5: return launch_tensor_core_softmin<5>(problem);
    case 6: return launch_tensor_core_softmin<6>(problem);
    case 7: return launch_tensor_core_softmin<7>(problem);
    case 8: return launch_tensor_core_softmin<8>(problem);
  }
  throw std::logic_error("sinkhorn CUDA reduction: no tensor-core kernel for this dimension");
}

// ---------------------------------------------------------------------------------------------
// Generic kernel: any dtype and D, one pair at a time.

constexpr int kThreads = 128;                 // rows per block
constexpr size_t kSharedBudget = 48 * 1024;   // the default dynamic shared memory limit

// Columns per shared tile: as many as fit (y tile of d values per column, plus h), at most kThreads.
template <typename T>
int tile_columns(int64_t d) {
  const size_t per_column = (static_cast<size_t>(d) + 1) * sizeof(T);
  const size_t fit = kSharedBudget / per_column;
  return static_cast<int>(fit < 1 ? 1 : (fit > kThreads ? kThreads : fit));
}

// The squared distance summed in double: at large D (MNIST's 784) a float32 sum of D squares
// carries about sqrt(D) u C of rounding, which 1/eps turns into percent-level weight errors
// (measured on an H200: 1e-3 relative gradient errors at D = 784, eps = 0.5).
template <typename T>
__device__ T pair_cost(const T* __restrict__ xi, const T* __restrict__ yj, int64_t d, int p) {
  double squared = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double diff = static_cast<double>(xi[k] - yj[k]);
    squared += diff * diff;
  }
  return static_cast<T>(p == 2 ? squared / 2 : sqrt(squared));
}

template <typename T>
__global__ void generic_kernel(CudaProblem<T> P, int tile) {
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
void launch_generic(const CudaProblem<T>& problem) {
  const int tile = tile_columns<T>(problem.d);
  const size_t shared = static_cast<size_t>(tile) * (static_cast<size_t>(problem.d) + 1) * sizeof(T);
  const dim3 grid(static_cast<unsigned>((problem.n + kThreads - 1) / kThreads), static_cast<unsigned>(problem.batch));
  generic_kernel<T><<<grid, kThreads, shared, static_cast<cudaStream_t>(problem.stream)>>>(problem, tile);
  check(cudaGetLastError(), "sinkhorn online CUDA reduction launch");
}

// ---------------------------------------------------------------------------------------------
// Dense softmin over a stored cost matrix: one block per row.

constexpr int kDenseThreads = 256;

template <typename T>
__device__ __forceinline__ T exp2_of(T v);
template <>
__device__ __forceinline__ float exp2_of(float v) { return fast_exp2(v); }
template <>
__device__ __forceinline__ double exp2_of(double v) { return exp2(v); }

// 16-byte loads need m % 4 == 0 (every row then starts 16 bytes after a 16-byte boundary) and the
// matrix and h themselves on 16-byte boundaries (a view at an offset may not be).
template <typename T>
__device__ __forceinline__ bool float4_rows(const DenseSoftminProblem<T>& problem) {
  return sizeof(T) == 4 && problem.m % 4 == 0 &&
         ((reinterpret_cast<uintptr_t>(problem.cost) | reinterpret_cast<uintptr_t>(problem.h)) % 16) == 0;
}

// One thread's running (max, sum) of 2^v over the values it takes, in T: sum_j 2^(v_j - top).
template <typename T>
struct RunningLogSumExp2 {
  T top = -INFINITY, sum = 0;

  __device__ __forceinline__ void take(T v) {
    if (v > top) {
      sum = sum * exp2_of<T>(top - v) + T(1);  // exp2(-inf) = 0 on the first finite value
      top = v;
    } else if (v > -INFINITY) {
      sum += exp2_of<T>(v - top);
    }
  }
  __device__ __forceinline__ void take4(T v0, T v1, T v2, T v3) {
    const T group_top = fmax(fmax(v0, v1), fmax(v2, v3));
    if (group_top > top) {
      sum *= exp2_of<T>(top - group_top);  // 0 while top is -inf
      top = group_top;
    }
    if (top > -INFINITY) {  // otherwise all four are -inf: nothing to add (and -inf - -inf is NaN)
      sum += (exp2_of<T>(v0 - top) + exp2_of<T>(v1 - top)) + (exp2_of<T>(v2 - top) + exp2_of<T>(v3 - top));
    }
  }
};

// (max, sum) pairs merged across threads in double (the log-sum-exp rule), and the softmin
// -eps log sum_j exp(...) = -eps (top ln 2 + log sum) they give.
struct LogSumExp2Pair {
  double top, sum;

  __device__ __forceinline__ void merge(double other_top, double other_sum) {
    const double next = fmax(top, other_top);
    if (next == -INFINITY) return;
    sum = sum * exp2(top - next) + other_sum * exp2(other_top - next);
    top = next;
  }
  // Over the 32 lanes of a full warp: lane 0 ends with the warp's pair.
  __device__ __forceinline__ void merge_across_warp() {
    for (int offset = 16; offset > 0; offset /= 2) {
      merge(__shfl_down_sync(0xffffffffu, top, offset), __shfl_down_sync(0xffffffffu, sum, offset));
    }
  }
  __device__ __forceinline__ double softmin(double eps) const { return -eps * (top * kLn2 + log(sum)); }
};

template <typename T>
__global__ void __launch_bounds__(kDenseThreads) dense_softmin_kernel(const DenseSoftminProblem<T> problem) {
  const int64_t b = blockIdx.y, i = blockIdx.x, m = problem.m;
  const T* row = problem.cost + (b * problem.n + i) * m;
  const T* h = problem.h + b * m;
  const T cost_scale = static_cast<T>(kLog2e / problem.eps), h_scale = static_cast<T>(kLog2e);
  // Per thread: a running (max, sum) over its columns j = threadIdx.x + k * 256, base 2.
  RunningLogSumExp2<T> run;
  const auto take = [&](T cost, T hj) { run.take(hj * h_scale - cost * cost_scale); };
  if (float4_rows(problem)) {
    using Vec = float4;
    const Vec* row4 = reinterpret_cast<const Vec*>(row);
    const Vec* h4 = reinterpret_cast<const Vec*>(h);
    for (int64_t q = threadIdx.x; q < m / 4; q += kDenseThreads) {
      const Vec c = row4[q], hv = h4[q];
      take(c.x, hv.x), take(c.y, hv.y), take(c.z, hv.z), take(c.w, hv.w);
    }
  } else {
    for (int64_t j = threadIdx.x; j < m; j += kDenseThreads) take(row[j], h[j]);
  }
  // Block reduction of the (max, sum) pairs in double: warp shuffles, then one value per warp.
  LogSumExp2Pair pair{run.top, run.sum};
  pair.merge_across_warp();
  __shared__ double tops[kDenseThreads / 32], sums[kDenseThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) tops[warp] = pair.top, sums[warp] = pair.sum;
  __syncthreads();
  if (threadIdx.x != 0) return;
  pair = {tops[0], sums[0]};
  for (int w = 1; w < kDenseThreads / 32; ++w) pair.merge(tops[w], sums[w]);
  problem.out[b * problem.n + i] = static_cast<T>(pair.softmin(problem.eps));
}

// One warp per row (DenseSchedule::warp_per_row). A row of 10^4 columns is 78 16-byte loads per
// lane: four are issued before any of their values is used, so that each SM keeps enough bytes in
// flight to cover the memory latency, and the running max moves once per four columns (one
// rescaling exp per group instead of a branch per column).
constexpr int kWarpRowsPerBlock = 8;
constexpr int kLoadsInFlight = 4;

template <typename T>
__global__ void __launch_bounds__(kWarpRowsPerBlock * 32) dense_softmin_warp_kernel(const DenseSoftminProblem<T> problem) {
  const int lane = threadIdx.x % 32;
  const int64_t b = blockIdx.y, i = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerBlock + threadIdx.x / 32;
  if (i >= problem.n) return;  // whole warps leave together: the shuffles below see full warps
  const int64_t m = problem.m;
  const T* __restrict__ row = problem.cost + (b * problem.n + i) * m;
  const T* __restrict__ h = problem.h + b * m;
  const T cost_scale = static_cast<T>(kLog2e / problem.eps), h_scale = static_cast<T>(kLog2e);
  RunningLogSumExp2<T> run;
  int64_t done = 0;  // columns before `done` are taken
  if (float4_rows(problem)) {
    const float4* __restrict__ row4 = reinterpret_cast<const float4*>(row);
    const float4* __restrict__ h4 = reinterpret_cast<const float4*>(h);
    const int64_t quads = m / 4, stride = 32 * kLoadsInFlight;
    int64_t q = lane;
    for (; q + (kLoadsInFlight - 1) * 32 < quads; q += stride) {
      float4 c[kLoadsInFlight], hv[kLoadsInFlight];
#pragma unroll
      for (int k = 0; k < kLoadsInFlight; ++k) c[k] = __ldg(row4 + q + 32 * k), hv[k] = __ldg(h4 + q + 32 * k);
#pragma unroll
      for (int k = 0; k < kLoadsInFlight; ++k) {
        run.take4(hv[k].x * h_scale - c[k].x * cost_scale, hv[k].y * h_scale - c[k].y * cost_scale,
                  hv[k].z * h_scale - c[k].z * cost_scale, hv[k].w * h_scale - c[k].w * cost_scale);
      }
    }
    for (; q < quads; q += 32) {
      const float4 c = __ldg(row4 + q), hv = __ldg(h4 + q);
      run.take4(hv.x * h_scale - c.x * cost_scale, hv.y * h_scale - c.y * cost_scale,
                hv.z * h_scale - c.z * cost_scale, hv.w * h_scale - c.w * cost_scale);
    }
    done = m;
  }
  for (int64_t j = done + lane; j < m; j += 32) run.take(h[j] * h_scale - row[j] * cost_scale);
  LogSumExp2Pair pair{run.top, run.sum};
  pair.merge_across_warp();
  if (lane == 0) problem.out[b * problem.n + i] = static_cast<T>(pair.softmin(problem.eps));
}

template <typename T>
void launch_dense(const DenseSoftminProblem<T>& problem) {
  if (problem.n == 0 || problem.batch == 0) return;
  check(problem.n <= 0x7fffffff && problem.batch <= 65535 ? cudaSuccess : cudaErrorInvalidConfiguration,
        "sinkhorn dense CUDA softmin: too many rows or batch entries for one launch");
  const cudaStream_t stream = static_cast<cudaStream_t>(problem.stream);
  if (problem.schedule == DenseSchedule::warp_per_row) {
    const dim3 grid(static_cast<unsigned>((problem.n + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock),
                    static_cast<unsigned>(problem.batch));
    dense_softmin_warp_kernel<T><<<grid, kWarpRowsPerBlock * 32, 0, stream>>>(problem);
  } else {
    const dim3 grid(static_cast<unsigned>(problem.n), static_cast<unsigned>(problem.batch));
    dense_softmin_kernel<T><<<grid, kDenseThreads, 0, stream>>>(problem);
  }
  check(cudaGetLastError(), "sinkhorn dense CUDA softmin launch");
}

// ---------------------------------------------------------------------------------------------
// Exponential throughput: 8 independent chains per thread keep the special-function units busy.

constexpr int kExpChains = 8;

__global__ void exp_throughput_kernel(int iterations, float* sink) {
  float value[kExpChains];
#pragma unroll
  for (int c = 0; c < kExpChains; ++c) value[c] = -1e-3f * (threadIdx.x + c);
  for (int it = 0; it < iterations; ++it) {
#pragma unroll
    for (int c = 0; c < kExpChains; ++c) value[c] = fast_exp2(value[c]) - 1.0f;  // stays in (-1, 0]
  }
  float total = 0.f;
#pragma unroll
  for (int c = 0; c < kExpChains; ++c) total += value[c];
  if (total == 12345.f) sink[0] = total;  // never true: keeps the loop alive
}

}  // namespace

bool has_fast_kernel(int64_t d, Reduction reduction) {
  return (d >= 1 && d <= 4) || (d == 64 && reduction != Reduction::softmax_cost_gradient);
}

bool has_tensor_core_kernel(int64_t d, int p, Reduction reduction) {
  return reduction == Reduction::softmin && p == 2 && d >= kTensorCoreMinDimension && d <= kTensorCoreMaxDimension;
}

// The current device is sm_80 or newer, and the kernel's image that runs there came from sm_80 PTX
// or newer: a build for older architectures only, JIT-compiled on an A100 or H100, has the MMA
// compiled out. Asked once per device.
bool tensor_core_device() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  constexpr int kDevices = 64;
  static std::atomic<int> known[kDevices];  // 0: not asked yet, 1: usable, 2: not
  if (device < kDevices) {
    const int state = known[device].load(std::memory_order_relaxed);
    if (state != 0) return state == 1;
  }
  int major = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  bool usable = major >= 8;
  if (usable) {
    cudaFuncAttributes attributes{};
    check(cudaFuncGetAttributes(&attributes, tensor_core_softmin_kernel<2>), "cudaFuncGetAttributes");
    usable = attributes.ptxVersion >= 80;
  }
  if (device < kDevices) known[device].store(usable ? 1 : 2, std::memory_order_relaxed);
  return usable;
}

void online_reduce(const CudaProblem<float>& problem) {
  if (problem.n == 0 || problem.batch == 0) return;
  if (problem.tensor_cores && problem.m > 0 && !problem.force_generic &&
      has_tensor_core_kernel(problem.d, problem.p, problem.reduction) && tensor_core_device()) {
    return dispatch_tensor_core_softmin(problem);
  }
  if (problem.m == 0 || problem.force_generic || !has_fast_kernel(problem.d, problem.reduction)) {
    return launch_generic(problem);
  }
  switch (problem.d) {
    case 1: return dispatch_cost<1>(problem);
    case 2: return dispatch_cost<2>(problem);
    case 3: return dispatch_cost<3>(problem);
    case 4: return dispatch_cost<4>(problem);
    default: return dispatch_cost<64>(problem);
  }
}

void online_reduce(const CudaProblem<double>& problem) {
  if (problem.n == 0 || problem.batch == 0) return;
  launch_generic(problem);
}

void dense_softmin(const DenseSoftminProblem<float>& problem) { launch_dense(problem); }
void dense_softmin(const DenseSoftminProblem<double>& problem) { launch_dense(problem); }

double exp_throughput(int64_t count) {
  const int blocks = 8 * multiprocessors(), threads = 256;
  const int iterations = static_cast<int>(std::max<int64_t>(1, count / (int64_t{blocks} * threads * kExpChains)));
  float* sink = nullptr;
  cudaEvent_t start, stop;
  check(cudaMalloc(reinterpret_cast<void**>(&sink), sizeof(float)), "cudaMalloc");
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  exp_throughput_kernel<<<blocks, threads>>>(iterations / 10 + 1, sink);  // warm-up
  check(cudaEventRecord(start), "cudaEventRecord");
  exp_throughput_kernel<<<blocks, threads>>>(iterations, sink);
  check(cudaEventRecord(stop), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "exp throughput kernel");
  float milliseconds = 0;
  check(cudaEventElapsedTime(&milliseconds, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(sink);
  return static_cast<double>(blocks) * threads * kExpChains * iterations / (milliseconds * 1e-3);
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

}  // namespace sinkhorn::reduce::cuda
