// Online (streaming) reductions on NVIDIA GPUs: the CUDA twin of reduce/cpu/online_kernels.h,
// with raw pointers only, so it compiles wherever nvcc exists (even beside a CPU-only LibTorch).
//
// One thread per row i; the block stages tiles of y (and h) in shared memory and every thread
// streams its row's pair terms v_j = h_j - C(x_i, y_j) / eps through the running (max, sum) pair
// of the log-sum-exp, one exp per pair:
//   v > m:  s <- s e^{m - v} + 1, m <- v        v <= m:  s <- s + e^{v - m}
// (KeOps' Max_SumShiftExpWeight), the weighted sums of the gradient and cost reductions rescaled
// the same way.
//
// Numeric contract:
// - dtypes float32 and float64 (float16 / bfloat16 inputs are promoted to float32 by the API);
//   costs from the exact differences x_i - y_j (no expansion);
// - pair terms in the input dtype, the running (max, sum) and the cost sum in double, as on the
//   CPU: softmin agrees with the double reference to about u (|softmin| + eps); the gradient's D
//   weighted sums accumulate in the output row itself, in the input dtype (no per-thread storage
//   for large D): about sqrt(M) u relative in float32;
// - h_j = -inf (zero weight) contributes nothing; a row whose h is all -inf gives +inf;
// - memory O(N + M D): never an N x M matrix. Launches go on the caller's stream and are checked.
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
};

/// Launches the reduction; throws std::runtime_error with CUDA's message if the launch fails.
void online_reduce(const CudaProblem<float>& problem);
void online_reduce(const CudaProblem<double>& problem);

/// Number of CUDA devices visible (0 when there is no GPU or no driver).
int device_count();

}  // namespace sinkhorn::reduce::cuda
