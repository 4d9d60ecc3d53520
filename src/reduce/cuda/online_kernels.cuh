// Reductions on NVIDIA GPUs: the CUDA twin of reduce/cpu/online_kernels.h, with raw pointers only,
// so it compiles wherever nvcc exists (even beside a CPU-only LibTorch). reduce/cuda/cuda_reducer.h
// wraps it for LibTorch's CUDA tensors.
//
// Online (streaming) reductions, memory O(N + M D), never an N x M matrix: one thread per row i;
// the block stages tiles of y (and h) in shared memory and every thread streams its row's pair
// terms v_j = h_j - C(x_i, y_j) / eps through a running (max, sum) pair of the log-sum-exp. Two
// kernels:
// - fast (float32, D in {1, 2, 3, 4}, and D = 64 for the scalar reductions): x_i in registers,
//   base-2 exponents (log2(e) folded into h and 1/eps once per tile, so one FMA gives the exponent
//   and ex2.approx one exponential), 32 columns at a time: their exponents in registers, their max
//   first, then one exp per pair and one rescale of the running sums per 32 columns at most
//   (FlashAttention's blockwise softmax; KeOps' Max_SumShiftExpWeight merged per chunk);
// - generic (float64, and float32 at any other D): the same streaming, one pair at a time, the
//   gradient's D sums kept in the output row itself (no per-thread storage for large D).
//
// Numeric contract:
// - dtypes float32 and float64 (float16 / bfloat16 inputs are computed in float32 by the
//   reducer); costs from the exact differences x_i - y_j (no expansion);
// - fast kernel: pair terms, exponentials (ex2.approx, relative error 2^-22) and each 32-column
//   chunk's sums in float32; the running sums across chunks in double, so the error does not grow
//   with M: softmin agrees with the double reference to about u (|softmin| + eps) with u the float32
//   epsilon, weighted sums to a few u relative (tested against the reference at 1e-5);
// - generic kernel: pair terms in the input dtype, the running (max, sum) and the cost sum in
//   double; the gradient's sums in the output row, in the input dtype: about sqrt(M) u relative;
// - h_j = -inf (zero weight) contributes nothing; a row whose h is all -inf gives +inf (softmin)
//   and NaN (the weighted means), as on the CPU.
// Launches go on the caller's stream and are checked (std::runtime_error with CUDA's message).
//
// Dense softmin (the tensorized backend on the GPU): the same log-sum-exp over a cost matrix kept
// in device memory, one block per row, read once with 16-byte loads: a sweep then costs one pass
// over N M floats (4.8 TB/s on an H200) instead of N M D multiply-adds.
#pragma once

#include <cstdint>
#include <string>

namespace sinkhorn::reduce::cuda {

enum class Reduction {
  softmin,                ///< out (batch, n): -eps log sum_j exp(h_j - C_ij / eps)
  softmax_cost_gradient,  ///< out (batch, n, d): sum_j w_ij grad_x C(x_i, y_j)
  softmax_cost,           ///< out (batch, n): sum_j w_ij C(x_i, y_j)
};

template <typename T>
struct CudaProblem {
  const T* x = nullptr;  ///< device (batch, n, d), row-major
  const T* y = nullptr;  ///< device (batch, m, d), row-major
  const T* h = nullptr;  ///< device (batch, m)
  int64_t batch = 1, n = 0, m = 0, d = 0;
  int p = 2;  ///< 1: |x - y|, 2: |x - y|^2 / 2
  double eps = 1.0;
  Reduction reduction = Reduction::softmin;
  T* out = nullptr;       ///< device (batch, n) or (batch, n, d)
  void* stream = nullptr; ///< a cudaStream_t; nullptr: the default stream
  /// Tests only: run the generic kernel even where a fast one exists.
  bool force_generic = false;
  /// The tensor-core softmin (3xTF32 dot products) where has_tensor_core_kernel and the device is
  /// sm_80 or newer. Opt-in until a GPU has run it (the CUDA reducer sets it from
  /// SINKHORN_CUDA_TENSOR_CORES=1; docs/numerics.md, "Tensor cores", for its error bound).
  bool tensor_cores = false;
};

/// Launches the reduction; throws std::runtime_error with CUDA's message if the launch fails.
void online_reduce(const CudaProblem<float>& problem);
void online_reduce(const CudaProblem<double>& problem);

/// True when online_reduce runs the fast float32 kernel for this problem (the others run the
/// generic one).
bool has_fast_kernel(int64_t d, Reduction reduction);

/// Dimensions of the tensor-core softmin: D padded to whole MMA steps of 8, its x rows in registers.
inline constexpr int64_t kTensorCoreMinDimension = 16, kTensorCoreMaxDimension = 64;

/// True when online_reduce with tensor_cores set runs the tensor-core kernel (float32 softmin,
/// p = 2, kTensorCoreMinDimension <= d <= kTensorCoreMaxDimension, on an sm_80 or newer device).
bool has_tensor_core_kernel(int64_t d, int p, Reduction reduction);
/// Whether the current device runs the tensor-core kernel: sm_80 or newer, with the kernel's image
/// from sm_80 PTX or newer (otherwise online_reduce takes the fast kernel).
bool tensor_core_device();

/// How the dense softmin spreads a row over threads. Both read the matrix once, in 16-byte loads
/// when m % 4 == 0 and the matrix and h start on 16-byte boundaries; which is nearer the memory
/// bandwidth is measured by the GPU benchmark (docs/benchmarks.md, "GPU"), and the slower one
/// goes once a GPU has told. Block per row is the default meanwhile: warp per row has not run on a
/// GPU yet.
enum class DenseSchedule {
  /// One warp per row, eight rows per block: no block-wide reduction, four 16-byte loads in
  /// flight per thread, and the running max rescaled once per four columns.
  warp_per_row,
  /// One block of 256 threads per row, one load in flight per thread, a block-wide reduction at
  /// the end: 2.0 TB/s on an H100, 2.3 TB/s on an H200 (10^4 x 10^4, 2026-11-27).
  block_per_row,
};

template <typename T>
struct DenseSoftminProblem {
  const T* cost = nullptr;  ///< device (batch, n, m), contiguous
  const T* h = nullptr;     ///< device (batch, m)
  int64_t batch = 1, n = 0, m = 0;
  double eps = 1.0;
  T* out = nullptr;         ///< device (batch, n), apart from cost and h: -eps log sum_j exp(h_j - cost_ij / eps)
  void* stream = nullptr;
  /// Threads per row (see DenseSchedule). Block per row, the one a GPU has measured, until the
  /// GPU check has run warp per row (never a default that has not run on its hardware).
  DenseSchedule schedule = DenseSchedule::block_per_row;
};

/// The softmin over a stored cost matrix, same contract as the online softmin: exponents in base
/// 2 with log2(e) folded into h and 1 / eps, running (max, sum) pairs summed in T per thread over
/// at most ceil(m / 32) columns (ceil(m / 256) for block_per_row), merged across threads in double.
void dense_softmin(const DenseSoftminProblem<float>& problem);
void dense_softmin(const DenseSoftminProblem<double>& problem);

/// Measures this GPU's float32 exponential throughput (ex2.approx, the instruction the fast
/// kernel spends one of per pair): exponentials per second over `count` of them, timed with CUDA
/// events on the current device. The ceiling of any reduction that costs one exp per pair.
double exp_throughput(int64_t count);

/// Number of CUDA devices visible (0 when there is no GPU or no driver).
int device_count();

}  // namespace sinkhorn::reduce::cuda
