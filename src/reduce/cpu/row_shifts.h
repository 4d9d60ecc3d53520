// Row shifts for the one-pass softmin (OnlineProblem::row_shifts, DenseProblem::row_shifts): a
// solver reduces over the same pair of clouds every sweep at one eps, with h moving a little, so
// the previous softmin bounds the next one:
//   log sum_j exp(h'_j - C_ij / eps) <= log sum_j exp(h_j - C_ij / eps) + max_j (h'_j - h_j),
// and exceeds it by at most the spread max - min of h' - h. The kernels take the terms relative to
// that bound in one pass (no row max first) and redo in two passes any row whose sum shows the
// bound was far off, so any shift is safe; a useful one needs a small spread. Each reducer keeps a
// PreviousSoftmin per pair of clouds, under its own key (the tensorized one with the cached cost
// matrix, the online one by the tensors and their versions, the multiscale one by its sorted
// clouds' builds).
#pragma once

#include <ATen/core/Tensor.h>

namespace sinkhorn::reduce::cpu {

/// Largest spread of h' - h (in log-mass) for which the previous softmin still gives shifts: the
/// one-pass terms then sit within e^-30 of the row's largest (the kernels' fallback starts at a
/// sum of 2^-60).
inline constexpr double kShiftSpread = 30.0;

/// A reducer's last softmin over one pair of clouds, in the kernels' dtype and layout.
struct PreviousSoftmin {
  at::Tensor h;        ///< (B, M) or (M): the potentials it reduced (padded columns -inf)
  at::Tensor softmin;  ///< (B, N) or (N): its result
  double eps = 0;
};

/// The shifts (shaped like previous.softmin) for the next softmin at `eps` over potentials `h`
/// (shaped like previous.h, contiguous, float32 or float64): the previous log-sum-exps
/// (-softmin / eps) plus the largest increase of h over each batch entry. +inf (two passes) for
/// an entry where a weight appeared or vanished (one of h, h' is -inf, not both) or whose change
/// is spread over more than kShiftSpread. Undefined when there is no previous softmin, or it was
/// at another eps, shape or dtype.
at::Tensor row_shifts(const PreviousSoftmin& previous, const at::Tensor& h, double eps);

}  // namespace sinkhorn::reduce::cpu
