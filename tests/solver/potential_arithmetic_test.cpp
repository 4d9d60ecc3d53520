// The loop's arithmetic on potentials: the host loops (CPU tensors outside autograd) against
// ATen's ops (the path GPU tensors and unrolled gradients take) on the same numbers.
#include "solver/potential_arithmetic.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <limits>

namespace sinkhorn::solver {
namespace {

TEST(PotentialArithmetic, HostLoopsMatchAten) {
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    at::manual_seed(5);
    const at::Tensor u = at::randn({3, 17}, dtype), v = at::randn({3, 17}, dtype);
    ASSERT_TRUE(host_arithmetic_applies(u));
    const double tolerance = dtype == at::kFloat ? 1e-6 : 1e-15;
    EXPECT_LT((linear_combination(0.3, u, -1.7, v) - (0.3 * u - 1.7 * v)).abs().max().item<double>(), tolerance);
    EXPECT_LT((scaled(0.25, u) - 0.25 * u).abs().max().item<double>(), tolerance);
    EXPECT_TRUE(scaled(1.0, u).is_same(u));
    // ATen's path (GPU tensors; here a transposed v, which the host loops do not read), with its
    // one-add forms where a coefficient is 1.
    const at::Tensor v_transposed = v.t().contiguous().t();
    ASSERT_FALSE(v_transposed.is_contiguous());
    for (const auto& [alpha, beta] : {std::pair{1.0, -1.7}, std::pair{0.3, 1.0}, std::pair{0.3, -1.7}}) {
      const at::Tensor combined = linear_combination(alpha, u, beta, v_transposed);
      EXPECT_EQ(combined.scalar_type(), dtype);
      EXPECT_LT((combined - (alpha * u + beta * v)).abs().max().item<double>(), tolerance);
    }
    // Under autograd one recorded node (the host loop forward): the value, the gradients of both
    // operands (alpha g and beta g), and under create_graph a differentiable backward, as ATen's.
    const at::Tensor traced = u.clone().requires_grad_(true), other = v.clone().requires_grad_(true);
    EXPECT_FALSE(host_arithmetic_applies(traced));
    EXPECT_TRUE(linear_combination(0.3, v, -1.7, traced).requires_grad());
    // upstream requires a gradient itself, so that a differentiable backward gives gradients that do.
    const at::Tensor upstream = at::randn({3, 17}, dtype).requires_grad_(true);
    for (const bool create_graph : {false, true}) {
      const at::Tensor combined = linear_combination(0.3, traced, -1.7, other);
      EXPECT_LT((combined - (0.3 * u - 1.7 * v)).abs().max().item<double>(), tolerance);
      const std::vector<at::Tensor> gradients =
          torch::autograd::grad({(combined * upstream).sum()}, {traced, other}, {}, true, create_graph);
      EXPECT_LT((gradients[0] - 0.3 * upstream).abs().max().item<double>(), tolerance);
      EXPECT_LT((gradients[1] + 1.7 * upstream).abs().max().item<double>(), tolerance);
      EXPECT_EQ(gradients[1].requires_grad(), create_graph);
      EXPECT_EQ(gradients[0].requires_grad(), create_graph);
    }

    // Marginal errors, balanced and unbalanced, including exponents past the clamp (80).
    const at::Tensor weights = at::rand({3, 17}, dtype) + 0.1;
    const at::Tensor f = at::randn({3, 17}, dtype) * 0.1;
    at::Tensor softmin = f + at::randn({3, 17}, dtype) * 0.01;
    softmin[2][4] = f[2][4] - 100;  // exp(100 / eps) would overflow: clamped
    for (const std::optional<double> rho : {std::optional<double>(), std::optional<double>(0.7)}) {
      for (const double eps : {0.05, 1.0}) {
        const double expected = marginal_error_per_entry(weights, f, softmin, eps, rho).amax().item<double>();
        const double actual = largest_marginal_error(weights, f, softmin, eps, rho);
        EXPECT_TRUE(std::isfinite(actual));
        EXPECT_NEAR(actual, expected, (dtype == at::kFloat ? 1e-5 : 1e-12) * expected);
      }
    }
    at::Tensor broken = softmin.clone();
    broken[1][3] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE(std::isnan(largest_marginal_error(weights, f, broken, 0.5, std::nullopt)));
  }
}

}  // namespace
}  // namespace sinkhorn::solver
