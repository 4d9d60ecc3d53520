// The Sinkhorn loop, written once over the Reducer interface: it never knows which backend runs.
//
// Conventions (docs/numerics.md): potentials f on the source cloud, g on the target, updated by
//   f_i = lambda * softmin_eps(C_xy, log b + g/eps)_i,  g_j = lambda * softmin_eps(C_yx, log a + f/eps)_j
// with lambda = 1 / (1 + eps/rho) (1 when balanced).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <functional>
#include <optional>
#include <vector>

#include "reduce/reducer.h"

namespace sinkhorn::solver {

/// A weighted point cloud in batched layout.
struct Cloud {
  at::Tensor points;       ///< (B, N, D)
  at::Tensor weights;      ///< (B, N), nonnegative, positive sum per batch entry
  at::Tensor log_weights;  ///< (B, N), log(weights); -inf where a weight is 0
};

/// Dual potentials of one transport problem: f (B, N) on the source, g (B, M) on the target.
struct PotentialPair {
  at::Tensor f;
  at::Tensor g;
};

/// Potentials of OT_eps(a, b) and, when the symmetric problems are solved, of OT_eps(a, a) and
/// OT_eps(b, b). In annealing mode the symmetric problems keep one potential: aa.g is aa.f.
struct DualState {
  PotentialPair ab;
  PotentialPair aa;
  PotentialPair bb;
};

struct LoopSettings {
  /// eps values, largest first; the last is the target eps = blur^p.
  std::vector<double> epsilons;
  /// Marginal penalty rho = reach^p; unset for balanced transport.
  std::optional<double> rho;
  /// Stop at the final eps once every plan's relative L1 marginal error is at most this.
  double tolerance = 1e-4;
  /// Updates allowed at the final eps.
  int max_iterations = 1000;
  /// The paper's mode: exactly this many alternating updates from zero at epsilons.back().
  std::optional<int> fixed_iterations;
  /// Also solve OT_eps(a, a) and OT_eps(b, b) (needed by the debiased losses).
  bool solve_symmetric = true;
  /// Which of OT(a, b), OT(a, a), OT(b, b) this process solves (the last two only with
  /// solve_symmetric); the others' potentials are left as they are. A problem-split solve
  /// (api::ProblemSplit) hands them to different ranks: each problem freezes on its own errors, so
  /// it takes the sweeps it takes in a joint solve (up to a symmetric problem's second
  /// extrapolation when OT(a, b)'s final check fails, and a shared max_iterations).
  std::array<bool, 3> solved{true, true, true};
  /// Start annealing from the potentials already in the state (coarse_to_fine_start), not from zero.
  bool warm_start = false;
  /// At the final eps, OT(a, b) takes alternating updates from the first sweep, over-relaxed from
  /// this plain contraction rate (SchemeSelector::start_alternating) instead of trying averaged
  /// ones first: a coarse solve of the same clouds found them the faster (LoopReport below).
  std::optional<double> alternating_plain_rate;
  /// The cost's exponent p, to let the loop take corrected sweeps of OT(a, b) on clusters of
  /// points when it crawls, at any eps (coarse_correction.h: balanced problems, any dimension and
  /// device; sharded only with row_shards). Unset: never. Its shifts are constants to autograd:
  /// leave it unset for unrolled gradients.
  std::optional<int> coarse_correction_p;
  /// Sharded solves: the rows of each cloud this rank reduces, and how a per-row result of them
  /// becomes every rank's rows (in rank order, along dim 0), so that corrected sweeps split their
  /// segmented passes over the ranks and gather N x L numbers per half. Unset: one process.
  struct RowShards {
    int64_t source_begin = 0, source_rows = 0;  ///< a's rows here
    int64_t target_begin = 0, target_rows = 0;  ///< b's rows here
    /// own (rows here, L) -> (all rows, L); `source` says which cloud's rows.
    std::function<at::Tensor(const at::Tensor& own, bool source)> gather;
  };
  std::optional<RowShards> row_shards;
  /// At the final eps, how often the marginal errors are read on the host: 1, every sweep (the
  /// CPU's way, exact decisions); k > 1, every k sweeps; 0, every k sweeps with k chosen from the
  /// first sweeps' measured time so that reads cost at most a tenth of the sweeps (up to 16). The
  /// errors of the sweeps between reads wait on the device and their decisions (convergence,
  /// freezing, the scheme's rates) are replayed at the read, so they act up to k - 1 sweeps late:
  /// a solve may run that many sweeps past convergence, and its final check is exact as ever. For
  /// device solves, where each read stops the device (docs/numerics.md, "The loop"). Corrected
  /// sweeps and sharded solves read every sweep.
  int read_errors_every = 1;
  /// Sharded solves: makes the ranks agree on each problem's marginal errors (their maximum over
  /// the ranks) before the loop decides anything from them, so that every rank stops, freezes
  /// and changes scheme at the same sweep and runs the same collectives. Unset: one process.
  std::function<void(std::vector<double>&)> agree_on_errors;
};

struct LoopReport {
  /// Update sweeps run, annealing included.
  int iterations = 0;
  /// Largest relative L1 marginal error over the plans and batch entries of the returned
  /// potentials, measured after the final extrapolations g <- lambda T(f), f_aa <- lambda softmin(f_aa)
  /// (one more reduction per problem): the plans the value comes from.
  double marginal_error = 0.0;
  /// marginal_error <= tolerance.
  bool converged = false;
  /// Corrected sweeps of OT(a, b), at every eps (coarse_correction.h).
  int coarse_corrections = 0;
  /// Reads of the marginal errors on the host at the final eps, its final checks included: one per
  /// sweep, or one per read_errors_every sweeps (each a wait for the device in a device solve).
  int error_reads = 0;
  /// Set when OT(a, b) ended on alternating updates: the plain rate they were chosen on.
  std::optional<double> alternating_plain_rate;
};

/// lambda = 1 / (1 + eps / rho), or 1 when rho is unset.
double damping(double eps, const std::optional<double>& rho);

/// Runs the Sinkhorn iterations of `settings` and returns the final potentials in `state`.
/// Differentiable (unrolled) when the reducer is and autograd is on.
///
/// Annealing mode: at each eps of the schedule, averaged sweeps until every plan's marginal error
/// is under 1e-2 (at most 50; GeomLoss takes one), then at the final eps OT(a, b) takes averaged
/// or over-relaxed alternating updates, whichever converges faster (SchemeSelector, driven by
/// OT(a, b)'s error alone, acceleration.h; alternating from the start when
/// settings.alternating_plain_rate says so), until every plan's error is under `tolerance` or
/// max_iterations; the symmetric problems take averaged updates f <- (f + lambda softmin(f)) / 2,
/// which converge at rate <= 1/2 (Feydy et al. 2019, section 3), and a last extrapolation
/// f <- lambda softmin(f).
LoopReport sinkhorn_loop(const reduce::Reducer& reducer, const Cloud& a, const Cloud& b,
                         const LoopSettings& settings, DualState& state);

}  // namespace sinkhorn::solver
