// The reference kernels against closed forms: a brute-force sum in long double, and the identity
// d/dx_i softmin_eps(C, h)_i = sum_j softmax_j(h_j - C_ij/eps) grad_x C(x_i, y_j) checked by
// finite differences.
#include "reduce/reference/reference_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace sinkhorn::reduce::reference {
namespace {

std::vector<double> random_values(size_t count, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> values(count);
  for (double& v : values) v = normal(rng);
  return values;
}

class ReferenceKernels : public ::testing::TestWithParam<int> {};

TEST_P(ReferenceKernels, SoftminMatchesBruteForceLongDouble) {
  const int p = GetParam();
  std::mt19937 rng(1);
  const int64_t n = 7, m = 11, d = 3;
  const auto x = random_values(n * d, rng), y = random_values(m * d, rng), h = random_values(m, rng);
  for (const double eps : {0.1, 1.0, 10.0}) {
    std::vector<double> out(n);
    softmin(x.data(), y.data(), h.data(), n, m, d, p, eps, out.data());
    for (int64_t i = 0; i < n; ++i) {
      long double sum = 0;  // no max shift needed at these magnitudes
      for (int64_t j = 0; j < m; ++j) sum += std::exp(static_cast<long double>(h[j] - cost(&x[i * d], &y[j * d], d, p) / eps));
      EXPECT_NEAR(out[i], static_cast<double>(-eps * std::log(sum)), 1e-12 * (1 + std::abs(out[i])));
    }
  }
}

TEST_P(ReferenceKernels, NoOverflowForTinyEps) {
  const int p = GetParam();
  std::mt19937 rng(2);
  const int64_t n = 5, m = 6, d = 2;
  const auto x = random_values(n * d, rng, 100), y = random_values(m * d, rng, 100);
  const std::vector<double> h(m, 0.0);
  std::vector<double> out(n);
  softmin(x.data(), y.data(), h.data(), n, m, d, p, 1e-6, out.data());
  for (int64_t i = 0; i < n; ++i) {
    // eps -> 0: softmin -> min_j C_ij (h = 0), the error is eps log m at most.
    double nearest = INFINITY;
    for (int64_t j = 0; j < m; ++j) nearest = std::min(nearest, cost(&x[i * d], &y[j * d], d, p));
    EXPECT_TRUE(std::isfinite(out[i]));
    EXPECT_NEAR(out[i], nearest, 1e-6 * std::log(m) + 1e-9 * nearest);
  }
}

TEST_P(ReferenceKernels, GradientIsDerivativeOfSoftmin) {
  const int p = GetParam();
  std::mt19937 rng(3);
  const int64_t n = 4, m = 9, d = 3;
  auto x = random_values(n * d, rng);
  const auto y = random_values(m * d, rng), h = random_values(m, rng);
  const double eps = 0.3, step = 1e-6;
  std::vector<double> gradient(n * d), plus(n), minus(n);
  softmax_cost_gradient(x.data(), y.data(), h.data(), n, m, d, p, eps, gradient.data());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      const double saved = x[i * d + k];
      x[i * d + k] = saved + step;
      softmin(x.data(), y.data(), h.data(), n, m, d, p, eps, plus.data());
      x[i * d + k] = saved - step;
      softmin(x.data(), y.data(), h.data(), n, m, d, p, eps, minus.data());
      x[i * d + k] = saved;
      EXPECT_NEAR(gradient[i * d + k], (plus[i] - minus[i]) / (2 * step), 1e-7);
    }
  }
}

TEST_P(ReferenceKernels, SoftmaxCostIsWeightedMeanCost) {
  const int p = GetParam();
  std::mt19937 rng(4);
  const int64_t n = 6, m = 8, d = 5;
  const auto x = random_values(n * d, rng), y = random_values(m * d, rng), h = random_values(m, rng);
  const double eps = 0.7;
  std::vector<double> out(n);
  softmax_cost(x.data(), y.data(), h.data(), n, m, d, p, eps, out.data());
  for (int64_t i = 0; i < n; ++i) {
    long double weights = 0, weighted = 0;
    for (int64_t j = 0; j < m; ++j) {
      const double c = cost(&x[i * d], &y[j * d], d, p);
      const long double w = std::exp(static_cast<long double>(h[j] - c / eps));
      weights += w;
      weighted += w * c;
    }
    EXPECT_NEAR(out[i], static_cast<double>(weighted / weights), 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(CostExponents, ReferenceKernels, ::testing::Values(1, 2),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

TEST(ReferenceKernels, EuclideanGradientIsZeroAtCoincidentPoints) {
  const std::vector<double> x{0.5, -1.0}, y{0.5, -1.0}, h{0.0};
  std::vector<double> gradient(2, 1.0);
  softmax_cost_gradient(x.data(), y.data(), h.data(), 1, 1, 2, 1, 0.1, gradient.data());
  EXPECT_EQ(gradient[0], 0.0);
  EXPECT_EQ(gradient[1], 0.0);
}

}  // namespace
}  // namespace sinkhorn::reduce::reference
