#include "solver/sinkhorn_loop.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "solver/acceleration.h"
#include "solver/coarse_correction.h"
#include "solver/potential_arithmetic.h"
#include "util/check.h"
#include "util/interrupt.h"
#include "util/opt_in.h"

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
                         linear_combination(1.0, target.log_weights, 1.0 / eps, target_potential), eps);
}

// Each problem's largest marginal error over its batch entries as one float64 tensor on the
// problems' device, NaN for the problems `frozen`: nothing waits for the device until the values
// are read (every sweep by update_marginal_errors, or once for several with batched reads).
at::Tensor marginal_errors_on_device(const std::vector<Problem>& problems, const std::vector<at::Tensor>& softmins,
                                    double eps, const LoopSettings& settings, const std::vector<char>& frozen) {
  std::vector<at::Tensor> values;
  for (size_t k = 0; k < problems.size(); ++k) {
    const at::Tensor& f = problems[k].potentials->f;
    values.push_back(frozen[k] ? at::full({}, std::numeric_limits<double>::quiet_NaN(), f.options().dtype(at::kDouble))
                               : marginal_error_per_entry(problems[k].source->weights, f, softmins[k], eps, settings.rho)
                                     .amax()
                                     .to(at::kDouble));
  }
  return at::stack(values);
}

// Each problem's largest marginal error over its batch entries, written into errors[k] for the
// problems not `frozen`: on the host directly, on a device with one
// synchronisation for all of them (each .item() would wait for the device; every problem of a
// solve lives on one device).
void update_marginal_errors(const std::vector<Problem>& problems, const std::vector<at::Tensor>& softmins,
                            double eps, const LoopSettings& settings, const std::vector<char>& frozen,
                            std::vector<double>& errors) {
  const std::optional<double>& rho = settings.rho;
  errors.resize(problems.size(), std::numeric_limits<double>::quiet_NaN());
  if (!problems.front().potentials->f.device().is_cpu()) {
    const at::Tensor values = marginal_errors_on_device(problems, softmins, eps, settings, frozen).to(at::kCPU).contiguous();
    for (size_t k = 0; k < problems.size(); ++k) {
      if (!frozen[k]) errors[k] = values.data_ptr<double>()[k];
    }
  } else {
    for (size_t k = 0; k < problems.size(); ++k) {
      if (!frozen[k]) errors[k] = largest_marginal_error(problems[k].source->weights, problems[k].potentials->f,
                                                         softmins[k], eps, rho);
    }
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

// Batched reads of the marginal errors have not run on a GPU yet (scripts/gpu/check.sh runs them
// with SINKHORN_CUDA_BATCHED_READS=1): until they have, CUDA solves read every sweep.
bool cuda_batched_reads_enabled() { return util::opted_in("SINKHORN_CUDA_BATCHED_READS"); }

// Corrected sweeps on CUDA tensors have not run on a GPU yet (issue 34's check runs them with
// SINKHORN_CUDA_CORRECTED_SWEEPS=1): until they have, CUDA solves take the plain loop.
bool cuda_corrections_enabled() { return util::opted_in("SINKHORN_CUDA_CORRECTED_SWEEPS"); }

// When OT(a, b) takes a corrected sweep (coarse_correction.h) instead of the scheme's update.
// Decided from measured rates and a cost model, one sweep ahead (a corrected sweep's row pass is
// segmented by cluster, so its kind is chosen before its softmins are computed):
//   - only after a plain update that did not halve OT(a, b)'s error (kFastRate), or at a new eps
//     once corrections have paid in this solve; never two corrected sweeps in a row (a plain
//     update between them measures the plain rate, and costs no Newton solve);
//   - only when the sweeps it saves exceed its cost, (1 + overhead) plain sweeps (the Newton
//     solves against the pairs' work, and a dense pass against a truncated one): it removes the
//     measured share of the error that lies on clusters, which plain sweeps at the measured rate
//     would take log(1 - share) / log(rate) sweeps to remove, at most the sweeps still needed;
//   - a corrected update pays when its error ratio c beats the plain rate p over its cost,
//     c < p^(1 + overhead); when it does not, corrections pause for an interval that doubles.
// The clusters are made the first time the rates ask for a corrected sweep, so a solve that never
// crawls never pays for them.
class CorrectionTrigger {
 public:
  CorrectionTrigger(const LoopSettings& settings, const reduce::Reducer& reducer, const Cloud& a, const Cloud& b)
      : reducer_(reducer), a_(a), b_(b),
        allowed_(settings.coarse_correction_p && !settings.rho && (!settings.agree_on_errors || settings.row_shards) &&
                 (a.points.device().is_cpu() || cuda_corrections_enabled())),
        shards_(settings.row_shards),
        agree_(settings.row_shards ? settings.agree_on_errors : nullptr),
        p_(settings.coarse_correction_p.value_or(2)) {}

  // A new eps: rates measured at the previous one no longer apply.
  void new_eps() {
    previous_error_.reset();
    plain_rate_.reset();
    last_corrected_ = next_ = false;
    first_ = allowed_ && paid_ && pause_ == 0;
  }

  // A sweep whose error was not measured (annealing's first at each eps).
  void unmeasured() {
    previous_error_.reset();
    last_corrected_ = false;
    next_ = std::exchange(first_, false) && correction() != nullptr;
  }

  // Whether the sweep now starting is a corrected one (its row pass segmented).
  bool next() const { return next_; }

  // The segmented row pass of a corrected sweep.
  at::Tensor row_pass(const at::Tensor& g, double eps) { return correction_->row_pass(g, eps); }

  void finish(PotentialPair& potentials, double eps) { correction_->finish_sweep(potentials, eps); }

  // Takes OT(a, b)'s error measured at this sweep, before its update, and whether that update is
  // the corrected one (next() when the sweep started); decides the next sweep.
  // `budget`: the sweeps this eps still allows.
  void observe(double error, bool corrected_now, double tolerance, int budget, const at::Tensor& f,
               const at::Tensor& softmin, double eps) {
    if (!allowed_) return;
    const std::optional<double> previous = std::exchange(previous_error_, error);
    const bool was_corrected = std::exchange(last_corrected_, corrected_now);
    next_ = false;
    // The first error at an eps: a corrected sweep next where corrections paid at the last one.
    if (!previous) next_ = std::exchange(first_, false) && correction() != nullptr;
    if (!previous || !(*previous > 0) || !std::isfinite(error)) return;
    const double ratio = error / *previous;  // of the update before this sweep
    if (was_corrected) {
      // Against the plain rate at this eps; at an eps's first corrected sweep there is none yet.
      if (!plain_rate_) return;
      if (!(ratio < std::pow(*plain_rate_, 1.0 + overhead()))) {
        pause_ = interval_;
        interval_ *= 2;
        paid_ = false;
      } else {
        paid_ = true;
      }
      return;
    }
    plain_rate_ = ratio;
    if (corrected_now) return;
    if (pause_ > 0) {
      --pause_;
      return;
    }
    if (!(ratio > kFastRate && ratio < 1.0) || !(error > tolerance)) return;
    // A corrected sweep removes the share of the error that lies on clusters (measured); plain
    // sweeps at this rate would need log(1 - share) / log(rate) sweeps for that, at most the
    // sweeps still needed. It must save more than it costs (the clusters are made for the share).
    const double sweeps_left = std::min<double>(budget, std::log(tolerance / error) / std::log(ratio));
    if (!(sweeps_left > 1.0 + overhead()) || correction() == nullptr) return;
    const double share = std::min(correction_->clustered_share(f, softmin, eps), kLargestShare);
    const double saved = std::min(sweeps_left, std::log(1.0 - share) / std::log(ratio));
    next_ = saved > 1.0 + overhead();
  }

 private:
  ClusterCorrection* correction() {
    if (!correction_ && !tried_) {
      tried_ = true;
      correction_ = ClusterCorrection::make(a_, b_, p_, reducer_, shards_);
      // A sharded solve's ranks must take the same corrected sweeps (their collectives differ
      // from a plain sweep's): each clusters the same clouds alike, which they check here once.
      if (agree_) {
        const double mark = correction_ ? correction_->labels_checksum() : -1.0;
        std::vector<double> extremes{mark, -mark};
        agree_(extremes);  // the largest mark and minus the smallest
        if (!(extremes[0] == -extremes[1] && extremes[0] >= 0)) correction_.reset();
      }
      if (!correction_) allowed_ = false;
    }
    return correction_.get();
  }
  // A corrected sweep's cost beyond a plain one, in plain sweeps: its Newton solves, and its dense
  // pass where the loop's reducer skips pairs.
  double overhead() {
    if (!correction_) return 0.0;
    const double pairs = static_cast<double>(a_.points.size(0)) * static_cast<double>(a_.points.size(1)) *
                         static_cast<double>(b_.points.size(1));
    const double dense_sweep = 2.0 * pairs * (static_cast<double>(a_.points.size(2)) + 8.0);
    const std::optional<reduce::TruncationReport> truncation = reducer_.truncation();
    const double visited = truncation && truncation->visited_fraction > 0 ? truncation->visited_fraction : 1.0;
    return (1.0 + correction_->newton_work() / dense_sweep) / visited - 1.0;
  }

  const reduce::Reducer& reducer_;
  const Cloud& a_;
  const Cloud& b_;
  bool allowed_;
  std::optional<LoopSettings::RowShards> shards_;
  std::function<void(std::vector<double>&)> agree_;  // the ranks' maximum (sharded solves)
  int p_;
  bool tried_ = false;
  std::unique_ptr<ClusterCorrection> correction_;
  std::optional<double> previous_error_, plain_rate_;
  bool last_corrected_ = false, next_ = false, paid_ = false, first_ = false;
  int pause_ = 0, interval_ = 2;
  // A share of 1 would promise every sweep saved: rounding keeps it below.
  static constexpr double kLargestShare = 1.0 - 1e-6;
};

// Batched reads of the marginal errors on a device: the sweeps timed one by one first, the time a
// read costs beyond the sweep it waits for (a round trip to the host with the device idle while
// the host decides and launches again; about 50 us on a PCIe or NVLink host, to be measured on a
// GPU), the share of a sweep's time that may go to reads, and the longest interval (the sweeps a
// solve may run past its convergence before it knows).
constexpr int kTimedSweeps = 3;
constexpr double kReadSeconds = 50e-6;
constexpr double kReadShare = 0.1;
constexpr int kLongestReadInterval = 16;

// The sweeps between reads: `asked` when positive, else chosen so that reads cost at most
// kReadShare of the sweeps' time, from the measured seconds per sweep (reads included).
int read_interval(int asked, double sweep_seconds) {
  if (asked > 0) return asked;
  const double wanted = kReadSeconds / (kReadShare * std::max(sweep_seconds, 1e-9));
  return static_cast<int>(std::clamp(std::ceil(wanted), 1.0, static_cast<double>(kLongestReadInterval)));
}

}  // namespace

double damping(double eps, const std::optional<double>& rho) {
  return rho ? 1.0 / (1.0 + eps / *rho) : 1.0;
}

LoopReport sinkhorn_loop(const reduce::Reducer& reducer, const Cloud& a, const Cloud& b,
                         const LoopSettings& settings, DualState& state) {
  const std::optional<double>& rho = settings.rho;
  const double final_eps = settings.epsilons.back();
  const bool fixed = settings.fixed_iterations.has_value();

  // OT(a, b) is problems[0] when this process solves it (`cross`); a rank of a problem-split
  // solve may hold only the symmetric ones.
  const bool cross = settings.solved[0];
  std::vector<Problem> problems;
  if (cross) problems.push_back({&a, &b, &state.ab, false});
  if (settings.solve_symmetric && settings.solved[1]) problems.push_back({&a, &a, &state.aa, !fixed});
  if (settings.solve_symmetric && settings.solved[2]) problems.push_back({&b, &b, &state.bb, !fixed});
  SINKHORN_INTERNAL_CHECK(!problems.empty(), "a solve with no problem to solve");
  // Problems that have converged at the final eps stop there (frozen): the three problems are
  // independent, and a converged one would only confirm its error every sweep, at up to half of
  // the sweep's reductions, while OT(a, b) (the slowest, its plan farthest from diagonal) goes on.
  std::vector<char> frozen(problems.size(), false);
  // Whether OT(a, b) is solved here and still sweeping.
  const auto cross_active = [&] { return cross && !frozen[0]; };
  // The problems' softmins are independent: one Reducer::softmins call, one message per sweep for
  // a sharded solve instead of one per problem.
  // OT(a, b)'s corrected sweeps, when the loop crawls (coarse_correction.h).
  CorrectionTrigger trigger(settings, reducer, a, b);
  // With `segmented`, OT(a, b)'s softmin is the row pass of a corrected sweep.
  const auto softmins_of_g = [&](double eps, std::vector<at::Tensor> softmins = {}, bool segmented = false) {
    softmins.resize(problems.size());
    std::vector<reduce::SoftminRequest> requests;
    std::vector<size_t> asked;
    for (size_t k = 0; k < problems.size(); ++k) {
      if (frozen[k]) continue;
      if (k == 0 && segmented) {
        softmins[0] = trigger.row_pass(problems[0].potentials->g, eps);
        continue;
      }
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
  // With `corrected`, OT(a, b) completes the corrected sweep its segmented softmin began.
  const auto update = [&](const std::vector<at::Tensor>& softmins, double eps, bool averaged, double omega,
                          bool corrected = false) {
    const double lambda = damping(eps, rho);
    for (size_t k = 0; k < problems.size(); ++k) {
      if (frozen[k]) continue;
      if (k == 0 && corrected) {
        c10::NoGradGuard no_grad;
        trigger.finish(*problems[0].potentials, eps);
      } else if (problems[k].symmetric) {
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
    trigger.new_eps();
    for (int sweep = 0; sweep < kSweepsPerScale; ++sweep) {
      util::throw_if_interrupted();
      const bool corrected = cross_active() && trigger.next();
      softmins = softmins_of_g(eps, std::move(softmins), corrected);
      if (sweep > 0) {
        update_marginal_errors(problems, softmins, eps, settings, frozen, errors);
        // Before freezing: a corrected update that ends the eps has paid too.
        if (cross_active()) {
          trigger.observe(errors[0], corrected, kAnnealingTolerance, kSweepsPerScale - sweep, state.ab.f, softmins[0],
                          eps);
        }
        for (size_t q = 0; q < problems.size(); ++q) frozen[q] = frozen[q] || errors[q] < kAnnealingTolerance;
        if (std::all_of(frozen.begin(), frozen.end(), [](char done) { return done; })) break;
        if (cross_active()) {
          averaged = averaged && errors[0] < kFastRate * previous_error;
          previous_error = errors[0];
        }
      }
      if (sweep == 0) trigger.unmeasured();
      update(softmins, eps, averaged, 1.0, corrected && cross_active());
      report.coarse_corrections += corrected && cross_active() ? 1 : 0;
      ++report.iterations;
    }
  }
  std::fill(frozen.begin(), frozen.end(), false);
  SchemeSelector scheme;
  if (settings.alternating_plain_rate) scheme.start_alternating(*settings.alternating_plain_rate);
  trigger.new_eps();
  const double lambda = damping(final_eps, rho);
  // Whether the update before this sweep was a corrected one (the scheme measures plain ones).
  bool previous_corrected = false;
  // `softmins` already hold every problem's softmin of its current g (the final check below).
  bool softmins_current = false;
  // Batched reads (settings.read_errors_every, device solves): the first kTimedSweeps sweeps are
  // read one by one and timed, then the errors of `interval` sweeps wait on the device and are read
  // at once, their decisions replayed in order; the sweeps in between keep the last decisions.
  const int read_every =
      settings.read_errors_every == 1 && a.points.is_cuda() && cuda_batched_reads_enabled() ? 0 : settings.read_errors_every;
  const bool batched_reads = read_every != 1 && !settings.agree_on_errors;
  int interval = 1;
  std::vector<at::Tensor> pending;  // errors of sweeps not read yet, oldest first
  auto timed_from = std::chrono::steady_clock::now();
  int timed_sweeps = 0;
  for (int sweep = 0;;) {
    for (;; ++sweep) {
      util::throw_if_interrupted();
      const bool corrected = !softmins_current && interval == 1 && cross_active() && trigger.next();
      if (!softmins_current) softmins = softmins_of_g(final_eps, std::move(softmins), corrected);
      if (interval > 1 && !softmins_current) {
        pending.push_back(marginal_errors_on_device(problems, softmins, final_eps, settings, frozen));
        if (static_cast<int>(pending.size()) < interval && sweep < settings.max_iterations) {
          update(softmins, final_eps, scheme.averaged(), scheme.omega());
          ++report.iterations;
          continue;
        }
        // One wait for the device, then the decisions of every sweep read, in order.
        const at::Tensor read = at::stack(pending).to(at::kCPU).contiguous();
        pending.clear();
        ++report.error_reads;
        const double* values = read.data_ptr<double>();
        bool stop = sweep == settings.max_iterations;
        for (int64_t s = 0; s < read.size(0) && !stop; ++s) {
          for (size_t k = 0; k < problems.size(); ++k) {
            const double value = values[s * read.size(1) + static_cast<int64_t>(k)];
            if (!frozen[k]) errors[k] = value;
          }
          report.marginal_error = largest_of(errors, 0, errors.size());
          report.converged = report.marginal_error <= settings.tolerance;
          if (report.converged) {
            stop = true;  // the sweeps since then only lowered it: the final check below measures it
            break;
          }
          for (size_t k = 0; k < problems.size(); ++k) frozen[k] = errors[k] <= settings.tolerance;
          if (cross_active()) scheme.observe(errors[0]);
        }
        if (stop) break;
        update(softmins, final_eps, scheme.averaged(), scheme.omega());
        ++report.iterations;
        previous_corrected = false;
        continue;
      }
      softmins_current = false;
      update_marginal_errors(problems, softmins, final_eps, settings, frozen, errors);
      ++report.error_reads;
      if (batched_reads && ++timed_sweeps == kTimedSweeps) {
        interval = read_interval(read_every, std::chrono::duration<double>(
                                                                 std::chrono::steady_clock::now() - timed_from)
                                                                     .count() /
                                                                 kTimedSweeps);
      }
      report.marginal_error = largest_of(errors, 0, errors.size());
      report.converged = report.marginal_error <= settings.tolerance;
      if (report.converged || sweep == settings.max_iterations) break;
      for (size_t k = 0; k < problems.size(); ++k) frozen[k] = errors[k] <= settings.tolerance;
      // The scheme watches OT(a, b) alone (problem 0), after its own updates.
      if (cross_active()) {
        trigger.observe(errors[0], corrected, settings.tolerance, settings.max_iterations - sweep, state.ab.f,
                        softmins[0], final_eps);
        if (!previous_corrected) scheme.observe(errors[0]);
      }
      previous_corrected = corrected && cross_active();
      update(softmins, final_eps, scheme.averaged(), scheme.omega(), previous_corrected);
      report.coarse_corrections += previous_corrected ? 1 : 0;
      ++report.iterations;
    }
    // Last extrapolations. g = lambda T(f) is the best g for f (averaged and relaxed iterates
    // leave g off it); for the symmetric potentials f = lambda softmin(f) is the exact update.
    if (cross) state.ab.g = scaled(lambda, softmin_over(reducer, b, a, state.ab.f, final_eps));
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
    ++report.error_reads;
    report.marginal_error = largest_of(errors, 0, errors.size());
    report.converged = report.marginal_error <= settings.tolerance;
    if (report.converged || sweep == settings.max_iterations) break;
    softmins_current = true;
  }
  report.alternating_plain_rate = scheme.alternating_plain_rate();
  return report;
}

}  // namespace sinkhorn::solver
