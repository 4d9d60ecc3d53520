// Properties every divergence must have, checked on random clouds: S(a,a) = 0, symmetry, S >= 0,
// invariance to point order and to translations; batches, dtypes, potentials and diagnostics.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "sinkhorn/divergence.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

class Properties : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    at::manual_seed(21);
    x = at::randn({50, 3}, at::kDouble);
    y = at::randn({40, 3}, at::kDouble) * 0.7 + 0.4;
    a = testing::random_weights(50);
    b = testing::random_weights(40);
    options.p = GetParam();
    options.blur = 0.2;
    options.tolerance = 1e-9;
  }
  at::Tensor x, y, a, b;
  SinkhornOptions options;
};

TEST_P(Properties, ZeroOnIdenticalMeasures) {
  for (const bool unbalanced : {false, true}) {
    if (unbalanced) options.reach = 1.0;
    EXPECT_NEAR(divergence(a, x, a, x, options).item<double>(), 0.0, 1e-9);
  }
}

TEST_P(Properties, SymmetricAndNonNegative) {
  for (const Loss loss : {Loss::divergence, Loss::primal, Loss::energy, Loss::gaussian}) {
    options.loss = loss;
    const double forward = divergence(a, x, b, y, options).item<double>();
    const double backward = divergence(b, y, a, x, options).item<double>();
    EXPECT_NEAR(forward, backward, 1e-8 * std::abs(forward)) << to_string(loss);
    EXPECT_GT(forward, 0.0) << to_string(loss);
  }
}

TEST_P(Properties, InvariantToPointOrder) {
  const at::Tensor order_x = at::randperm(50, at::kLong), order_y = at::randperm(40, at::kLong);
  const double value = divergence(a, x, b, y, options).item<double>();
  const double shuffled = divergence(a.index_select(0, order_x), x.index_select(0, order_x),
                                     b.index_select(0, order_y), y.index_select(0, order_y), options)
                              .item<double>();
  EXPECT_NEAR(value, shuffled, 1e-9 * std::abs(value));
}

TEST_P(Properties, InvariantToTranslation) {
  const at::Tensor shift = at::tensor({100.0, -50.0, 3.0}, at::kDouble);
  const double value = divergence(a, x, b, y, options).item<double>();
  const double moved = divergence(a, x + shift, b, y + shift, options).item<double>();
  EXPECT_NEAR(value, moved, 1e-8 * std::abs(value));
  // float32 too: the solver centres the clouds, so a far-away origin costs no accuracy.
  const double moved_single = divergence(a.to(at::kFloat), (x + shift).to(at::kFloat),
                                         b.to(at::kFloat), (y + shift).to(at::kFloat), options)
                                  .item<double>();
  EXPECT_NEAR(value, moved_single, 1e-3 * std::abs(value));
}

TEST_P(Properties, BatchEntriesAreIndependentProblems) {
  const at::Tensor xs = at::stack({x, x * 0.5, x + 1.0});
  const at::Tensor ys = at::stack({y, y, y * 2.0});
  const at::Tensor as = at::stack({a, a, a}), bs = at::stack({b, b, b});
  const at::Tensor batched = divergence(as, xs, bs, ys, options);
  ASSERT_EQ(batched.sizes(), at::IntArrayRef({3}));
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(batched[k].item<double>(), divergence(a, xs[k], b, ys[k], options).item<double>(),
                1e-8 * std::abs(batched[k].item<double>()));
  }
}

INSTANTIATE_TEST_SUITE_P(CostExponents, Properties, ::testing::Values(1, 2),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

TEST(Outputs, KeepDtypeAndReturnPotentialsAndDiagnostics) {
  at::manual_seed(22);
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble, at::kHalf}) {
    const at::Tensor x = at::randn({300, 2}).to(dtype), y = at::randn({200, 2}).to(dtype);
    const DivergenceResult result = divergence_with_details({}, x, {}, y);
    EXPECT_EQ(result.value.scalar_type(), dtype);
    EXPECT_EQ(result.value.dim(), 0);
    EXPECT_EQ(result.potentials.f_ab.sizes(), at::IntArrayRef({300}));
    EXPECT_EQ(result.potentials.g_ab.sizes(), at::IntArrayRef({200}));
    EXPECT_EQ(result.potentials.f_aa.sizes(), at::IntArrayRef({300}));
    EXPECT_EQ(result.potentials.g_bb.sizes(), at::IntArrayRef({200}));
    EXPECT_GT(result.diagnostics.iterations, 0);
    EXPECT_GT(result.diagnostics.schedule_length, 1);
    EXPECT_TRUE(result.diagnostics.converged);
    EXPECT_LE(result.diagnostics.marginal_error, result.diagnostics.tolerance);
    EXPECT_DOUBLE_EQ(result.diagnostics.epsilon, 0.05 * 0.05);
  }
}

TEST(Outputs, PotentialsSatisfyTheFixedPointEquations) {
  // f_i = softmin_eps(C_xy, log b + g/eps)_i at convergence, recomputed here by brute force.
  at::manual_seed(23);
  const at::Tensor x = at::randn({12, 2}, at::kDouble), y = at::randn({9, 2}, at::kDouble);
  SinkhornOptions options;
  options.blur = 0.3;
  options.tolerance = 1e-12;
  const DivergenceResult result = divergence_with_details({}, x, {}, y, options);
  const double eps = 0.09;
  const at::Tensor cost = 0.5 * at::cdist(x, y).pow(2);
  const at::Tensor h = std::log(1.0 / 9) + result.potentials.g_ab / eps;
  const at::Tensor f = -eps * at::logsumexp(h.unsqueeze(0) - cost / eps, 1);
  EXPECT_LT((f - result.potentials.f_ab).abs().max().item<double>(), 1e-9);
}

TEST(FixedIterations, RunsExactlyLIterationsAtFinalEps) {
  at::manual_seed(24);
  const at::Tensor x = at::randn({20, 2}), y = at::randn({25, 2});
  SinkhornOptions options;
  options.iterations = 7;
  const DivergenceResult result = divergence_with_details({}, x, {}, y, options);
  EXPECT_EQ(result.diagnostics.iterations, 7);
  EXPECT_EQ(result.diagnostics.schedule_length, 1);
  // L -> infinity recovers the converged value (plain Sinkhorn from zero: slowly).
  SinkhornOptions converged;
  converged.blur = 0.5;
  converged.tolerance = 1e-12;
  const at::Tensor xd = x.to(at::kDouble), yd = y.to(at::kDouble);
  const double truth = divergence(xd, yd, converged).item<double>();
  options.blur = 0.5;
  double previous = INFINITY;
  for (const int iterations : {10, 100, 1000, 10000}) {
    options.iterations = iterations;
    const double gap = std::abs(divergence(xd, yd, options).item<double>() - truth);
    EXPECT_LT(gap, previous) << "L = " << iterations;
    previous = gap;
  }
  EXPECT_LT(previous, 1e-6 * truth);
}

TEST(KernelLosses, MatchDirectQuadraticForms) {
  at::manual_seed(25);
  const at::Tensor x = at::randn({10, 3}, at::kDouble), y = at::randn({8, 3}, at::kDouble);
  const at::Tensor a = testing::random_weights(10), b = testing::random_weights(8);
  const double blur = 0.7;
  const auto mmd = [&](const std::function<at::Tensor(const at::Tensor&)>& kernel_of_distance) {
    const auto form = [&](const at::Tensor& u, const at::Tensor& p, const at::Tensor& v, const at::Tensor& q) {
      return (u.unsqueeze(1) * kernel_of_distance(at::cdist(p, q)) * v.unsqueeze(0)).sum().item<double>();
    };
    return 0.5 * (form(a, x, a, x) + form(b, y, b, y)) - form(a, x, b, y);
  };
  SinkhornOptions options;
  options.blur = blur;
  options.loss = Loss::gaussian;
  EXPECT_NEAR(divergence(a, x, b, y, options).item<double>(),
              mmd([&](const at::Tensor& d) { return (-d.pow(2) / (2 * blur * blur)).exp(); }), 1e-12);
  options.loss = Loss::laplacian;
  EXPECT_NEAR(divergence(a, x, b, y, options).item<double>(),
              mmd([&](const at::Tensor& d) { return (-d / blur).exp(); }), 1e-12);
  options.loss = Loss::energy;
  EXPECT_NEAR(divergence(a, x, b, y, options).item<double>(), mmd([](const at::Tensor& d) { return -d; }), 1e-12);
  options.loss = Loss::gaussian_mixture;
  EXPECT_NEAR(divergence(a, x, b, y, options).item<double>(), mmd([&](const at::Tensor& d) {
                at::Tensor sum = at::zeros_like(d);
                for (const double width : {1.0, 2.0, 4.0, 8.0, 16.0}) sum += (-d.pow(2) / (2 * width * width * blur * blur)).exp();
                return sum;
              }),
              1e-12);
}

TEST(SamplesLossObject, CallsTheSameLoss) {
  at::manual_seed(26);
  const at::Tensor x = at::randn({15, 2}), y = at::randn({15, 2});
  SinkhornOptions options;
  options.p = 1;
  const SamplesLoss loss(options);
  EXPECT_EQ(loss(x, y).item<double>(), divergence(x, y, options).item<double>());
  SinkhornOptions bad;
  bad.p = 3;
  EXPECT_THROW(SamplesLoss{bad}, Error);
}

}  // namespace
}  // namespace sinkhorn
