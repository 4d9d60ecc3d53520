// The loop's batched reads of the marginal errors (LoopSettings::read_errors_every, for device
// solves where each read stops the device), run here on the CPU where every build runs them: the
// decisions of the sweeps between reads are replayed at the read, so a solve reads k times less
// often, converges (its final check exact), and ends within its tolerance of the solve that reads
// every sweep, at most a few reads' worth of sweeps later.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reduce/reducer.h"
#include "solver/epsilon_schedule.h"
#include "solver/sinkhorn_loop.h"

namespace sinkhorn {
namespace {

struct Outcome {
  solver::LoopReport report;
  double value;  // the debiased divergence from the potentials
};

Outcome solve(const at::Tensor& x, const at::Tensor& y, double blur, double tolerance, int read_every) {
  const int64_t n = x.size(0), m = y.size(0);
  const at::Tensor a = at::full({1, n}, 1.0 / n, at::kDouble), b = at::full({1, m}, 1.0 / m, at::kDouble);
  const solver::Cloud ca{x.unsqueeze(0), a, a.log()}, cb{y.unsqueeze(0), b, b.log()};
  solver::LoopSettings settings;
  const double diameter = (at::cat({x, y}).amax(0) - at::cat({x, y}).amin(0)).norm().item<double>();
  settings.epsilons = solver::epsilon_schedule(2, diameter, blur, 0.5);
  settings.tolerance = tolerance;
  settings.max_iterations = 100000;
  settings.read_errors_every = read_every;
  const auto reducer = reduce::make_reducer(Backend::online, 2, ca.points, cb.points);
  solver::DualState state;
  Outcome outcome{solver::sinkhorn_loop(*reducer, ca, cb, settings, state), 0.0};
  outcome.value = ((state.ab.f - state.aa.f) * a).sum().item<double>() + ((state.ab.g - state.bb.f) * b).sum().item<double>();
  return outcome;
}

TEST(BatchedErrorReads, ConvergeWithinTheToleranceOfReadingEverySweepAndReadLessOften) {
  at::set_num_threads(1);
  at::manual_seed(3);
  const auto ring = [](int64_t n) {
    const at::Tensor angle = at::randint(0, 8, {n}, at::kLong).to(at::kDouble) * (M_PI / 4);
    return 2.0 * at::stack({angle.cos(), angle.sin()}, 1) + 0.1 * at::randn({n, 2}, at::kDouble);
  };
  struct Case {
    const char* name;
    at::Tensor x, y;
    double blur;
  };
  const double tolerance = 1e-6;
  for (const Case& c : {Case{"cube", at::rand({300, 3}, at::kDouble), at::rand({250, 3}, at::kDouble) + 0.3, 0.05},
                        Case{"ring", ring(300), ring(300), 0.2}}) {
    const Outcome every = solve(c.x, c.y, c.blur, tolerance, 1);
    ASSERT_TRUE(every.report.converged) << c.name;
    for (const int k : {2, 5, 16}) {
      SCOPED_TRACE(::testing::Message() << c.name << ", every " << k);
      const Outcome batched = solve(c.x, c.y, c.blur, tolerance, k);
      EXPECT_TRUE(batched.report.converged);
      EXPECT_LE(batched.report.marginal_error, tolerance);
      // Both within the tolerance of the truth: the values agree to its order (second order in it).
      EXPECT_NEAR(batched.value, every.value, 1e-4 * std::abs(every.value) + 1e-9);
      // Fewer reads: the first three sweeps one by one, then one per k sweeps, and the final checks.
      EXPECT_LT(batched.report.error_reads, every.report.error_reads);
      EXPECT_LE(batched.report.error_reads, 3 + batched.report.iterations / k + 4);
      // The lag costs at most a few intervals of sweeps past where reading every sweep stopped.
      EXPECT_LE(batched.report.iterations, every.report.iterations + 4 * k + 8);
    }
  }
}

}  // namespace
}  // namespace sinkhorn
