#include "solver/sinkhorn_loop.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace sinkhorn::solver {
namespace {

// One transport problem of the loop: between `source` and `target`, with its potentials.
struct Problem {
  const Cloud* source;
  const Cloud* target;
  PotentialPair* potentials;
  bool averaged;  // symmetric problem with the single-potential averaged update
};

// softmin_eps(C(source, target), log w_target + potential / eps), over the target.
at::Tensor softmin_over(const reduce::Reducer& reducer, const Cloud& source, const Cloud& target,
                        const at::Tensor& target_potential, double eps) {
  return reducer.softmin(source.points, target.points,
                         target.log_weights + target_potential / eps, eps);
}

// The largest marginal error over problems [first, problems.size()) and batch entries.
double largest_marginal_error(const std::vector<Problem>& problems,
                              const std::vector<at::Tensor>& softmins, double eps,
                              const std::optional<double>& rho, size_t first = 0) {
  double largest = 0.0;
  for (size_t k = first; k < problems.size(); ++k) {
    const at::Tensor error = marginal_error(*problems[k].source, problems[k].potentials->f,
                                            softmins[k], eps, rho);
    const double value = error.max().item<double>();
    // NaN compares false: keep it, so an unconverged NaN is never reported as small.
    if (!(value <= largest)) largest = value;
  }
  return largest;
}

// Alternating update of a general problem from its softmin of g, over-relaxed by omega >= 1:
// f <- (1 - omega) f + omega lambda s,  g <- (1 - omega) g + omega lambda T(f). omega = 1 is Sinkhorn.
void alternating_update(const reduce::Reducer& reducer, const Problem& problem,
                        const at::Tensor& softmin_of_g, double eps, double lambda, double omega) {
  PotentialPair& pair = *problem.potentials;
  const auto relaxed = [omega](const at::Tensor& old, const at::Tensor& update) {
    return omega == 1.0 ? update : (1.0 - omega) * old + omega * update;
  };
  pair.f = relaxed(pair.f, lambda * softmin_of_g);
  pair.g = relaxed(pair.g, lambda * softmin_over(reducer, *problem.target, *problem.source, pair.f, eps));
}

// Over-relaxation of the alternating updates at the final eps (Thibault, Chizat, Dossal,
// Papadakis 2021, "Overrelaxed Sinkhorn-Knopp"). Linearised, Sinkhorn is block Gauss-Seidel on a
// 2-cyclic system, so Young's SOR theory applies: with mu^2 the plain contraction of the error per
// sweep, omega* = 2 / (1 + sqrt(1 - mu^2)) cuts the sweeps per decade from ~1/(1 - mu^2) to
// ~1/sqrt(1 - mu^2). mu^2 is first measured over plain sweeps, then re-estimated from the rate
// rho observed under omega through Young's relation (rho + omega - 1)^2 = rho omega^2 mu^2, which
// moves omega up towards omega* as the iterates reach the asymptotic regime. If the relaxed error
// diverges or stalls, relaxation is dropped for good (plain Sinkhorn always converges).
class Relaxation {
 public:
  double omega() const { return omega_; }

  void observe(double error) {
    errors_.push_back(error);
    if (abandoned_) return;
    ++sweeps_since_change_;
    if (omega_ > 1.0) {
      // SOR's error is not monotone (a transient growth of a few times is normal), but it must
      // stay bounded and fall below where it started within a while.
      const bool diverging = !(error <= kGrowthAllowed * error_at_change_);
      const bool stalled = sweeps_since_change_ >= kPatience && !(error < error_at_change_);
      if (diverging || stalled) {
        omega_ = 1.0;
        abandoned_ = true;
        return;
      }
    }
    const size_t settle = omega_ > 1.0 ? kSettleRelaxed : kSettlePlain;
    if (sweeps_since_change_ < settle + kWindow) return;
    const size_t n = errors_.size();
    const double rate = std::pow(errors_[n - 1] / errors_[n - 1 - kWindow], 1.0 / kWindow);
    if (!(rate > 0.0 && rate < 1.0)) return;
    if (omega_ == 1.0 && rate < kFastRate) {
      abandoned_ = true;  // plain Sinkhorn is fast already
      return;
    }
    const double mu = (rate + omega_ - 1.0) / (omega_ * std::sqrt(rate));  // Young; mu^2 = rate at omega 1
    if (!(mu < 1.0)) return;
    const double better = std::min(kLargestOmega, 2.0 / (1.0 + std::sqrt(1.0 - mu * mu)));
    if (better > omega_ + 0.01) {
      omega_ = better;
      sweeps_since_change_ = 0;
      error_at_change_ = error;
    }
  }

 private:
  static constexpr size_t kSettlePlain = 10;    // plain sweeps before the first measurement
  static constexpr size_t kSettleRelaxed = 20;  // relaxed sweeps before re-measuring
  static constexpr size_t kWindow = 5;          // sweeps a rate is measured over
  static constexpr double kFastRate = 0.5;
  static constexpr double kLargestOmega = 1.98;
  static constexpr double kGrowthAllowed = 100.0;
  static constexpr size_t kPatience = 100;
  std::vector<double> errors_;
  double omega_ = 1.0;
  double error_at_change_ = 0.0;
  size_t sweeps_since_change_ = 0;
  bool abandoned_ = false;
};

}  // namespace

double damping(double eps, const std::optional<double>& rho) {
  return rho ? 1.0 / (1.0 + eps / *rho) : 1.0;
}

at::Tensor marginal_error(const Cloud& source, const at::Tensor& f, const at::Tensor& softmin_of_g,
                          double eps, const std::optional<double>& rho) {
  at::NoGradGuard no_grad;
  const at::Tensor potential = f.detach();
  // Clamped exponent: far from convergence the mass may overflow; the error is then just large.
  const at::Tensor mass =
      source.weights * ((potential - softmin_of_g.detach()) / eps).clamp_max(80.0).exp();
  const at::Tensor target =
      rho ? source.weights * (-potential / *rho).clamp_max(80.0).exp() : source.weights;
  return (mass - target).abs().sum(1) / source.weights.sum(1);
}

LoopReport sinkhorn_loop(const reduce::Reducer& reducer, const Cloud& a, const Cloud& b,
                         const LoopSettings& settings, DualState& state) {
  const std::optional<double>& rho = settings.rho;
  const double final_eps = settings.epsilons.back();
  const bool fixed = settings.fixed_iterations.has_value();

  std::vector<Problem> problems{{&a, &b, &state.ab, false}};
  if (settings.solve_symmetric) {
    problems.push_back({&a, &a, &state.aa, !fixed});
    problems.push_back({&b, &b, &state.bb, !fixed});
  }
  const auto softmins_of_g = [&](double eps) {
    std::vector<at::Tensor> softmins;
    for (const Problem& problem : problems) {
      softmins.push_back(softmin_over(reducer, *problem.source, *problem.target,
                                      problem.potentials->g, eps));
    }
    return softmins;
  };
  const auto update = [&](const std::vector<at::Tensor>& softmins, double eps, double omega) {
    const double lambda = damping(eps, rho);
    for (size_t k = 0; k < problems.size(); ++k) {
      if (problems[k].averaged) {
        PotentialPair& pair = *problems[k].potentials;
        pair.f = 0.5 * (pair.f + lambda * softmins[k]);
        pair.g = pair.f;
      } else {
        alternating_update(reducer, problems[k], softmins[k], eps, lambda, omega);
      }
    }
  };

  LoopReport report;
  if (fixed) {
    // The paper's Algorithm 1 in the log domain: g = 0 (scaling vector 1), then L alternating updates.
    for (const Problem& problem : problems) {
      problem.potentials->g = at::zeros_like(problem.target->weights);
    }
    for (int l = 0; l < *settings.fixed_iterations; ++l) {
      update(softmins_of_g(final_eps), final_eps, 1.0);
    }
    report.iterations = *settings.fixed_iterations;
    at::NoGradGuard no_grad;
    report.marginal_error = largest_marginal_error(problems, softmins_of_g(final_eps), final_eps, rho);
    report.converged = report.marginal_error <= settings.tolerance;
    return report;
  }

  // Cold start at the largest eps from zero potentials (as GeomLoss does).
  {
    const double eps = settings.epsilons.front();
    const double lambda = damping(eps, rho);
    for (const Problem& problem : problems) {
      PotentialPair& pair = *problem.potentials;
      const at::Tensor zeros_source = at::zeros_like(problem.source->weights);
      const at::Tensor zeros_target = at::zeros_like(problem.target->weights);
      pair.f = lambda * softmin_over(reducer, *problem.source, *problem.target, zeros_target, eps);
      pair.g = problem.averaged
                   ? pair.f
                   : lambda * softmin_over(reducer, *problem.target, *problem.source, zeros_source, eps);
    }
  }
  for (size_t k = 0; k + 1 < settings.epsilons.size(); ++k) {
    update(softmins_of_g(settings.epsilons[k]), settings.epsilons[k], 1.0);
    ++report.iterations;
  }
  std::vector<at::Tensor> softmins;
  Relaxation relaxation;
  bool relaxed = false;
  for (int sweep = 0;; ++sweep) {
    softmins = softmins_of_g(final_eps);
    const double error_ab = largest_marginal_error(problems, softmins, final_eps, rho, 0);
    report.marginal_error = std::max(error_ab, largest_marginal_error(problems, softmins, final_eps, rho, 1));
    report.converged = report.marginal_error <= settings.tolerance;
    if (report.converged || sweep == settings.max_iterations) break;
    relaxation.observe(error_ab);
    relaxed = relaxed || relaxation.omega() > 1.0;
    update(softmins, final_eps, relaxation.omega());
    ++report.iterations;
  }
  const double lambda = damping(final_eps, rho);
  if (relaxed) {
    // Relaxed iterates leave g off its exact update; restore g = lambda T(f), the best g for f.
    PotentialPair& ab = state.ab;
    ab.g = lambda * softmin_over(reducer, b, a, ab.f, final_eps);
  }
  // Last extrapolation of the symmetric potentials: f = lambda softmin(f) is the exact update.
  for (size_t k = 0; k < problems.size(); ++k) {
    if (problems[k].averaged) {
      problems[k].potentials->f = lambda * softmins[k];
      problems[k].potentials->g = problems[k].potentials->f;
    }
  }
  return report;
}

}  // namespace sinkhorn::solver
