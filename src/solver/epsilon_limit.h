// Sinkhorn losses far above the cost scale: the eps -> infinity limit (docs/numerics.md, "Scale
// and precision"), returned when eps > kLimitRatio max C (scale_plan.h).
//
// For balanced weights of total mass m, the plan tends to a x b / m and the potentials to
//   f_i = (C b)_i / m + alpha,  g_j = (C^T a)_j / m + alpha,  alpha = -(eps log m) / 2 - <a, C b> / (2 m^2)
// (the fixed point of f = softmin(g), g = softmin(f) to first order in max C / eps, with the free
// constant split evenly), so that
//   OT_eps(a, b) = <a, C b> / m - m eps log m + O(max C^2 / eps),   W_eps(a, b) -> <a, C b> / m,
//   S_eps -> (<a, C b> - <a, C a> / 2 - <b, C b> / 2) / m,
// half the MMD of kernel -C: |sum a x - sum b y|^2 / (2 m) for p = 2 (linear time), the energy
// distance for p = 1 (dense pairwise distances). The next term is -Var_{a x b}(C~) / (2 eps) with
// C~ the doubly centred cost: relative to max C at most max C / (2 eps).
#pragma once

#include <ATen/core/Tensor.h>

#include "sinkhorn/options.h"
#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// The limit value of a balanced Sinkhorn loss (divergence, ot_eps or primal) per batch entry,
/// shape (B,), differentiable in the clouds' points and weights through ATen, and the limit
/// potentials (detached) in `state` (ab, and aa, bb for the debiased loss). Clouds centred.
/// p = 1 holds dense (B, N, M) distances and checks that they fit, naming `loss`.
at::Tensor epsilon_limit(Loss loss, int p, const Cloud& a, const Cloud& b, double eps, DualState& state);

/// An upper bound on the relative L1 marginal error of the limit plan a x b / m e^{(f + g - C)/eps}
/// for clouds of largest cost max_cost: its first-order terms vanish (C is doubly centred), the
/// second are at most (2 max C / eps)^2 / 2.
double epsilon_limit_marginal_error(double max_cost, double eps);

}  // namespace sinkhorn::solver
