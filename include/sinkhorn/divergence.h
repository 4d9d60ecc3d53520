// sinkhorn::divergence: Sinkhorn losses and kernel MMDs between weighted point clouds, with
// gradients through LibTorch's autograd.
//
//   at::Tensor x = torch::randn({1000, 3}, torch::requires_grad());
//   at::Tensor y = torch::randn({2000, 3});
//   at::Tensor loss = sinkhorn::divergence(x, y);          // S_eps, p = 2, blur = 0.05
//   loss.backward();                                        // x.grad(): envelope gradient
//
// Shapes: x (N, D) with weights a (N), y (M, D) with weights b (M); or batched x (B, N, D),
// a (B, N), y (B, M, D), b (B, M), giving one value per batch entry. Undefined weights mean
// uniform (1/N). float32 and float64 are computed in their own precision (float16 and bfloat16 in
// float32); the result has the inputs' dtype and device.
#pragma once

#include <ATen/core/Tensor.h>

#include "sinkhorn/error.h"
#include "sinkhorn/options.h"

namespace sinkhorn {

/// How a solve went. For the kernel MMDs, iterations and schedule_length are 0.
struct Diagnostics {
  /// Sinkhorn update sweeps run, eps-annealing included.
  int iterations = 0;
  /// Largest relative L1 marginal error (sum_i |pi 1 - a|_i / sum a, and the same for the
  /// columns) of the transport plans the value comes from, over the plans and batch entries; for
  /// backend "limit" a bound on it (docs/numerics.md, "What a solve reports").
  double marginal_error = 0.0;
  /// Number of eps values visited: the annealing schedule's length (1 in the paper's fixed-L mode).
  int schedule_length = 0;
  /// marginal_error <= the effective tolerance.
  bool converged = true;
  /// Stopping tolerance actually used: options.tolerance, divided by eps / max C when eps is above
  /// the clouds' largest cost max C, raised to what the dtype can resolve (docs/numerics.md).
  double tolerance = 0.0;
  /// The final eps = blur^p.
  double epsilon = 0.0;
  /// The diameter eps-scaling started from.
  double diameter = 0.0;
  /// Backend that ran the reductions ("tensorized", "reference", ...); "limit" when eps is beyond
  /// 1e7 times the clouds' largest cost and the value is the eps -> infinity limit.
  std::string backend;
  /// Processes that shared the solve (sinkhorn/distributed.h); 1 for a solve in one process.
  int world_size = 1;
  /// Multiscale backend: pairs its truncated reductions visited over those dense ones would (1
  /// for the other backends), how often it recomputed the kept blocks, and the seconds that took.
  double visited_pairs_fraction = 1.0;
  int truncation_rebuilds = 0;
  double truncation_seconds = 0.0;
  /// Sweeps of OT(a, b) that were corrected on clusters of points (SinkhornOptions::coarse_correction).
  int corrected_sweeps = 0;
};

/// Dual potentials, detached, in the inputs' dtype, shapes like the weights ((N) or (B, N)).
/// Undefined where the loss does not need them (the symmetric ones for ot_eps; all for the MMDs).
struct Potentials {
  at::Tensor f_ab;  ///< on x, for OT_eps(a, b)
  at::Tensor g_ab;  ///< on y, for OT_eps(a, b)
  at::Tensor f_aa;  ///< on x, for OT_eps(a, a)
  at::Tensor g_bb;  ///< on y, for OT_eps(b, b)
};

struct DivergenceResult {
  /// The loss: a scalar, or (B) for batched inputs; differentiable.
  at::Tensor value;
  Potentials potentials;
  Diagnostics diagnostics;
};

/// The loss of `options` between uniform clouds x and y.
at::Tensor divergence(const at::Tensor& x, const at::Tensor& y, const SinkhornOptions& options = {});

/// The loss between weighted clouds (a, x) and (b, y); undefined a or b means uniform weights.
at::Tensor divergence(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                      const at::Tensor& y, const SinkhornOptions& options = {});

/// The same, with the potentials and the solver's diagnostics.
DivergenceResult divergence_with_details(const at::Tensor& a, const at::Tensor& x,
                                         const at::Tensor& b, const at::Tensor& y,
                                         const SinkhornOptions& options = {});

/// A loss object in the manner of GeomLoss's SamplesLoss: options fixed once, called many times.
class SamplesLoss {
 public:
  explicit SamplesLoss(SinkhornOptions options = {});
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& y) const;
  at::Tensor operator()(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                        const at::Tensor& y) const;
  const SinkhornOptions& options() const { return options_; }

 private:
  SinkhornOptions options_;
};

}  // namespace sinkhorn
