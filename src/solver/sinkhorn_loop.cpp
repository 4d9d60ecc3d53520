#include "solver/sinkhorn_loop.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

namespace sinkhorn::solver {
namespace {

// Annealing: sweeps per eps until the marginal error is under this, at most kSweepsPerScale.
constexpr double kAnnealingTolerance = 1e-2;
constexpr int kSweepsPerScale = 50;

// Contraction rates are measured over this many sweeps.
constexpr size_t kRateWindow = 5;

// The mean contraction per sweep of the marginal error over the last kRateWindow sweeps (needs
// more than kRateWindow errors); NaN when it cannot be measured (0/0).
double windowed_rate(const std::vector<double>& errors) {
  const size_t n = errors.size();
  return std::pow(errors[n - 1] / errors[n - 1 - kRateWindow], 1.0 / kRateWindow);
}

// One transport problem of the loop: between `source` and `target`, with its potentials.
struct Problem {
  const Cloud* source;
  const Cloud* target;
  PotentialPair* potentials;
  bool symmetric;  // OT(a, a) or OT(b, b): one potential, averaged update (annealing mode)
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

// GeomLoss's symmetric (Jacobi) update: both potentials from the old ones, then averaged,
//   f <- (f + lambda s(g)) / 2,  g <- (g + lambda T(f_old)) / 2.
// Linearised around the optimum its eigenvalues are (1 -/+ sigma) / 2 for the singular values
// sigma of the normalised plan: the (1 - sigma)/2 modes, which dominate when the clouds are close
// and the plan nearly diagonal, vanish fast, where alternating updates contract by sigma^2 only.
void averaged_update(const reduce::Reducer& reducer, const Problem& problem,
                     const at::Tensor& softmin_of_g, double eps, double lambda) {
  PotentialPair& pair = *problem.potentials;
  const at::Tensor softmin_of_f = softmin_over(reducer, *problem.target, *problem.source, pair.f, eps);
  pair.f = 0.5 * (pair.f + lambda * softmin_of_g);
  pair.g = 0.5 * (pair.g + lambda * softmin_of_f);
}

// Over-relaxation of the alternating updates at the final eps (Thibault, Chizat, Dossal,
// Papadakis 2021, "Overrelaxed Sinkhorn-Knopp"). Linearised, Sinkhorn is block Gauss-Seidel on a
// 2-cyclic system, so Young's SOR theory applies: with mu^2 the plain contraction of the error per
// sweep, omega* = 2 / (1 + sqrt(1 - mu^2)) cuts the sweeps per decade from ~1/(1 - mu^2) to
// ~1/sqrt(1 - mu^2). mu^2 is first measured over plain sweeps, then re-estimated from the rate
// rho observed under omega through Young's relation (rho + omega - 1)^2 = rho omega^2 mu^2.
// Before the asymptotic regime the measured rates mislead (too slow), and an omega above omega*
// converges at rate omega - 1 only: so a larger omega is kept only if it measurably beats the
// previous one; otherwise the previous omega is restored and frozen. SOR converges only locally:
// relaxation starts once the marginal error is small, and if the relaxed error diverges or
// stalls, plain sweeps resume and later tries use a smaller omega (plain Sinkhorn always converges).
class Relaxation {
 public:
  double omega() const { return omega_; }

  /// Starts relaxed from a plain rate measured elsewhere (the scheme probe below).
  void start_from_plain_rate(double rate, double error) {
    // A fast plain rate (early, far from the optimum) or a meaningless one: measure again later.
    if (!(rate >= kFastRate && rate < 1.0) || !(error < kLinearRegime)) return;
    set_omega(optimal_omega_allowed(rate), error);
  }

  /// Young's optimal factor for a plain contraction rate mu^2 < 1.
  static double optimal_omega(double mu_squared) {
    return std::min(kLargestOmega, 2.0 / (1.0 + std::sqrt(1.0 - mu_squared)));
  }

  double optimal_omega_allowed(double mu_squared) const {
    return std::min(largest_omega_, optimal_omega(mu_squared));
  }

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
        // Back to plain sweeps; later tries stay below half the failed excess omega - 1.
        largest_omega_ = 1.0 + (omega_ - 1.0) / 2;
        set_omega(1.0, error);
        previous_omega_ = 1.0;
        previous_rate_ = 1.0;
        frozen_ = false;
        abandoned_ = ++failures_ >= kFailuresAllowed;
        return;
      }
    }
    if (frozen_) return;
    const size_t settle = omega_ > 1.0 ? kSettleRelaxed : kSettlePlain;
    if (sweeps_since_change_ < settle + kRateWindow) return;
    const double rate = windowed_rate(errors_);
    if (!(rate > 0.0 && rate < 1.0)) return;
    if (omega_ == 1.0 && (rate < kFastRate || !(error < kLinearRegime))) {
      // Plain Sinkhorn is fast for now, or the iterates are too far from the optimum for the
      // linear theory (relaxing there can blow up): measure again later.
      sweeps_since_change_ = 0;
      return;
    }
    if (omega_ > 1.0 && !(rate < previous_rate_)) {
      set_omega(previous_omega_, error);  // no better than before: step back and stay
      frozen_ = true;
      return;
    }
    const double mu = (rate + omega_ - 1.0) / (omega_ * std::sqrt(rate));  // Young; mu^2 = rate at omega 1
    const double better = mu < 1.0 ? optimal_omega_allowed(mu * mu) : omega_;
    if (!(better > omega_ + 0.01)) {
      frozen_ = true;
      return;
    }
    previous_omega_ = omega_;
    // Plain rates measured early flatter; only a relaxed rate is a baseline worth beating.
    previous_rate_ = omega_ > 1.0 ? rate : 1.0;
    set_omega(better, error);
  }

 private:
  void set_omega(double omega, double error) {
    omega_ = omega;
    sweeps_since_change_ = 0;
    error_at_change_ = error;
  }

  static constexpr size_t kSettlePlain = 10;    // plain sweeps before the first measurement
  static constexpr size_t kSettleRelaxed = 20;  // relaxed sweeps before re-measuring
  static constexpr double kFastRate = 0.5;
  static constexpr double kLargestOmega = 1.98;
  static constexpr double kGrowthAllowed = 100.0;
  static constexpr size_t kPatience = 100;
  static constexpr double kLinearRegime = 5e-2;  // marginal error below which relaxing is safe
  static constexpr int kFailuresAllowed = 3;
  double largest_omega_ = kLargestOmega;
  int failures_ = 0;
  std::vector<double> errors_;
  double omega_ = 1.0;
  double previous_omega_ = 1.0;
  double previous_rate_ = 1.0;
  double error_at_change_ = 0.0;
  size_t sweeps_since_change_ = 0;
  bool frozen_ = false;
  bool abandoned_ = false;
};

// Chooses the update of OT(a, b) at the final eps: averaged (Jacobi) updates are fast when the
// clouds are close, alternating updates with over-relaxation when they are far apart (see above).
// It starts averaged and measures the rate every few sweeps. When that rate is slow it probes
// plain alternating sweeps once, predicts their relaxed rate by Young's omega* - 1, and keeps
// whichever is faster; since early rates flatter, the averaged rate keeps being re-measured and
// loses to the prediction as soon as it falls behind.
class SchemeSelector {
 public:
  bool averaged() const { return phase_ == Phase::averaged; }
  double omega() const { return phase_ == Phase::alternating ? relaxation_.omega() : 1.0; }

  void observe(double error) {
    errors_.push_back(error);
    if (phase_ == Phase::alternating) {
      relaxation_.observe(error);
      return;
    }
    if (errors_.size() < kProbe) return;
    const double rate = measured_rate();
    errors_.clear();
    if (phase_ == Phase::probe_alternating) {
      plain_rate_ = rate;
      relaxed_rate_ = rate < 1.0 ? Relaxation::optimal_omega(rate) - 1.0 : rate;
      probed_ = true;
      if (averaged_rate_ <= std::min(plain_rate_, relaxed_rate_)) {
        phase_ = Phase::averaged;
      } else {
        switch_to_alternating(error);
      }
      return;
    }
    // Phase::averaged
    averaged_rate_ = rate;
    if (rate < kFastRate) return;
    if (!probed_) {
      phase_ = Phase::probe_alternating;
    } else if (rate > std::min(plain_rate_, relaxed_rate_)) {
      switch_to_alternating(error);
    }
  }

 private:
  enum class Phase { averaged, probe_alternating, alternating };
  static constexpr size_t kProbe = 8;  // sweeps per measurement; the rate is taken over the last kRateWindow
  static constexpr double kFastRate = 0.5;

  double measured_rate() const {
    const double rate = windowed_rate(errors_);
    return rate > 0.0 ? rate : 1.0;  // NaN or 0/0: no information, treat as slow
  }

  void switch_to_alternating(double error) {
    phase_ = Phase::alternating;
    relaxation_.start_from_plain_rate(plain_rate_, error);
  }

  Phase phase_ = Phase::averaged;
  std::vector<double> errors_;
  bool probed_ = false;
  double averaged_rate_ = 1.0;
  double plain_rate_ = 1.0;
  double relaxed_rate_ = 1.0;
  Relaxation relaxation_;
};

}  // namespace

double damping(double eps, const std::optional<double>& rho) {
  return rho ? 1.0 / (1.0 + eps / *rho) : 1.0;
}

at::Tensor marginal_error(const Cloud& source, const at::Tensor& f, const at::Tensor& softmin_of_g,
                          double eps, const std::optional<double>& rho) {
  c10::NoGradGuard no_grad;
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
  // One sweep over every problem. OT(a, b) takes alternating updates (over-relaxed by omega) or,
  // when `averaged`, GeomLoss's averaged ones; symmetric problems the averaged symmetric update.
  const auto update = [&](const std::vector<at::Tensor>& softmins, double eps, bool averaged, double omega) {
    const double lambda = damping(eps, rho);
    for (size_t k = 0; k < problems.size(); ++k) {
      if (problems[k].symmetric) {
        PotentialPair& pair = *problems[k].potentials;
        pair.f = 0.5 * (pair.f + lambda * softmins[k]);
        pair.g = pair.f;
      } else if (averaged) {
        averaged_update(reducer, problems[k], softmins[k], eps, lambda);
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
      update(softmins_of_g(final_eps), final_eps, /*averaged=*/false, 1.0);
    }
    report.iterations = *settings.fixed_iterations;
    c10::NoGradGuard no_grad;
    report.marginal_error = largest_marginal_error(problems, softmins_of_g(final_eps), final_eps, rho);
    report.converged = report.marginal_error <= settings.tolerance;
    return report;
  }

  // Cold start at the largest eps from zero potentials (as GeomLoss does).
  if (!settings.warm_start) {
    const double eps = settings.epsilons.front();
    const double lambda = damping(eps, rho);
    for (const Problem& problem : problems) {
      PotentialPair& pair = *problem.potentials;
      const at::Tensor zeros_source = at::zeros_like(problem.source->weights);
      const at::Tensor zeros_target = at::zeros_like(problem.target->weights);
      pair.f = lambda * softmin_over(reducer, *problem.source, *problem.target, zeros_target, eps);
      pair.g = problem.symmetric
                   ? pair.f
                   : lambda * softmin_over(reducer, *problem.target, *problem.source, zeros_source, eps);
    }
  }
  // Annealing (Schmitzer 2019, section 3.2): at each eps, averaged sweeps until every plan's
  // marginal error is under kAnnealingTolerance (at most kSweepsPerScale). GeomLoss's single sweep
  // per eps leaves the potentials far off at small eps, where the final eps then crawls.
  for (size_t k = 0; k + 1 < settings.epsilons.size(); ++k) {
    const double eps = settings.epsilons[k];
    for (int sweep = 0; sweep < kSweepsPerScale; ++sweep) {
      const std::vector<at::Tensor> softmins = softmins_of_g(eps);
      if (sweep > 0 && largest_marginal_error(problems, softmins, eps, rho) < kAnnealingTolerance) break;
      update(softmins, eps, /*averaged=*/true, 1.0);
      ++report.iterations;
    }
  }
  std::vector<at::Tensor> softmins;
  SchemeSelector scheme;
  for (int sweep = 0;; ++sweep) {
    softmins = softmins_of_g(final_eps);
    const double error_ab = largest_marginal_error(problems, softmins, final_eps, rho, 0);
    report.marginal_error = std::max(error_ab, largest_marginal_error(problems, softmins, final_eps, rho, 1));
    report.converged = report.marginal_error <= settings.tolerance;
    if (report.converged || sweep == settings.max_iterations) break;
    scheme.observe(error_ab);
    update(softmins, final_eps, scheme.averaged(), scheme.omega());
    ++report.iterations;
  }
  // Last extrapolations. g = lambda T(f) is the best g for f (averaged and relaxed iterates leave
  // g off it); for the symmetric potentials f = lambda softmin(f) is the exact update.
  const double lambda = damping(final_eps, rho);
  state.ab.g = lambda * softmin_over(reducer, b, a, state.ab.f, final_eps);
  // Last extrapolation of the symmetric potentials: f = lambda softmin(f) is the exact update.
  for (size_t k = 0; k < problems.size(); ++k) {
    if (problems[k].symmetric) {
      problems[k].potentials->f = lambda * softmins[k];
      problems[k].potentials->g = problems[k].potentials->f;
    }
  }
  return report;
}

}  // namespace sinkhorn::solver
