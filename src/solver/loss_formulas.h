// Loss values and envelope gradients from converged dual potentials (docs/numerics.md).
//
// Every Sinkhorn loss is a signed sum of per-problem terms: divergence = OT_ab - OT_aa/2 - OT_bb/2,
// ot_eps = OT_ab, primal = 2 W_ab - W_aa - W_bb. Each term knows its value and, for the
// variational OT_eps, its gradients by the envelope theorem: at the optimum,
//   dOT/dC_ij = pi_ij,  so  dOT/dx_i = sum_j pi_ij grad_x C(x_i, y_j)
//                                    = (row mass of pi)_i * sum_j softmax_j(...) grad_x C(x_i, y_j),
//   dOT/da_i = f_i (balanced),  rho - (rho + eps) exp(-f_i/rho) + eps |b| (unbalanced).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "reduce/reducer.h"
#include "sinkhorn/options.h"
#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// The transport problems a loss needs: the symmetric ones only for the debiased losses.
bool needs_symmetric_problems(Loss loss);

/// Value of a Sinkhorn loss (divergence, primal or ot_eps) per batch entry, shape (B,).
/// Differentiable when the potentials and the reducer are (unrolled mode).
at::Tensor sinkhorn_loss_value(Loss loss, const reduce::Reducer& reducer, const Cloud& a,
                               const Cloud& b, const DualState& state, double eps,
                               const std::optional<double>& rho);

struct EnvelopeGradients {
  at::Tensor a;  ///< (B, N)
  at::Tensor x;  ///< (B, N, D)
  at::Tensor b;  ///< (B, M)
  at::Tensor y;  ///< (B, M, D)
};

/// Which inputs need a gradient (the others cost nothing: a data batch's y needs none).
struct GradientsWanted {
  bool a = false, x = false, b = false, y = false;
  bool any() const { return a || x || b || y; }
};

/// Envelope gradients of a variational loss (divergence or ot_eps) per batch entry. Only the
/// requested ones are computed; the point gradients cost one softmax reduction per plan side.
/// For balanced transport the weight gradients are defined up to an additive constant (only their
/// component tangent to the simplex is meaningful).
EnvelopeGradients envelope_gradients(Loss loss, const reduce::Reducer& reducer, const Cloud& a,
                                     const Cloud& b, const DualState& state, double eps,
                                     const std::optional<double>& rho, const GradientsWanted& wanted);

}  // namespace sinkhorn::solver
