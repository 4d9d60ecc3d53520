// The solve plan's decisions (src/api/solve_plan.h), without solving: paths, backends, gradient
// modes, schedules, the multiscale cell, memory estimates and refusals, from shapes alone.
#include <gtest/gtest.h>

#include <cmath>

#include "api/solve_plan.h"
#include "sinkhorn/error.h"

namespace sinkhorn::api {
namespace {

ProblemShape shape(int64_t n, int64_t m, int64_t d, double diameter = 2.0) {
  ProblemShape s;
  s.n = n;
  s.m = m;
  s.own_rows = n;
  s.dimension = d;
  s.diameter = diameter;
  return s;
}

SinkhornOptions loss(Loss which) {
  SinkhornOptions options;
  options.loss = which;
  return options;
}

TEST(SolvePlan, PathsFollowTheLossAndTheScale) {
  EXPECT_EQ(plan_solve(loss(Loss::ot), shape(10, 10, 2)).path, SolvePath::exact_ot);
  EXPECT_EQ(plan_solve(loss(Loss::energy), shape(10, 10, 2)).path, SolvePath::kernel_mmd);
  EXPECT_EQ(plan_solve(loss(Loss::divergence), shape(10, 10, 2)).path, SolvePath::sinkhorn);
  SinkhornOptions far = loss(Loss::divergence);
  far.blur = 1e5;  // eps = 1e10 against max C = 2: the eps -> infinity limit
  EXPECT_EQ(plan_solve(far, shape(10, 10, 2)).path, SolvePath::limit);
}

TEST(SolvePlan, BackendsFromSizesDimensionsAndTheWorld) {
  const SinkhornOptions options;
  EXPECT_EQ(plan_solve(options, shape(200, 200, 3)).backend, Backend::tensorized);
  const SolvePlan large_3d = plan_solve(options, shape(100000, 100000, 3));
  EXPECT_EQ(large_3d.backend, Backend::multiscale);
  EXPECT_TRUE(large_3d.refine_cell);
  EXPECT_GT(large_3d.cell, 0);
  EXPECT_EQ(plan_solve(options, shape(100000, 100000, 64)).backend, Backend::online);
  // A sharded solve's share: multiscale becomes online, and asking for it is refused.
  ProblemShape sharded = shape(100000, 100000, 3);
  sharded.world_size = 2;
  sharded.own_rows = 50000;
  EXPECT_EQ(plan_solve(options, sharded).backend, Backend::online);
  SinkhornOptions multiscale;
  multiscale.backend = Backend::multiscale;
  try {
    plan_solve(multiscale, sharded);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "backend");
  }
  // A given cluster scale is used as it is, normalised like the clouds.
  multiscale.cluster_scale = 0.5;
  const SolvePlan given = plan_solve(multiscale, shape(1000, 1000, 2, /*diameter=*/2.0));
  EXPECT_FALSE(given.refine_cell);
  EXPECT_DOUBLE_EQ(given.cell * given.scale.length, 0.5);
}

TEST(SolvePlan, GradientsAndTheCoarseCorrection) {
  ProblemShape with_gradients = shape(50, 40, 2);
  with_gradients.gradients_wanted = true;
  SinkhornOptions primal = loss(Loss::primal);
  primal.coarse_correction = true;
  const SolvePlan unrolled = plan_solve(primal, with_gradients);
  EXPECT_EQ(unrolled.gradient, GradientMode::unrolled);
  EXPECT_TRUE(unrolled.unrolled);
  EXPECT_EQ(unrolled.backend, Backend::tensorized);  // the one differentiable backend
  EXPECT_FALSE(unrolled.coarse_correction);           // a constant to autograd: off
  EXPECT_FALSE(plan_solve(primal, shape(50, 40, 2)).unrolled);  // nothing to differentiate
  // A backend that cannot record its reductions is refused for unrolled gradients, naming it (it
  // used to reach an internal check), and accepted when no gradient is wanted.
  for (const Backend backend : {Backend::online, Backend::multiscale, Backend::reference}) {
    SinkhornOptions fixed = loss(Loss::primal);
    fixed.backend = backend;
    EXPECT_NO_THROW(plan_solve(fixed, shape(50, 40, 2)));
    try {
      plan_solve(fixed, with_gradients);
      ADD_FAILURE() << to_string(backend) << " accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.argument(), "backend");
      EXPECT_NE(std::string(error.what()).find("unrolled"), std::string::npos) << error.what();
    }
  }
  SinkhornOptions divergence = loss(Loss::divergence);
  divergence.coarse_correction = true;
  const SolvePlan envelope = plan_solve(divergence, with_gradients);
  EXPECT_EQ(envelope.gradient, GradientMode::envelope);
  EXPECT_TRUE(envelope.coarse_correction);
  EXPECT_FALSE(plan_solve(loss(Loss::ot_eps), with_gradients).solve_symmetric);
}

TEST(SolvePlan, SchedulesToleranceDtypeAndMemory) {
  SinkhornOptions options;
  options.blur = 0.05;
  const SolvePlan annealed = plan_solve(options, shape(300, 200, 2, /*diameter=*/3.0));
  ASSERT_GT(annealed.epsilons.size(), 2u);
  EXPECT_DOUBLE_EQ(annealed.epsilons.back(), annealed.scale.eps);
  EXPECT_DOUBLE_EQ(annealed.epsilons.back() * std::pow(annealed.scale.length, 2), 0.05 * 0.05);
  EXPECT_GT(annealed.epsilons.front(), annealed.epsilons[1]);
  // Three max(N, M)^2 float32 matrices with the symmetric problems.
  EXPECT_EQ(annealed.dense_rows, 300);
  EXPECT_EQ(annealed.dense_columns, 300);
  EXPECT_DOUBLE_EQ(annealed.dense_bytes(1), 3.0 * 300 * 300 * 4);
  options.iterations = 10;
  EXPECT_EQ(plan_solve(options, shape(300, 200, 2, 3.0)).epsilons.size(), 1u);
  // float32 far above the cost scale is solved in float64.
  SinkhornOptions wide;
  wide.blur = 100;
  EXPECT_EQ(plan_solve(wide, shape(30, 30, 2, 1.0)).scale.compute_dtype, at::kDouble);
}

}  // namespace
}  // namespace sinkhorn::api
