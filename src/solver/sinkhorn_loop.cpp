#include "solver/sinkhorn_loop.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "solver/acceleration.h"
#include "solver/coarse_correction.h"
#include "solver/potential_arithmetic.h"
#include "util/interrupt.h"

namespace sinkhorn::solver {
namespace {

// Annealing: sweeps per eps until the marginal error is under this, at most kSweepsPerScale.
constexpr double kAnnealingTolerance = 1e-2;
constexpr int kSweepsPerScale = 50;
// The coarse correction at the final eps (coarse_correction.h): tried when OT(a, b)'s error falls,
// but by less than kCoarseWorthRate per sweep over the last kRateWindow sweeps (not while it
// grows: over-relaxation's transient), first after kCoarseInterval sweeps at the final eps (a
// solve that converges sooner never pays for the clusters: on toy-500 training batches a first try
// after 10 sweeps corrected in every solve, 2 corrections each, ~1 ms apiece, and the steps got no
// faster), then at least kCoarseInterval sweeps after the previous one;
// the interval grows by kCoarseIntervalGrowth after a correction that did not halve the error: the
// slow mode is then not (only) between clusters, and each correction kicks the modes that the
// over-relaxation had tuned to (measured: growth 2 cost up to +58% sweeps on some ring samples,
// 8 none over +10%, and 37% -> 43% fewer sweeps in all; docs/benchmarks.md).
constexpr double kCoarseWorthRate = 0.9;
constexpr int kCoarseIntervalGrowth = 8;
constexpr int kCoarseInterval = 60;

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
                         linear_combination(1.0, target.log_weights, 1.0 / eps, target_potential), eps);
}

// Each problem's largest marginal error over its batch entries, written into errors[k] for the
// problems not `frozen`: on the host directly, on a device with one
// synchronisation for all of them (each .item() would wait for the device).
void update_marginal_errors(const std::vector<Problem>& problems, const std::vector<at::Tensor>& softmins,
                            double eps, const LoopSettings& settings, const std::vector<char>& frozen,
                            std::vector<double>& errors) {
  const std::optional<double>& rho = settings.rho;
  errors.resize(problems.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<at::Tensor> on_device;
  std::vector<size_t> device_problems;
  for (size_t k = 0; k < problems.size(); ++k) {
    if (frozen[k]) continue;
    const at::Tensor& weights = problems[k].source->weights;
    const at::Tensor& f = problems[k].potentials->f;
    if (f.device().is_cpu()) {
      errors[k] = largest_marginal_error(weights, f, softmins[k], eps, rho);
    } else {
      on_device.push_back(marginal_error_per_entry(weights, f, softmins[k], eps, rho).amax());
      device_problems.push_back(k);
    }
  }
  if (!on_device.empty()) {
    const at::Tensor values = at::stack(on_device).to(at::kCPU, at::kDouble).contiguous();
    for (size_t k = 0; k < device_problems.size(); ++k) errors[device_problems[k]] = values.data_ptr<double>()[k];
  }
  if (settings.agree_on_errors) settings.agree_on_errors(errors);
}

std::vector<double> marginal_errors(const std::vector<Problem>& problems, const std::vector<at::Tensor>& softmins,
                                    double eps, const LoopSettings& settings) {
  std::vector<double> errors;
  update_marginal_errors(problems, softmins, eps, settings, std::vector<char>(problems.size(), false), errors);
  return errors;
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
  const auto relaxed = [omega, lambda](const at::Tensor& old, const at::Tensor& softmin) {
    return omega == 1.0 ? scaled(lambda, softmin) : linear_combination(1.0 - omega, old, omega * lambda, softmin);
  };
  pair.f = relaxed(pair.f, softmin_of_g);
  pair.g = relaxed(pair.g, softmin_over(reducer, *problem.target, *problem.source, pair.f, eps));
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
  pair.f = linear_combination(0.5, pair.f, 0.5 * lambda, softmin_of_g);
  pair.g = linear_combination(0.5, pair.g, 0.5 * lambda, softmin_of_f);
}

// When and how OT(a, b) is corrected on clusters at the final eps (coarse_correction.h).
class CoarseCorrector {
 public:
  CoarseCorrector(const LoopSettings& settings, const Cloud& a, const Cloud& b)
      : a_(a), b_(b),
        allowed_(settings.coarse_correction_p && !settings.rho && !settings.agree_on_errors),
        p_(settings.coarse_correction_p.value_or(2)) {}

  // Takes OT(a, b)'s error of this sweep; corrects its potentials when the loop is slow, and
  // says whether it did.
  bool corrected(double error, double eps, PotentialPair& potentials) {
    if (!allowed_) return false;
    if (error_before_) {  // the sweep after a correction: did it pay?
      if (!(error < 0.5 * *error_before_)) interval_ *= kCoarseIntervalGrowth;
      error_before_.reset();
    }
    remember_error(errors_, error);
    if (++sweeps_since_ < interval_ || errors_.size() <= kRateWindow) return false;
    const double rate = windowed_rate(errors_);
    if (!(rate > kCoarseWorthRate && rate < 1.0)) return false;
    if (!partition_) {
      partition_ = coarse_partition(a_, b_, p_);
      if (!partition_) {
        allowed_ = false;
        return false;
      }
    }
    c10::NoGradGuard no_grad;
    const CoarseCorrectionReport report = correct_on_clusters(*partition_, a_, b_, eps, potentials);
    sweeps_since_ = 0;
    errors_.clear();
    if (!report.applied) {
      interval_ *= kCoarseIntervalGrowth;
      return false;
    }
    error_before_ = error;
    return true;
  }

 private:
  const Cloud& a_;
  const Cloud& b_;
  bool allowed_;
  int p_;
  std::optional<std::vector<EntryPartition>> partition_;
  std::vector<double> errors_;
  int sweeps_since_ = 0;
  int interval_ = kCoarseInterval;
  std::optional<double> error_before_;
};

}  // namespace

double damping(double eps, const std::optional<double>& rho) {
  return rho ? 1.0 / (1.0 + eps / *rho) : 1.0;
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
  // Problems that have converged at the final eps stop there (frozen): the three problems are
  // independent, and a converged one would only confirm its error every sweep, at up to half of
  // the sweep's reductions, while OT(a, b) (the slowest, its plan farthest from diagonal) goes on.
  std::vector<char> frozen(problems.size(), false);
  // The problems' softmins are independent: one Reducer::softmins call, one message per sweep for
  // a sharded solve instead of one per problem.
  const auto softmins_of_g = [&](double eps, std::vector<at::Tensor> softmins = {}) {
    softmins.resize(problems.size());
    std::vector<reduce::SoftminRequest> requests;
    std::vector<size_t> asked;
    for (size_t k = 0; k < problems.size(); ++k) {
      if (frozen[k]) continue;
      const Problem& problem = problems[k];
      requests.push_back({&problem.source->points, &problem.target->points,
                          linear_combination(1.0, problem.target->log_weights, 1.0 / eps, problem.potentials->g), eps});
      asked.push_back(k);
    }
    std::vector<at::Tensor> results = reducer.softmins(requests);
    for (size_t i = 0; i < asked.size(); ++i) softmins[asked[i]] = std::move(results[i]);
    return softmins;
  };
  // One sweep over every problem not frozen. OT(a, b) takes alternating updates (over-relaxed by
  // omega) or, when `averaged`, GeomLoss's averaged ones; symmetric problems the averaged
  // symmetric update.
  const auto update = [&](const std::vector<at::Tensor>& softmins, double eps, bool averaged, double omega) {
    const double lambda = damping(eps, rho);
    for (size_t k = 0; k < problems.size(); ++k) {
      if (frozen[k]) continue;
      if (problems[k].symmetric) {
        PotentialPair& pair = *problems[k].potentials;
        pair.f = linear_combination(0.5, pair.f, 0.5 * lambda, softmins[k]);
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
      util::throw_if_interrupted();
      update(softmins_of_g(final_eps), final_eps, /*averaged=*/false, 1.0);
    }
    report.iterations = *settings.fixed_iterations;
    c10::NoGradGuard no_grad;
    const std::vector<double> errors = marginal_errors(problems, softmins_of_g(final_eps), final_eps, settings);
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
      pair.f = scaled(lambda, softmin_over(reducer, *problem.source, *problem.target, zeros_target, eps));
      pair.g = problem.symmetric
                   ? pair.f
                   : scaled(lambda, softmin_over(reducer, *problem.target, *problem.source, zeros_source, eps));
    }
  }
  // Annealing (Schmitzer 2019, section 3.2): at each eps, sweeps until every plan's marginal
  // error is under kAnnealingTolerance (at most kSweepsPerScale); a plan under it stops for the
  // rest of this eps. GeomLoss's single sweep per eps leaves the potentials far off at small eps,
  // where the final eps then crawls. OT(a, b) starts each eps with averaged updates, which keep
  // the symmetric start of close clouds (their error then halves or better per sweep), and turns
  // to alternating ones at the first sweep that does not halve it: for clouds apart, averaged
  // sweeps crawl at (1 + sigma) / 2 where alternating ones contract by sigma^2 (35% fewer
  // reductions in all on 24 training batches and 3-D clouds, none more: docs/benchmarks.md).
  std::vector<at::Tensor> softmins;
  std::vector<double> errors;
  for (size_t k = 0; k + 1 < settings.epsilons.size(); ++k) {
    const double eps = settings.epsilons[k];
    std::fill(frozen.begin(), frozen.end(), false);
    bool averaged = true;
    double previous_error = std::numeric_limits<double>::infinity();
    for (int sweep = 0; sweep < kSweepsPerScale; ++sweep) {
      util::throw_if_interrupted();
      softmins = softmins_of_g(eps, std::move(softmins));
      if (sweep > 0) {
        update_marginal_errors(problems, softmins, eps, settings, frozen, errors);
        for (size_t q = 0; q < problems.size(); ++q) frozen[q] = frozen[q] || errors[q] < kAnnealingTolerance;
        if (std::all_of(frozen.begin(), frozen.end(), [](char done) { return done; })) break;
        if (!frozen[0]) {
          averaged = averaged && errors[0] < kFastRate * previous_error;
          previous_error = errors[0];
        }
      }
      update(softmins, eps, averaged, 1.0);
      ++report.iterations;
    }
  }
  std::fill(frozen.begin(), frozen.end(), false);
  SchemeSelector scheme;
  if (settings.alternating_plain_rate) scheme.start_alternating(*settings.alternating_plain_rate);
  CoarseCorrector coarse(settings, a, b);
  const double lambda = damping(final_eps, rho);
  // `softmins` already hold every problem's softmin of its current g (the final check below).
  bool softmins_current = false;
  for (int sweep = 0;;) {
    for (;; ++sweep) {
      util::throw_if_interrupted();
      if (!softmins_current) softmins = softmins_of_g(final_eps, std::move(softmins));
      softmins_current = false;
      update_marginal_errors(problems, softmins, final_eps, settings, frozen, errors);
      report.marginal_error = largest_of(errors, 0, errors.size());
      report.converged = report.marginal_error <= settings.tolerance;
      if (report.converged || sweep == settings.max_iterations) break;
      for (size_t k = 0; k < problems.size(); ++k) frozen[k] = errors[k] <= settings.tolerance;
      // A correction changes f and g: the softmins of this sweep are stale, the next sweep measures.
      if (!frozen[0] && coarse.corrected(errors[0], final_eps, state.ab)) {
        ++report.coarse_corrections;
        continue;
      }
      // The scheme watches OT(a, b) alone (problem 0).
      if (!frozen[0]) scheme.observe(errors[0]);
      update(softmins, final_eps, scheme.averaged(), scheme.omega());
      ++report.iterations;
    }
    // Last extrapolations. g = lambda T(f) is the best g for f (averaged and relaxed iterates
    // leave g off it); for the symmetric potentials f = lambda softmin(f) is the exact update.
    state.ab.g = scaled(lambda, softmin_over(reducer, b, a, state.ab.f, final_eps));
    for (size_t k = 0; k < problems.size(); ++k) {
      if (problems[k].symmetric) {
        problems[k].potentials->f = scaled(lambda, softmins[k]);
        problems[k].potentials->g = problems[k].potentials->f;
      }
    }
    // They moved every plan: the error reported is that of the plans the value comes from.
    // OT(a, b)'s columns are now exact (g = lambda T(f)), so its error is its rows'; a
    // symmetric plan's rows and columns are one. One more reduction per problem; where the
    // extrapolations left an error above the tolerance (the columns of a relaxed iterate were
    // never measured), the loop goes on from them, this check being its next sweep's.
    std::fill(frozen.begin(), frozen.end(), false);
    softmins = softmins_of_g(final_eps, std::move(softmins));
    update_marginal_errors(problems, softmins, final_eps, settings, frozen, errors);
    report.marginal_error = largest_of(errors, 0, errors.size());
    report.converged = report.marginal_error <= settings.tolerance;
    if (report.converged || sweep == settings.max_iterations) break;
    softmins_current = true;
  }
  report.alternating_plain_rate = scheme.alternating_plain_rate();
  return report;
}

}  // namespace sinkhorn::solver
