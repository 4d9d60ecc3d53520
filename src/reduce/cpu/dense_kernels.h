// Dense CPU reductions over a stored cost matrix: the tensorized backend's sweeps on the CPU.
//
// A training step solves a few hundred points, where one sweep is four reductions of ~40,000
// pairs: ATen's log-sum-exp spends more on its seven passes and allocations (h - C/eps, max,
// subtract, exp, sum, log, add) than on the exponentials. These kernels read each row of C once
// per pass and write nothing but the result: per row, pass 1 takes max_j v_j with
// v_j = h_j - C_ij / eps, pass 2 sums exp(v_j - max) (one exp per pair), and the weighted modes
// a third pass. SIMD over j with Highway (every x86/Arm target, chosen at run time), rows on
// OpenMP threads when the matrix is large enough to pay for waking them.
//
// Numeric contract (as the online kernels, reduce/cpu/online_kernels.h):
// - dtypes float32 and float64; C as stored (the caller's cost matrix);
// - exp is Highway's (1 ulp); exponents below the smallest normal (-87 float32, -708 float64,
//   relative to the row's max) are clamped there: never a subnormal, a relative perturbation of
//   at most M e^-87;
// - lane sums over tiles of kDenseTile columns in the input dtype, the row's sums in double:
//   softmin agrees with a double-precision log-sum-exp of the same C and h to about
//   u (|softmin| + eps), u the dtype's epsilon;
// - softmax weights below 2^-64 (float32) or 2^-512 (float64) are stored as 0, an absolute error
//   of at most M 2^-64 in a row summing to 1 (5e-14 at M = 10^6), far under the dtype's rounding:
//   the matrix product that consumes them would form subnormal products, 30-100x slower on x86;
// - h_j = -inf (a zero weight) is allowed; a row whose h is all -inf gives softmin = +inf and
//   NaN weights, as the log-sum-exp of an empty sum does.
#pragma once

#include <cstdint>

namespace sinkhorn::reduce::cpu {

enum class DenseReduction {
  /// out (batch, n): -eps log sum_j exp(h_j - C_ij / eps)
  softmin,
  /// out (batch, n, m): w_ij = softmax_j(h_j - C_ij / eps), each row summing to 1
  softmax_weights,
  /// out (batch, n): sum_j w_ij C_ij
  softmax_cost,
};

template <typename T>
struct DenseProblem {
  const T* cost = nullptr;  ///< (batch, n, m), row-major, contiguous
  const T* h = nullptr;     ///< (batch, m)
  int64_t batch = 1, n = 0, m = 0;
  double eps = 1.0;
  DenseReduction reduction = DenseReduction::softmin;
  T* out = nullptr;         ///< (batch, n), or (batch, n, m) for softmax_weights
  /// Softmin only, optional (batch, n): per row a shift at or above its log-sum-exp (row_shifts.h);
  /// the row then takes one pass instead of a max pass and an exp pass, and any row whose sum
  /// falls outside [2^-60, 2^60] is redone in two (the contract is unchanged).
  const T* row_shifts = nullptr;
  /// Softmax weights only, optional (batch, n): each stored row multiplied by its factor, g_i w_ij
  /// (the adjoint of a softmin, for unrolled gradients); the flush to 0 applies to w_ij.
  const T* row_scales = nullptr;
  /// OpenMP threads for this call, explicit (see OnlineProblem::threads); small matrices run on
  /// the calling thread whatever this says.
  int threads = 1;
};

/// Runs the reduction on every row with the best SIMD target of this CPU (or the one forced by
/// force_simd_target, online_kernels.h).
void dense_reduce(const DenseProblem<float>& problem);
void dense_reduce(const DenseProblem<double>& problem);

}  // namespace sinkhorn::reduce::cpu
