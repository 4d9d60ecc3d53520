// Online (streaming) CPU reductions: memory O(N + M D), never an N x M matrix.
//
// For each row i the pair terms v_j = h_j - C(x_i, y_j) / eps are streamed over tiles of y; each
// tile is reduced to (tile max, sum exp(v - max)) and merged into the row's running pair by the
// log-sum-exp rule (KeOps' Max_SumShiftExpWeight):
//   (m, s) + (m', s') = (M, s e^{m - M} + s' e^{m' - M}),  M = max(m, m'),
// so one exp per pair, and the weighted sums of the gradient and cost reductions are rescaled the
// same way. SIMD runs over j (lanes of y, hence y transposed), written once with Highway and
// compiled for every x86/Arm instruction set it supports, chosen at run time; rows are split
// across OpenMP threads in chunks.
//
// Numeric contract:
// - dtypes float32 and float64; costs from the exact differences x_i - y_j (no expansion);
// - exp is Highway's (1 ulp); exponents are clamped at the smallest normal, -87 (float32) /
//   -708 (float64), so no subnormal is ever produced (they are slow): a term below e^-87 of the
//   row's largest counts as e^-87, a relative perturbation of at most M e^-87 (1e-32 at M = 1e6).
//   h_j = -inf (zero weight, padding) is such a term;
// - per-tile lane sums in the input dtype, the running (max, sum) and weighted sums in double:
//   softmin agrees with the double-precision reference to about u (|softmin| + eps), u the
//   dtype's epsilon: tested to 1e-5 relative in float32 and 1e-12 in float64 at every SIMD level;
// - valid for any finite x, y and eps > 0, h in [-inf, +inf); a row whose h is all -inf gives
//   softmin = +inf (empty sum) and NaN for the weighted means.
#pragma once

#include <cstdint>

namespace sinkhorn::reduce::cpu {

enum class Reduction {
  /// out (batch, n): -eps log sum_j exp(h_j - C_ij / eps)
  softmin,
  /// out (batch, n, d): sum_j w_ij grad_x C(x_i, y_j), w_ij = softmax_j(h_j - C_ij / eps)
  softmax_cost_gradient,
  /// out (batch, n): sum_j w_ij C(x_i, y_j)
  softmax_cost,
};

/// y columns are padded to a multiple of this many entries (h = -inf there).
constexpr int64_t kColumnPadding = 16;

template <typename T>
struct OnlineProblem {
  const T* x = nullptr;    ///< (batch, n, d), row-major
  const T* y_t = nullptr;  ///< (batch, d, m_padded): y transposed; padded columns finite
  const T* h = nullptr;    ///< (batch, m_padded); -inf in the padded columns
  int64_t batch = 1, n = 0, m = 0, m_padded = 0, d = 0;
  int p = 2;               ///< 1: |x - y|, 2: |x - y|^2 / 2
  double eps = 1.0;
  Reduction reduction = Reduction::softmin;
  T* out = nullptr;        ///< (batch, n) or (batch, n, d)
};

/// Runs the reduction on every row, with the best SIMD target of this CPU and the current
/// OpenMP thread count.
void online_reduce(const OnlineProblem<float>& problem);
void online_reduce(const OnlineProblem<double>& problem);

/// sum_i exp(values[i]) with the kernels' vectorised exp, single-threaded: the benchmarks'
/// measure of this machine's exp throughput, the ceiling of a reduction that costs one exp per pair.
double sum_of_exponentials(const float* values, int64_t count);
double sum_of_exponentials(const double* values, int64_t count);

/// Names of the SIMD targets compiled in and supported by this CPU (best first), and a way to
/// force one of them (by index into that list; -1 restores the best): the tests run every level.
int simd_target_count();
const char* simd_target_name(int index);
void force_simd_target(int index);

}  // namespace sinkhorn::reduce::cpu
