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
// - float32 works in base 2: exponents v_j log2(e) (log2(e) folded into h and 1/eps), each term
//   one 2^x by the degree-7 polynomial of exp2_polynomial-inl.h (about 2 ulp, half the work of
//   a general exp); float64 uses Highway's Exp (1 ulp). Exponents are clamped at the smallest
//   normal, 2^-126 (float32) / e^-708 (float64), so no subnormal is ever produced (they are
//   slow): a term below 2^-126 of the row's largest counts as 2^-126, a relative perturbation of
//   at most M 2^-126 (1e-32 at M = 1e6).
//   h_j = -inf (zero weight, padding) is such a term; in the gradient reduction terms under
//   2^-64 (float32) / 2^-512 (float64) of the row's largest count as 0 (their products with
//   x_i - y_j would be subnormal, slow on x86), an absolute error under M 2^-64 in the weights;
// - per-tile lane sums in the input dtype, the running (max, sum) and weighted sums in double:
//   softmin agrees with the double-precision reference to about u (|softmin| + eps), u the
//   dtype's epsilon: tested to 1e-5 relative in float32 and 1e-12 in float64 at every SIMD level;
// - valid for any finite x, y and eps > 0, h in [-inf, +inf); a row whose h is all -inf gives
//   softmin = +inf (empty sum) and NaN for the weighted means;
// - a softmin with row shifts (OnlineProblem::row_shifts) sums exp(v_j - S_i) in one pass, the
//   same lane and tile sums, clamped at the same smallest normal relative to S_i instead of the
//   row's max; it is used only where the sum lands in [2^-60, 2^60], so the clamped terms stay
//   under M 2^-66 of the sum and the contract above holds unchanged.
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
  /// When set, the weighted reductions also write softmin here (batch, n): one pass for both.
  T* softmin_out = nullptr;
  /// Softmin only, optional (batch, n): per row a shift S_i at or above its log-sum-exp
  /// log sum_j exp(h_j - C_ij / eps), e.g. the previous sweep's plus the largest increase of h.
  /// The row then takes one pass, sum_j exp(v_j - S_i), without the tile maxima and the second
  /// pass over stored exponents. A row whose sum falls outside [2^-60, 2^60] (S_i far off) is
  /// redone in two passes, so the numeric contract above holds for any S_i.
  const T* row_shifts = nullptr;
  /// Block-sparse mode (kernel truncation) when set, batch 1 only: rows [row_block_starts[k],
  /// row_block_starts[k + 1]) visit only the column ranges [ranges[2r], ranges[2r + 1]) for r in
  /// [range_offsets[k], range_offsets[k + 1]); range ends are multiples of kColumnPadding (<= m_padded).
  /// The skipped pairs count as zero: the caller guarantees they are negligible (multiscale_reducer.h).
  const int64_t* row_block_starts = nullptr;  ///< (row_blocks + 1), from 0 to n
  const int64_t* range_offsets = nullptr;     ///< (row_blocks + 1)
  const int64_t* ranges = nullptr;            ///< (2 * range_offsets[row_blocks])
  int64_t row_blocks = 0;
  /// OpenMP threads for this call. Explicit, never the calling thread's OpenMP setting: that one is
  /// lost in a std::thread, and belongs to whichever OpenMP runtime the caller's code linked. The
  /// reducers pass at::get_num_threads(). Small problems run on one thread whatever this says.
  int threads = 1;
};

/// Upper bounds of the relative mass that kernel truncation would drop (multiscale_reducer.h).
/// For each row cluster I (centre c_I, radius r_I, its row's log-sum-exp s_I at the centre and,
/// for p = 2, the softmax barycentre t_I there and the box [lo_I, hi_I] of its points' offsets
/// x_i - c_I) and column tile J (the kColumnPadding columns
/// [J kColumnPadding, (J + 1) kColumnPadding) of the transposed, padded y, in the order the caller
/// sorted them):
///   out[I, J] = sum_{j in J} exp(h_j - C(c_I, y_j) / eps + slack_Ij - s_I),
///   slack_Ij = sum_k max(lo_Ik u_k, hi_Ik u_k) / eps, u = y_j - t_I  (p = 2: the largest
///              <x_i - c_I, y_j - t_I> / eps over the box, at most |u| r_I / eps),
///   slack_Ij = 2 r_I / eps  (p = 1),
/// which bounds sum_{j in J} softmax_j(h - C(x_i, .) / eps) for every x_i within r_I of c_I
/// (convexity of the log-sum-exp for p = 2, Lipschitz bounds for p = 1). Each term's exponent is
/// clamped to [-87, 80] in the input dtype: terms below e^-87 count as 0 (at most M e^-87 in all),
/// a bound above e^80 only keeps its tile. A tile's 16 positive terms are summed in the input
/// dtype: a float32 sum is exact to 1e-6 of itself, far inside the bound's own slack.
/// Tiles, not the row clusters' grid cells, are the blocks on the column side: the reductions
/// visit whole tiles anyway (ranges are kColumnPadding-aligned), and a tile's sum is one SIMD
/// reduction where a cell of a few points costs a branchy loop.
template <typename T>
struct TruncationBoundProblem {
  const T* centres = nullptr;      ///< (clusters, d)
  const T* barycentres = nullptr;  ///< (clusters, d), p = 2 only
  const double* radii = nullptr;   ///< (clusters), p = 1 only
  const double* low_offsets = nullptr;   ///< (clusters, d), p = 2 only: lo_I (<= 0)
  const double* high_offsets = nullptr;  ///< (clusters, d), p = 2 only: hi_I (>= 0)
  const double* log_sums = nullptr;  ///< (clusters): s_I
  int64_t clusters = 0;
  const T* y_t = nullptr;          ///< (d, m_padded)
  const T* h = nullptr;            ///< (m_padded)
  int64_t m_padded = 0;            ///< a multiple of kColumnPadding: m_padded / kColumnPadding tiles
  int64_t d = 0;
  int p = 2;
  double eps = 1.0;
  double* out = nullptr;           ///< (clusters, m_padded / kColumnPadding)
  /// OpenMP threads for this call (see OnlineProblem::threads).
  int threads = 1;
};

void truncation_bounds(const TruncationBoundProblem<float>& problem);
void truncation_bounds(const TruncationBoundProblem<double>& problem);

/// Runs the reduction on every row, with the best SIMD target of this CPU and problem.threads
/// OpenMP threads.
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
