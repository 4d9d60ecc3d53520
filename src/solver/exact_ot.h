// Exact optimal transport between small weighted clouds, by LEMON's network simplex (Debian's
// liblemon-dev): the eps -> 0 limit of every Sinkhorn loss, and the reference of the paper's
// interpolation experiment.
#pragma once

#include <ATen/core/Tensor.h>

namespace sinkhorn::solver {

/// The optimal plan of one problem and its dual certificate.
struct ExactTransport {
  at::Tensor plan;  ///< (N, M) float64, rows summing to a, columns to b
  at::Tensor f;     ///< (N) float64 and g (M): f_i + g_j <= C_ij, equality on the plan's support
  at::Tensor g;
  double cost = 0;  ///< sum_ij plan_ij C_ij = sum_i a_i f_i + sum_j b_j g_j
};

/// OT(a, b) = min_{pi in Pi(a, b)} <pi, C> for one cost matrix C (N, M) and weights a (N), b (M)
/// with equal sums (checked by the caller). Computed in double: the masses are rounded to
/// integers of 2^50 / sum (relative error ~1e-15) because the network simplex needs integer flows.
/// Time grows roughly as N M (N + M); a few thousand points per side take seconds.
ExactTransport exact_transport(const at::Tensor& cost, const at::Tensor& a, const at::Tensor& b);

/// The loss OT(a, b) per batch entry for weights a (B, N), b (B, M) with equal sums and points
/// x (B, N, D), y (B, M, D), cost |x - y|^p / p for p = 2 and |x - y| for p = 1, as a
/// differentiable expression with the envelope theorem's derivatives: <pi*, C(x, y)> with the
/// optimal plan held fixed gives d/dx and d/dy, and <a - a.detach(), f> + <b - b.detach(), g>
/// (zero in value) gives d/da = f, d/db = g. Throws sinkhorn::Error naming loss beyond
/// 25 * 2^20 pairs per entry. Result (B), float64.
at::Tensor exact_ot_loss(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y, int p);

}  // namespace sinkhorn::solver
