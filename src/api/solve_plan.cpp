#include "api/solve_plan.h"

#include <algorithm>
#include <cmath>

#include "reduce/reducer.h"
#include "solver/epsilon_schedule.h"
#include "solver/loss_formulas.h"
#include "solver/multiscale.h"
#include "util/check.h"

namespace sinkhorn::api {

SolvePlan plan_solve(const SinkhornOptions& options, const ProblemShape& shape) {
  SolvePlan plan;
  if (options.loss == Loss::ot) {
    plan.path = SolvePath::exact_ot;
    return plan;
  }
  if (!is_sinkhorn_loss(options.loss)) {
    plan.path = SolvePath::kernel_mmd;
    plan.backend = Backend::tensorized;
    return plan;
  }
  plan.solve_symmetric = solver::needs_symmetric_problems(options.loss);
  // The solve runs on clouds of diameter ~1 (an exact power-of-two rescaling), in the dtype and
  // to the marginal error that the ratio eps / max C asks for (solver/scale_plan.h).
  plan.scale = solver::plan_scale(options, shape.diameter, shape.dtype);
  if (plan.scale.limit) {
    plan.path = SolvePath::limit;
    return plan;
  }
  const double blur = options.blur / plan.scale.length;
  plan.epsilons = options.iterations ? std::vector<double>{plan.scale.eps}
                                     : solver::epsilon_schedule(options.p, plan.scale.schedule_diameter, blur,
                                                                options.scaling);
  // envelope for the variational losses, unrolled for primal, whose value is not a maximum over
  // potentials (docs/numerics.md, "Gradients").
  plan.gradient = options.gradient != GradientMode::automatic ? options.gradient
                  : options.loss == Loss::primal              ? GradientMode::unrolled
                                                              : GradientMode::envelope;
  plan.unrolled = plan.gradient == GradientMode::unrolled && shape.gradients_wanted;
  // Unrolled gradients differentiate every sweep: a correction would enter them as a constant.
  plan.coarse_correction = options.coarse_correction && !plan.unrolled;
  const bool sharded = shape.world_size > 1;
  SINKHORN_CHECK_ARG(!(sharded && options.backend == Backend::multiscale), "backend",
                     "multiscale runs in one process: in a sharded solve use online, tensorized or auto");
  // A sharded solve reduces this rank's rows against all columns, and decides the backend from
  // that share; the multiscale backend's truncation is one process's.
  plan.backend = reduce::resolve_backend(options.backend, shape.batch, shape.own_rows, shape.m, shape.dimension,
                                         shape.device, plan.unrolled);
  if (sharded && plan.backend == Backend::multiscale) plan.backend = Backend::online;
  // Only the tensorized backend records its reductions for autograd.
  SINKHORN_CHECK_ARG(!plan.unrolled || plan.backend == Backend::tensorized, "backend",
                     to_string(plan.backend)
                         << " cannot differentiate through its reductions, which unrolled gradients need ("
                         << (options.gradient == GradientMode::unrolled ? "gradient unrolled"
                                                                         : "the primal loss's gradient is unrolled")
                         << "): use backend tensorized or auto, or ask for no gradient");
  if (plan.backend == Backend::multiscale) {
    plan.refine_cell = !options.cluster_scale;
    plan.cell = options.cluster_scale
                    ? *options.cluster_scale / plan.scale.length
                    : solver::default_cluster_scale(shape.diameter / plan.scale.length, blur, shape.dimension,
                                                    std::max(shape.n, shape.m));
  }
  if (plan.backend == Backend::tensorized) {
    // With the symmetric problems the largest matrix is max(N, M)^2.
    plan.dense_rows = plan.solve_symmetric ? std::max(shape.own_rows, shape.m) : shape.own_rows;
    plan.dense_columns = plan.solve_symmetric ? std::max(shape.own_rows, shape.m) : shape.m;
  }
  return plan;
}

double SolvePlan::dense_bytes(int64_t batch) const {
  return kDenseMatrices * static_cast<double>(batch) * static_cast<double>(dense_rows) * static_cast<double>(dense_columns) *
         static_cast<double>(at::elementSize(scale.compute_dtype));
}

}  // namespace sinkhorn::api
