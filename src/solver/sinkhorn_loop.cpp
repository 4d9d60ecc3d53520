#include "solver/sinkhorn_loop.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

#include "solver/acceleration.h"

namespace sinkhorn::solver {
namespace {

// Annealing: sweeps per eps until the marginal error is under this, at most kSweepsPerScale.
constexpr double kAnnealingTolerance = 1e-2;
constexpr int kSweepsPerScale = 50;

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

// Each problem's largest marginal error over its batch entries, with one host synchronisation
// for all of them (a sweep checks every plan; each .item() would wait for the device).
std::vector<double> marginal_errors(const std::vector<Problem>& problems, const std::vector<at::Tensor>& softmins,
                                    double eps, const std::optional<double>& rho) {
  std::vector<at::Tensor> errors;
  for (size_t k = 0; k < problems.size(); ++k) {
    errors.push_back(marginal_error(*problems[k].source, problems[k].potentials->f, softmins[k], eps, rho).amax());
  }
  const at::Tensor values = at::stack(errors).to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
}

// The largest of errors[first, last); NaN when any is NaN, so that an unconverged NaN is never
// reported as small.
double largest_of(const std::vector<double>& errors, size_t first, size_t last) {
  double largest = 0.0;
  for (size_t k = first; k < last; ++k) {
    if (std::isnan(errors[k])) return errors[k];
    largest = std::max(largest, errors[k]);
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
    const std::vector<double> errors = marginal_errors(problems, softmins_of_g(final_eps), final_eps, rho);
    report.marginal_error = largest_of(errors, 0, errors.size());
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
      if (sweep > 0) {
        const std::vector<double> errors = marginal_errors(problems, softmins, eps, rho);
        if (largest_of(errors, 0, errors.size()) < kAnnealingTolerance) break;
      }
      update(softmins, eps, /*averaged=*/true, 1.0);
      ++report.iterations;
    }
  }
  std::vector<at::Tensor> softmins;
  SchemeSelector scheme;
  for (int sweep = 0;; ++sweep) {
    softmins = softmins_of_g(final_eps);
    // The scheme watches OT(a, b) alone (problem 0); convergence needs every plan.
    const std::vector<double> errors = marginal_errors(problems, softmins, final_eps, rho);
    const double error_ab = largest_of(errors, 0, 1);
    report.marginal_error = largest_of(errors, 0, errors.size());
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
  for (size_t k = 0; k < problems.size(); ++k) {
    if (problems[k].symmetric) {
      problems[k].potentials->f = lambda * softmins[k];
      problems[k].potentials->g = problems[k].potentials->f;
    }
  }
  return report;
}

}  // namespace sinkhorn::solver
