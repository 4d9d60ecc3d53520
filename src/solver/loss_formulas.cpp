#include "solver/loss_formulas.h"

#include <ATen/ATen.h>

#include <vector>

#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// One term of a loss: coefficient * OT_eps (or W_eps) of the problem source -> target.
struct Term {
  const Cloud* source;
  const Cloud* target;
  const PotentialPair* potentials;
  double coefficient;
};

std::vector<Term> loss_terms(Loss loss, const Cloud& a, const Cloud& b, const DualState& state) {
  switch (loss) {
    case Loss::ot_eps:
      return {{&a, &b, &state.ab, 1.0}};
    case Loss::divergence:
      return {{&a, &b, &state.ab, 1.0}, {&a, &a, &state.aa, -0.5}, {&b, &b, &state.bb, -0.5}};
    case Loss::primal:
      return {{&a, &b, &state.ab, 2.0}, {&a, &a, &state.aa, -1.0}, {&b, &b, &state.bb, -1.0}};
    default:
      break;
  }
  SINKHORN_INTERNAL_CHECK(false, "loss '" << to_string(loss) << "' is not a Sinkhorn loss");
  return {};
}

at::Tensor weighted_sum(const at::Tensor& weights, const at::Tensor& values) {
  return (weights * values).sum(1);
}

// exp(-f / rho): the ratio of a plan's marginal to its weights at the unbalanced optimum.
at::Tensor marginal_ratio(const at::Tensor& potential, double rho) {
  return (-potential / rho).exp();
}

// OT_eps of one problem at (near-)optimal potentials, the dual objective with the plan's mass
// replaced by its value at the optimum (docs/numerics.md, "unbalanced"):
//   balanced:   <a, f> + <b, g>
//   unbalanced: rho(|a| + |b|) - (rho + eps/2)(<a, e^{-f/rho}> + <b, e^{-g/rho}>) + eps |a| |b|
at::Tensor ot_value(const Term& term, double eps, const std::optional<double>& rho) {
  const at::Tensor& a = term.source->weights;
  const at::Tensor& b = term.target->weights;
  const at::Tensor& f = term.potentials->f;
  const at::Tensor& g = term.potentials->g;
  if (!rho) return weighted_sum(a, f) + weighted_sum(b, g);
  const at::Tensor mass_a = a.sum(1), mass_b = b.sum(1);
  return *rho * (mass_a + mass_b) -
         (*rho + eps / 2) * (weighted_sum(a, marginal_ratio(f, *rho)) + weighted_sum(b, marginal_ratio(g, *rho))) +
         eps * mass_a * mass_b;
}

// W_eps = <pi, C> with pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), summed row by row:
// row mass a_i exp((f_i - s_i)/eps) times the softmax-weighted mean cost of the row.
at::Tensor primal_value(const reduce::Reducer& reducer, const Term& term, double eps) {
  const Cloud& source = *term.source;
  const Cloud& target = *term.target;
  const at::Tensor h = target.log_weights + term.potentials->g / eps;
  const at::Tensor softmin = reducer.softmin(source.points, target.points, h, eps);
  const at::Tensor row_mass = source.weights * ((term.potentials->f - softmin) / eps).exp();
  return weighted_sum(row_mass, reducer.softmax_cost(source.points, target.points, h, eps));
}

// dOT/d(weights of one side) for the potential on that side; `other_mass` is the other side's.
at::Tensor weight_gradient(const at::Tensor& potential, const at::Tensor& other_mass, double eps,
                           const std::optional<double>& rho) {
  if (!rho) return potential;
  return *rho - (*rho + eps) * marginal_ratio(potential, *rho) + eps * other_mass.unsqueeze(1);
}

// dOT/d(points of one side): (row mass of pi) * softmax-weighted mean of grad C over the other side.
at::Tensor point_gradient(const reduce::Reducer& reducer, const Cloud& side, const at::Tensor& potential,
                          const Cloud& other, const at::Tensor& other_potential, double eps,
                          const std::optional<double>& rho) {
  const at::Tensor mass = rho ? side.weights * marginal_ratio(potential, *rho) : side.weights;
  const at::Tensor mean_gradient = reducer.softmax_cost_gradient(
      side.points, other.points, other.log_weights + other_potential / eps, eps);
  return mass.unsqueeze(2) * mean_gradient;
}

void accumulate(at::Tensor& total, const at::Tensor& value) {
  total = total.defined() ? total + value : value;
}

}  // namespace

bool needs_symmetric_problems(Loss loss) {
  return loss == Loss::divergence || loss == Loss::primal;
}

at::Tensor sinkhorn_loss_value(Loss loss, const reduce::Reducer& reducer, const Cloud& a,
                               const Cloud& b, const DualState& state, double eps,
                               const std::optional<double>& rho) {
  at::Tensor total;
  for (const Term& term : loss_terms(loss, a, b, state)) {
    const at::Tensor value =
        loss == Loss::primal ? primal_value(reducer, term, eps) : ot_value(term, eps, rho);
    accumulate(total, term.coefficient * value);
  }
  if (loss == Loss::divergence && rho) {
    // OT_ab - OT_aa/2 - OT_bb/2 = S - eps/2 (|a| - |b|)^2 where S is the formula of Sejourne et
    // al. that GeomLoss returns; we return S, so add the constant back.
    total = total + eps / 2 * (a.weights.sum(1) - b.weights.sum(1)).pow(2);
  }
  return total;
}

EnvelopeGradients envelope_gradients(Loss loss, const reduce::Reducer& reducer, const Cloud& a,
                                     const Cloud& b, const DualState& state, double eps,
                                     const std::optional<double>& rho, const GradientsWanted& wanted) {
  SINKHORN_INTERNAL_CHECK(loss == Loss::divergence || loss == Loss::ot_eps,
                 "envelope gradients exist only for variational losses (divergence, ot_eps), not '"
                     << to_string(loss) << "'");
  EnvelopeGradients gradients;
  // Per cloud: its weight and point gradient slots and whether each is wanted.
  const auto wants_weights = [&](const Cloud* cloud) { return cloud == &a ? wanted.a : wanted.b; };
  const auto wants_points = [&](const Cloud* cloud) { return cloud == &a ? wanted.x : wanted.y; };
  const auto weight_slot = [&](const Cloud* cloud) -> at::Tensor& {
    return cloud == &a ? gradients.a : gradients.b;
  };
  const auto point_slot = [&](const Cloud* cloud) -> at::Tensor& {
    return cloud == &a ? gradients.x : gradients.y;
  };
  for (const Term& term : loss_terms(loss, a, b, state)) {
    const Cloud& source = *term.source;
    const Cloud& target = *term.target;
    const PotentialPair& pair = *term.potentials;
    const bool symmetric_pair = pair.f.is_same(pair.g) && &source == &target;
    const double source_share = symmetric_pair ? 2 * term.coefficient : term.coefficient;
    if (wants_weights(&source)) {
      accumulate(weight_slot(&source), source_share * weight_gradient(pair.f, target.weights.sum(1), eps, rho));
    }
    if (!symmetric_pair && wants_weights(&target)) {
      accumulate(weight_slot(&target), term.coefficient * weight_gradient(pair.g, source.weights.sum(1), eps, rho));
    }
    if (wants_points(&source)) {
      accumulate(point_slot(&source), source_share * point_gradient(reducer, source, pair.f, target, pair.g, eps, rho));
    }
    if (!symmetric_pair && wants_points(&target)) {
      accumulate(point_slot(&target),
                 term.coefficient * point_gradient(reducer, target, pair.g, source, pair.f, eps, rho));
    }
  }
  if (loss == Loss::divergence && rho) {
    // Derivative of the constant eps/2 (|a| - |b|)^2 added to the value.
    const at::Tensor difference = (a.weights.sum(1) - b.weights.sum(1)).unsqueeze(1);
    if (wanted.a) gradients.a = gradients.a + eps * difference;
    if (wanted.b) gradients.b = gradients.b - eps * difference;
  }
  return gradients;
}

}  // namespace sinkhorn::solver
