// Every decision of a solve, made before it runs (DESIGN.md section 3, "A solve plan"; FAISS's
// prepared state): a pure function of the problem's shapes, dtype, device, the options and the
// world, unit-tested without a solve (tests/api/solve_plan_test.cpp). `divergence()` is
// plan_solve, then the run (api/divergence.cpp), then the result.
#pragma once

#include <ATen/core/ScalarType.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sinkhorn/options.h"
#include "solver/scale_plan.h"

namespace sinkhorn::api {

/// What a plan knows of the inputs: no values, only their sizes and where they live.
struct ProblemShape {
  int64_t batch = 1;
  int64_t n = 0;         ///< rows of x (the union of the ranks' blocks in a sharded solve)
  int64_t m = 0;         ///< rows of y
  int64_t dimension = 0;
  /// Rows of x this process reduces over: n in one process, its block in a sharded solve.
  int64_t own_rows = 0;
  at::ScalarType dtype = at::kFloat;  ///< float32 or float64 (half types arrive promoted)
  at::Device device = at::kCPU;
  double diameter = 0;  ///< bounding-box diagonal of both clouds
  int world_size = 1;
  bool gradients_wanted = false;  ///< some input requires a gradient
};

/// How the value is computed.
enum class SolvePath {
  exact_ot,    ///< network simplex (loss ot)
  kernel_mmd,  ///< a dense kernel MMD (energy, gaussian, laplacian, gaussian_mixture)
  limit,       ///< the eps -> infinity closed form (solver/epsilon_limit.h)
  sinkhorn,    ///< Sinkhorn iterations over a reducer
};

struct SolvePlan {
  SolvePath path = SolvePath::sinkhorn;
  /// The rescaling, normalised eps and rho, stopping tolerance and compute dtype (Sinkhorn and
  /// limit paths).
  solver::ScalePlan scale;
  /// envelope or unrolled; `unrolled` is true when gradients go through the iterations (the mode
  /// is unrolled and some input wants a gradient).
  GradientMode gradient = GradientMode::envelope;
  bool unrolled = false;
  /// The backend that runs the reductions (resolved from auto; a sharded solve's multiscale is
  /// online: the truncation is one process's).
  Backend backend = Backend::online;
  /// The normalised eps schedule, largest first (one value in the paper's fixed-L mode).
  std::vector<double> epsilons;
  /// OT(a, a) and OT(b, b) are solved too (the debiased losses).
  bool solve_symmetric = true;
  /// The loop may correct OT(a, b) on clusters (coarse_correction, and not unrolled).
  bool coarse_correction = false;
  /// Multiscale: the normalised grid cell; `refine_cell` when it is the default, which the run
  /// then halves where the points crowd few cells (solver::refined_cluster_scale).
  double cell = 0;
  bool refine_cell = false;
  /// The tensorized backend's largest dense matrices, rows x columns per batch entry (0 for the
  /// other backends): its reductions hold about kDenseMatrices of them at once (costs, exponents,
  /// log-sum-exp temporaries), which the run checks against the machine's memory before allocating.
  static constexpr double kDenseMatrices = 3;
  int64_t dense_rows = 0, dense_columns = 0;
  /// kDenseMatrices such matrices in the compute dtype: the memory the tensorized reductions hold.
  double dense_bytes(int64_t batch) const;
};

/// The plan of a solve of `options` over clouds of `shape`. Throws sinkhorn::Error naming the
/// option for a refused combination (multiscale in a sharded solve, scales out of range).
SolvePlan plan_solve(const SinkhornOptions& options, const ProblemShape& shape);

}  // namespace sinkhorn::api
