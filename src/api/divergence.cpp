// The public entry: checks inputs, sets up the solver, and attaches gradients.
//
// Gradients:
// - envelope: the solve runs without autograd inside EnvelopeFunction::forward, which computes
//   the exact gradients at convergence (solver/loss_formulas.h) when an input needs them;
//   backward only scales them by the incoming gradient. Memory O(N + M) beyond the reducer's.
// - unrolled: the solve runs with autograd on the tensorized reducer; LibTorch differentiates
//   through every iteration (Genevay et al. 2018, Algorithm 1).
#include "sinkhorn/divergence.h"

#include <torch/csrc/autograd/custom_function.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <utility>

#include "api/inputs.h"
#include "api/option_table.h"
#include "api/solve_plan.h"
#include "api/sharded_divergence.h"
#include "dist/sharded_autograd.h"
#include "dist/sharded_inputs.h"
#include "dist/sharded_reducer.h"
#include "reduce/reducer.h"
#include "reduce/cost_matrix.h"
#include "solver/epsilon_limit.h"
#include "solver/epsilon_schedule.h"
#include "solver/kernel_mmd.h"
#include "solver/loss_formulas.h"
#include "solver/multiscale.h"
#include "solver/scale_plan.h"
#include "solver/sinkhorn_loop.h"
#include "solver/exact_ot.h"
#include "util/check.h"

namespace sinkhorn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Everything a solve needs besides the clouds, and what it returns besides the value.
struct SolveContext {
  Loss loss = Loss::divergence;
  const reduce::Reducer* reducer = nullptr;
  solver::LoopSettings loop;
  solver::GradientsWanted gradients_wanted;
  int p = 2;
  // Multiscale backend: the grid cell of its clusters; 0 for the other backends.
  double multiscale_cell = 0;
  // A problem-split solve (api::ProblemSplit): joins the ranks' problems after the loop, and
  // reduces the envelope gradients of this rank's rows only.
  std::function<void(solver::DualState&, solver::LoopReport&)> join_problems;
  const reduce::Reducer* gradient_reducer = nullptr;
  // Outputs.
  solver::DualState state;
  solver::LoopReport report;
};

solver::Cloud make_cloud(const at::Tensor& points, const at::Tensor& weights) {
  return {points, weights, weights.log()};
}

// Runs the loop and returns the value, differentiable when autograd is on and the reducer is.
// The multiscale backend first solves the large eps on grid clusters (solver/multiscale.h).
at::Tensor solve(SolveContext& context, const solver::Cloud& a, const solver::Cloud& b) {
  solver::LoopSettings loop = context.loop;
  int coarse_sweeps = 0;
  if (context.multiscale_cell > 0) {
    // The coarse solve's clouds are grid clusters already: no correction on clusters of them.
    solver::LoopSettings coarse_loop = loop;
    coarse_loop.coarse_correction_p.reset();
    solver::CoarseStart start = solver::coarse_to_fine_start(a, b, coarse_loop, context.p,
                                                             context.multiscale_cell, context.state);
    loop.warm_start = start.epsilons.size() < context.loop.epsilons.size();
    loop.epsilons = std::move(start.epsilons);
    loop.alternating_plain_rate = start.alternating_plain_rate;
    coarse_sweeps = start.sweeps;
  }
  const bool any_problem = std::find(loop.solved.begin(), loop.solved.end(), true) != loop.solved.end();
  // From four ranks on, the ranks past the third own no problem: they only join.
  context.report = any_problem ? solver::sinkhorn_loop(*context.reducer, a, b, loop, context.state) : solver::LoopReport{};
  if (!any_problem) context.report.converged = true;
  if (context.join_problems) context.join_problems(context.state, context.report);
  context.report.iterations += coarse_sweeps;
  return solver::sinkhorn_loss_value(context.loss, *context.reducer, a, b, context.state,
                                     context.loop.epsilons.back(), context.loop.rho);
}

class EnvelopeFunction : public torch::autograd::Function<EnvelopeFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& x,
                            const at::Tensor& b, const at::Tensor& y, SolveContext* context) {
    const solver::Cloud cloud_a = make_cloud(x, a), cloud_b = make_cloud(y, b);
    at::Tensor value = solve(*context, cloud_a, cloud_b);
    const reduce::Reducer& reducer = context->gradient_reducer ? *context->gradient_reducer : *context->reducer;
    const solver::EnvelopeGradients gradients = solver::envelope_gradients(
        context->loss, reducer, cloud_a, cloud_b, context->state,
        context->loop.epsilons.back(), context->loop.rho, context->gradients_wanted);
    const std::pair<const char*, const at::Tensor*> saved[] = {
        {"a", &gradients.a}, {"x", &gradients.x}, {"b", &gradients.b}, {"y", &gradients.y}};
    for (const auto& [name, gradient] : saved) {
      if (gradient->defined()) ctx->saved_data[name] = *gradient;
    }
    return value;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    SINKHORN_CHECK(!at::GradMode::is_enabled(),
                   "double backward is not supported with envelope gradients (they are constants "
                   "at convergence); use gradient=unrolled for higher derivatives");
    const at::Tensor& grad_value = grad_outputs[0];  // (B)
    const auto scaled = [&](const char* name, int64_t trailing_dims) -> at::Tensor {
      if (ctx->saved_data.count(name) == 0) return {};
      const at::Tensor gradient = ctx->saved_data[name].toTensor();
      std::vector<int64_t> shape{grad_value.size(0)};
      shape.insert(shape.end(), trailing_dims, 1);
      return gradient * grad_value.reshape(shape);
    };
    return {scaled("a", 1), scaled("x", 2), scaled("b", 1), scaled("y", 2), at::Tensor()};
  }
};

// Back to the caller's layout and dtype: drop the batch axis of unbatched inputs.
at::Tensor to_caller_layout(const at::Tensor& tensor, const api::BatchedInputs& inputs) {
  if (!tensor.defined()) return tensor;
  const at::Tensor result = inputs.batched ? tensor : tensor.squeeze(0);
  return result.to(inputs.dtype);
}

bool requires_grad(const at::Tensor& tensor) {
  return at::GradMode::is_enabled() && tensor.defined() && tensor.requires_grad();
}

// This rank's entries of a potential of the union (caller's layout, rows last).
at::Tensor own_rows(const at::Tensor& potential, const std::vector<int64_t>& counts, int rank) {
  if (!potential.defined()) return potential;
  return potential.narrow(-1, dist::first_row(counts, rank), counts[rank]);
}

// After a problem-split loop: every rank's potentials of the problems it solved, and its report,
// in one all-gather (float64, exact for float32 potentials); each problem is taken from its owner.
// `like`: the solve's points (batch, dtype and device of the potentials).
void join_split_problems(const api::ProblemSplit& split, const at::Tensor& like, solver::DualState& state,
                         solver::LoopReport& report) {
  const dist::Group& group = *split.group;
  const int ranks = group.size();
  const int64_t batch = like.size(0);
  const int64_t n = std::accumulate(split.x_counts.begin(), split.x_counts.end(), int64_t{0});
  const int64_t m = std::accumulate(split.y_counts.begin(), split.y_counts.end(), int64_t{0});
  const at::TensorOptions options = like.options().dtype(at::kDouble);
  const auto packed = [&](const at::Tensor& potential, int64_t rows) {
    return potential.defined() ? potential.detach().to(at::kDouble).reshape({-1}) : at::zeros({batch * rows}, options);
  };
  const at::Tensor numbers = at::tensor({static_cast<double>(report.iterations),
                                         static_cast<double>(report.coarse_corrections), report.marginal_error,
                                         report.converged ? 1.0 : 0.0},
                                        at::kDouble)
                                 .to(options.device());
  const at::Tensor local = at::cat({packed(state.ab.f, n), packed(state.ab.g, m), packed(state.aa.f, n),
                                    packed(state.bb.f, m), numbers});
  const at::Tensor all = group.allgather_rows(local.unsqueeze(0), 0, std::vector<int64_t>(ranks, 1)).to(at::kCPU);
  const at::ScalarType dtype = like.scalar_type();
  const auto unpacked = [&](int problem, int64_t offset, int64_t rows) {
    return all[api::problem_owner(problem, ranks)]
        .narrow(0, offset, batch * rows)
        .reshape({batch, rows})
        .to(like.device(), dtype);
  };
  state.ab.f = unpacked(0, 0, n);
  state.ab.g = unpacked(0, batch * n, m);
  state.aa.f = state.aa.g = unpacked(1, batch * (n + m), n);
  state.bb.f = state.bb.g = unpacked(2, batch * (2 * n + m), m);
  const int64_t first_number = batch * (2 * n + 2 * m);
  const at::Tensor reports = all.narrow(1, first_number, 4).contiguous();
  const double* r = reports.data_ptr<double>();
  const double* cross = r + 4 * api::problem_owner(0, ranks);
  report.coarse_corrections = static_cast<int>(cross[1]);
  for (int rank = 0; rank < std::min(ranks, 3); ++rank) {
    const double* own = r + 4 * rank;
    report.iterations = std::max(report.iterations, static_cast<int>(own[0]));
    report.marginal_error = std::max(report.marginal_error, own[2]);
    report.converged = report.converged && own[3] != 0.0;
  }
}

// divergence_over (rows sharded over `group_ptr`) and divergence_split (`split`): at most one of them.
DivergenceResult divergence_impl(const at::Tensor& a_given, const at::Tensor& x_given, const at::Tensor& b_given,
                                 const at::Tensor& y_given, const SinkhornOptions& options,
                                 const std::shared_ptr<const dist::Group>& group_ptr, const api::ProblemSplit* split) {
  using namespace api;
  const dist::Group* group = group_ptr.get();
  validate(options);
  // A sharded solve works on the union of the ranks' blocks, which every rank now holds.
  dist::GatheredInputs gathered;
  if (group) {
    const auto check_block = [&] { prepare_inputs(a_given, x_given, b_given, y_given, options, /*whole_clouds=*/false); };
    gathered = dist::gather_inputs(a_given, x_given, b_given, y_given, check_block, options_fingerprint(options), *group);
  }
  const at::Tensor& a = group ? gathered.a : a_given;
  const at::Tensor& x = group ? gathered.x : x_given;
  const at::Tensor& b = group ? gathered.b : b_given;
  const at::Tensor& y = group ? gathered.y : y_given;
  const api::BatchedInputs inputs = api::prepare_inputs(a, x, b, y, options);
  DivergenceResult result;
  Diagnostics& diagnostics = result.diagnostics;
  diagnostics.world_size = group ? group->size() : (split ? split->group->size() : 1);

  ProblemShape shape;
  shape.batch = inputs.x.size(0);
  shape.n = inputs.x.size(1);
  shape.m = inputs.y.size(1);
  shape.dimension = inputs.x.size(2);
  shape.own_rows = group ? gathered.x_counts[group->rank()] : shape.n;
  shape.dtype = inputs.x.scalar_type();
  shape.device = inputs.x.device();
  shape.diameter = inputs.diameter;
  shape.world_size = diagnostics.world_size;
  const solver::GradientsWanted wanted{requires_grad(a), requires_grad(x), requires_grad(b), requires_grad(y)};
  shape.gradients_wanted = wanted.any();
  const SolvePlan plan = plan_solve(options, shape);

  if (plan.path == SolvePath::exact_ot) {
    diagnostics.backend = "network_simplex";
    diagnostics.epsilon = 0;
    diagnostics.diameter = inputs.diameter;
    result.value = to_caller_layout(solver::exact_ot_loss(inputs.a, inputs.x, inputs.b, inputs.y, options.p), inputs);
    return result;
  }
  if (plan.path == SolvePath::kernel_mmd) {
    diagnostics.backend = "tensorized";
    result.value = to_caller_layout(
        solver::kernel_mmd(options.loss, inputs.a, inputs.x, inputs.b, inputs.y, options.blur), inputs);
    return result;
  }

  const int p = options.p;
  diagnostics.diameter = options.diameter.value_or(inputs.diameter);
  diagnostics.epsilon = std::pow(options.blur, p);
  const solver::ScalePlan& scale = plan.scale;
  const double value_unit = std::pow(scale.length, p);  // exact: a power of two
  // Costs are translation invariant: centre both clouds on one point so that the tensorized
  // |x|^2 + |y|^2 - 2 x.y loses no precision to a far-away origin. The shift is a constant.
  const at::Tensor x_work = inputs.x.to(scale.compute_dtype), y_work = inputs.y.to(scale.compute_dtype);
  const at::Tensor a_work = inputs.a.to(scale.compute_dtype);
  at::Tensor b_work = inputs.b.to(scale.compute_dtype);
  if (!options.reach && scale.tolerance < options.tolerance) {
    // Balanced plans cannot have marginal errors below the masses' relative gap, and above the
    // cost scale the potentials drift by about eps times it per sweep: uniform float32 weights
    // (gap ~1e-7) would hold a tightened tolerance out of reach. b takes a's total mass there, a
    // constant factor to autograd.
    const at::Tensor mass_a = a_work.detach().sum(1, /*keepdim=*/true), mass_b = b_work.detach().sum(1, true);
    if (((mass_a - mass_b).abs() / mass_a).max().item<double>() > scale.tolerance / 4) {
      b_work = b_work * (mass_a / mass_b);
    }
  }
  const at::Tensor centre = 0.5 * (x_work.detach().mean(1, /*keepdim=*/true) + y_work.detach().mean(1, true));
  const auto normalised = [&](const at::Tensor& points) {
    return scale.length == 1 ? points - centre : (points - centre) / scale.length;
  };
  const at::Tensor x_centred = normalised(x_work);
  const at::Tensor y_centred = normalised(y_work);

  SolveContext context;
  context.loss = options.loss;
  context.loop.solve_symmetric = plan.solve_symmetric;
  // Far above the cost scale the value is the eps -> infinity limit (solver/epsilon_limit.h).
  // The potentials in the caller's units, layout and dtype, detached; this rank's rows of a sharded solve.
  const auto return_potentials = [&] {
    const auto potential = [&](const at::Tensor& t) {
      return to_caller_layout(t.defined() ? t.detach() * value_unit : t, inputs);
    };
    Potentials& potentials = result.potentials;
    potentials.f_ab = potential(context.state.ab.f);
    potentials.g_ab = potential(context.state.ab.g);
    if (context.loop.solve_symmetric) {
      potentials.f_aa = potential(context.state.aa.f);
      potentials.g_bb = potential(context.state.bb.f);
    }
    if (group) {
      potentials.f_ab = own_rows(potentials.f_ab, gathered.x_counts, group->rank());
      potentials.f_aa = own_rows(potentials.f_aa, gathered.x_counts, group->rank());
      potentials.g_ab = own_rows(potentials.g_ab, gathered.y_counts, group->rank());
      potentials.g_bb = own_rows(potentials.g_bb, gathered.y_counts, group->rank());
    }
  };
  if (plan.path == SolvePath::limit) {
    const at::Tensor value = solver::epsilon_limit(options.loss, p, make_cloud(x_centred, a_work),
                                                   make_cloud(y_centred, b_work), scale.eps, context.state);
    result.value = to_caller_layout(value * value_unit, inputs);
    return_potentials();
    diagnostics.backend = "limit";
    diagnostics.marginal_error = solver::epsilon_limit_marginal_error(scale.max_cost, scale.eps);
    diagnostics.tolerance = scale.tolerance;
    diagnostics.converged = diagnostics.marginal_error <= scale.tolerance;
    return result;
  }
  context.loop.epsilons = plan.epsilons;
  context.loop.rho = scale.rho;
  context.loop.tolerance = scale.tolerance;
  context.loop.max_iterations = options.max_iterations;
  context.loop.fixed_iterations = options.iterations;
  if (plan.coarse_correction) context.loop.coarse_correction_p = p;

  const bool unrolled = plan.unrolled;
  const Backend resolved = plan.backend;
  at::Tensor x_own = x_centred;
  if (group) {
    x_own = x_centred.narrow(1, dist::first_row(gathered.x_counts, group->rank()), gathered.x_counts[group->rank()]);
  }
  // The multiscale backend's row clusters: finer than its columns' where they stay crowded
  // (solver/multiscale.h); a cell the caller set is kept for both.
  double row_cell = 0;
  if (resolved == Backend::multiscale) {
    context.multiscale_cell = plan.refine_cell
                                  ? solver::refined_cluster_scale(plan.cell, x_centred.detach(), y_centred.detach())
                                  : plan.cell;
    if (plan.refine_cell) row_cell = solver::refined_row_scale(context.multiscale_cell, x_centred.detach(), y_centred.detach());
  }
  if (resolved == Backend::tensorized) {
    reduce::check_dense_fits(shape.batch, plan.dense_rows, plan.dense_columns, x_centred.element_size(),
                             SolvePlan::kDenseMatrices,
                             x_centred.device(), "backend",
                             std::string(unrolled ? "tensorized (unrolled gradients need it)" : "tensorized"),
                             unrolled ? "use gradient envelope, which runs in linear memory"
                                      : "use backend online (linear memory) or multiscale (D <= 3)");
  }
  context.p = p;
  std::unique_ptr<reduce::Reducer> reducer =
      reduce::make_reducer(resolved, p, x_own, y_centred, context.multiscale_cell, row_cell);
  // The points the solve reduces over. Unrolled through a sharded solve, they enter only this
  // rank's reductions, so their adjoint is summed over the ranks (dist/sharded_autograd.h).
  at::Tensor x_solved = x_centred, y_solved = y_centred;
  if (group) {
    if (unrolled) {
      x_solved = dist::sum_over_ranks_in_backward(x_centred, group_ptr);
      y_solved = dist::sum_over_ranks_in_backward(y_centred, group_ptr);
    }
    std::vector<dist::Shard> shards{dist::make_shard(x_solved, gathered.x_counts, group->rank()),
                                    dist::make_shard(y_solved, gathered.y_counts, group->rank())};
    reducer = std::make_unique<dist::ShardedReducer>(std::move(reducer), group_ptr, std::move(shards));
    const at::Device device = x_centred.device();
    context.loop.agree_on_errors = [group, device](std::vector<double>& errors) {
      group->allreduce_max(errors, device);
    };
    // Corrected sweeps: each rank sums its own rows per cluster, the ranks gather them.
    solver::LoopSettings::RowShards row_shards;
    const int rank = group->rank();
    row_shards.source_begin = dist::first_row(gathered.x_counts, rank);
    row_shards.source_rows = gathered.x_counts[rank];
    row_shards.target_begin = dist::first_row(gathered.y_counts, rank);
    row_shards.target_rows = gathered.y_counts[rank];
    row_shards.gather = [group, x_counts = gathered.x_counts, y_counts = gathered.y_counts](const at::Tensor& own,
                                                                                           bool source) {
      return group->allgather_rows(own, 0, source ? x_counts : y_counts);
    };
    context.loop.row_shards = std::move(row_shards);
  }
  // A problem split where the solve allows it: the debiased losses' independent problems, envelope
  // gradients (unrolled ones would differentiate through another rank's solve), and not the
  // multiscale backend (its coarse start solves every problem). Otherwise every rank solves whole.
  std::unique_ptr<reduce::Reducer> gradient_reducer;
  if (split && split->group->size() > 1 && plan.solve_symmetric && !unrolled && resolved != Backend::multiscale) {
    const int rank = split->group->rank(), ranks = split->group->size();
    for (int k = 0; k < 3; ++k) context.loop.solved[k] = problem_owner(k, ranks) == rank;
    context.join_problems = [split, like = x_centred](solver::DualState& state, solver::LoopReport& report) {
      join_split_problems(*split, like, state, report);
    };
    std::vector<dist::Shard> shards{dist::make_shard(x_centred, split->x_counts, rank),
                                    dist::make_shard(y_centred, split->y_counts, rank)};
    gradient_reducer = std::make_unique<dist::ShardedReducer>(
        reduce::make_reducer(resolved, p, x_centred, y_centred, context.multiscale_cell), split->group,
        std::move(shards));
    context.gradient_reducer = gradient_reducer.get();
  }
  context.reducer = reducer.get();
  at::Tensor value;
  if (!wanted.any()) {
    c10::NoGradGuard no_grad;
    value = solve(context, make_cloud(x_centred, a_work), make_cloud(y_centred, b_work));
  } else if (unrolled) {
    SINKHORN_INTERNAL_CHECK(reducer->differentiable(), "unrolled gradients through backend " << reducer->name());
    value = solve(context, make_cloud(x_solved, a_work), make_cloud(y_solved, b_work));
  } else {
    context.gradients_wanted = wanted;
    value = EnvelopeFunction::apply(a_work, x_centred, b_work, y_centred, &context);
  }

  result.value = to_caller_layout(value_unit == 1 ? value : value * value_unit, inputs);
  return_potentials();
  diagnostics.iterations = context.report.iterations;
  diagnostics.corrected_sweeps = context.report.coarse_corrections;
  diagnostics.marginal_error = context.report.marginal_error;
  diagnostics.converged = context.report.converged;
  diagnostics.tolerance = context.loop.tolerance;
  diagnostics.schedule_length = static_cast<int>(context.loop.epsilons.size());
  diagnostics.backend = reducer->name();
  if (const auto truncation = reducer->truncation()) {
    diagnostics.visited_pairs_fraction = truncation->visited_fraction;
    diagnostics.truncation_rebuilds = truncation->rebuilds;
    diagnostics.truncation_seconds = truncation->rebuild_seconds;
  }
  return result;
}

}  // namespace

namespace api {

DivergenceResult divergence_over(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                                 const SinkhornOptions& options, const std::shared_ptr<const dist::Group>& group) {
  return divergence_impl(a, x, b, y, options, group, nullptr);
}

DivergenceResult divergence_split(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                                  const SinkhornOptions& options, const ProblemSplit& split) {
  SINKHORN_INTERNAL_CHECK(split.group, "a problem split needs a group");
  return divergence_impl(a, x, b, y, options, {}, &split);
}

}  // namespace api

DivergenceResult divergence_with_details(const at::Tensor& a, const at::Tensor& x,
                                         const at::Tensor& b, const at::Tensor& y,
                                         const SinkhornOptions& options) {
  return api::divergence_over(a, x, b, y, options, {});
}

at::Tensor divergence(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                      const at::Tensor& y, const SinkhornOptions& options) {
  return divergence_with_details(a, x, b, y, options).value;
}

at::Tensor divergence(const at::Tensor& x, const at::Tensor& y, const SinkhornOptions& options) {
  return divergence_with_details(at::Tensor(), x, at::Tensor(), y, options).value;
}

SamplesLoss::SamplesLoss(SinkhornOptions options) : options_(std::move(options)) { validate(options_); }

at::Tensor SamplesLoss::operator()(const at::Tensor& x, const at::Tensor& y) const {
  return divergence(x, y, options_);
}

at::Tensor SamplesLoss::operator()(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                                   const at::Tensor& y) const {
  return divergence(a, x, b, y, options_);
}

}  // namespace sinkhorn
