#include "solver/epsilon_limit.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "reduce/cost_matrix.h"
#include "solver/loss_formulas.h"
#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// (C(x, y) w)_i = sum_j w_j C(x_i, y_j) for every x_i, (B, N).
at::Tensor cost_times_weights(int p, const at::Tensor& x, const at::Tensor& y, const at::Tensor& w) {
  if (p == 1) return at::bmm(reduce::cost_matrix(x, y, 1), w.unsqueeze(2)).squeeze(2);
  // |x - y|^2 / 2 = |x|^2 / 2 + |y|^2 / 2 - x.y: the sums of w, w |y|^2 and w y are all it needs.
  const at::Tensor mass = w.sum(1, /*keepdim=*/true);
  const at::Tensor second_moment = (w * y.square().sum(2)).sum(1, true);
  const at::Tensor first_moment = at::bmm(w.unsqueeze(1), y);  // (B, 1, D)
  return 0.5 * (mass * x.square().sum(2) + second_moment) - at::bmm(x, first_moment.transpose(1, 2)).squeeze(2);
}

}  // namespace

at::Tensor epsilon_limit(Loss loss, int p, const Cloud& a, const Cloud& b, double eps, DualState& state) {
  SINKHORN_INTERNAL_CHECK(is_sinkhorn_loss(loss), "the eps -> infinity limit of " << to_string(loss));
  if (p == 1) {
    const int64_t largest = std::max(a.points.size(1), b.points.size(1));
    reduce::check_dense_fits(a.points.size(0), largest, largest, a.points.element_size(), 2, a.points.device(),
                             "blur", "far above the clouds' largest cost (the eps -> infinity limit, p = 1, "
                                     "computed with dense distances)",
                             "use a smaller blur, loss energy on subsamples, or subsample");
  }
  const bool symmetric = needs_symmetric_problems(loss);
  const at::Tensor mass_a = a.weights.sum(1), mass_b = b.weights.sum(1);
  // Balanced masses agree to 1e-4 (api/inputs.cpp); one m for the pair, as the plan a x b / m has.
  const at::Tensor mass = 0.5 * (mass_a + mass_b);
  const at::Tensor cost_b_on_x = cost_times_weights(p, a.points, b.points, b.weights);
  const at::Tensor cost_a_on_y = cost_times_weights(p, b.points, a.points, a.weights);
  const at::Tensor cross = (a.weights * cost_b_on_x).sum(1);  // <a, C b>
  const auto constant = [eps](const at::Tensor& m, const at::Tensor& pair_cost) {
    return -0.5 * eps * m.log() - 0.5 * pair_cost / m.square();
  };
  const at::Tensor alpha = constant(mass, cross).unsqueeze(1);
  state.ab.f = (cost_b_on_x / mass.unsqueeze(1) + alpha).detach();
  state.ab.g = (cost_a_on_y / mass.unsqueeze(1) + alpha).detach();
  at::Tensor self_a, self_b;  // <a, C a>, <b, C b>
  if (symmetric || loss == Loss::primal) {
    const at::Tensor cost_a_on_x = cost_times_weights(p, a.points, a.points, a.weights);
    const at::Tensor cost_b_on_y = cost_times_weights(p, b.points, b.points, b.weights);
    self_a = (a.weights * cost_a_on_x).sum(1);
    self_b = (b.weights * cost_b_on_y).sum(1);
    if (symmetric) {
      state.aa.f = (cost_a_on_x / mass_a.unsqueeze(1) + constant(mass_a, self_a).unsqueeze(1)).detach();
      state.aa.g = state.aa.f;
      state.bb.f = (cost_b_on_y / mass_b.unsqueeze(1) + constant(mass_b, self_b).unsqueeze(1)).detach();
      state.bb.g = state.bb.f;
    }
  }
  switch (loss) {
    case Loss::divergence:
      // The -m eps log m of the three terms cancel for equal masses.
      return (cross - 0.5 * self_a - 0.5 * self_b) / mass;
    case Loss::ot_eps:
      return cross / mass - eps * mass * mass.log();
    case Loss::primal:
      return (2 * cross - self_a - self_b) / mass;
    default:
      break;
  }
  SINKHORN_INTERNAL_CHECK(false, "unreachable");
  return {};
}

double epsilon_limit_marginal_error(double max_cost, double eps) {
  const double ratio = 2 * max_cost / eps;
  return 0.5 * ratio * ratio;
}

}  // namespace sinkhorn::solver
