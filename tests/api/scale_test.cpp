// Every eps against the clouds' scale (solver/scale_plan.h): the plan's decisions without a solve,
// then values far above the cost scale, at tiny and huge scales, and the reported marginal error
// against the plans rebuilt from the returned potentials. Oracles: the dense float64 Sinkhorn of
// test_support.h, the closed-form eps -> infinity limits, exact rescaling.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "sinkhorn/divergence.h"
#include "sinkhorn/error.h"
#include "solver/scale_plan.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

using testing::oracle_sinkhorn;
using testing::relative_error;
using testing::to_dense;

SinkhornOptions with_blur(int p, double blur) {
  SinkhornOptions options;
  options.p = p;
  options.blur = blur;
  return options;
}

TEST(ScalePlan, NormalisesByAPowerOfTwoAndKeepsTheRatios) {
  const solver::ScalePlan plan = solver::plan_scale(with_blur(2, 3e-21), 5e-20, at::kDouble);
  EXPECT_EQ(plan.length, std::ldexp(1.0, std::ilogb(5e-20)));
  EXPECT_NEAR(plan.eps / plan.max_cost, 9e-42 / (25e-40 / 2), 1e-12);
  EXPECT_FALSE(plan.limit);
  EXPECT_EQ(plan.compute_dtype, at::kDouble);
  EXPECT_EQ(plan.tolerance, 1e-4);  // below the cost scale: the tolerance asked for
}

TEST(ScalePlan, TightensTheToleranceAboveTheCostScale) {
  // max C = 2^2 / 2 = 2; eps = 100 = 50 max C: the marginal error must shrink 50-fold so that
  // the value (which moves by about eps times it) stays within tolerance max C.
  const solver::ScalePlan plan = solver::plan_scale(with_blur(2, 10), 2, at::kDouble);
  EXPECT_NEAR(plan.tolerance, 1e-4 / 50, 1e-18);
  EXPECT_FALSE(plan.limit);
}

TEST(ScalePlan, PromotesFloat32WhenItCannotResolveTheTolerance) {
  EXPECT_EQ(solver::plan_scale(with_blur(2, 1), 2, at::kFloat).compute_dtype, at::kFloat);
  EXPECT_EQ(solver::plan_scale(with_blur(2, 100), 2, at::kFloat).compute_dtype, at::kDouble);
  // A looser tolerance lets float32 go further.
  SinkhornOptions loose = with_blur(2, 10);
  EXPECT_EQ(solver::plan_scale(loose, 2, at::kFloat).compute_dtype, at::kDouble);
  loose.tolerance = 1e-2;
  EXPECT_EQ(solver::plan_scale(loose, 2, at::kFloat).compute_dtype, at::kFloat);
}

TEST(ScalePlan, ReturnsTheLimitFarAboveTheCostScaleButNotForOnePoint) {
  EXPECT_FALSE(solver::plan_scale(with_blur(1, 0.9e7), 1, at::kDouble).limit);
  EXPECT_TRUE(solver::plan_scale(with_blur(1, 1.1e7), 1, at::kDouble).limit);
  SinkhornOptions unbalanced = with_blur(2, 0.05);
  unbalanced.reach = 1;
  const solver::ScalePlan one_point = solver::plan_scale(unbalanced, 0, at::kFloat);
  EXPECT_FALSE(one_point.limit);
  EXPECT_EQ(one_point.tolerance, 1e-4);
  EXPECT_EQ(one_point.compute_dtype, at::kFloat);
}

TEST(ScalePlan, RefusesNamingTheArgument) {
  const auto message = [](const SinkhornOptions& options, double diameter) {
    try {
      solver::plan_scale(options, diameter, at::kDouble);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(with_blur(2, 1e-16), 1).find("blur"), std::string::npos);
  EXPECT_NE(message(with_blur(2, 1e-16), 1).find("below 1e-30 times it"), std::string::npos);
  SinkhornOptions tiny_reach = with_blur(2, 0.1);
  tiny_reach.reach = 1e-20;
  EXPECT_NE(message(tiny_reach, 1).find("reach"), std::string::npos);
  SinkhornOptions unbalanced_far = with_blur(2, 1e6);
  unbalanced_far.reach = 1;
  EXPECT_NE(message(unbalanced_far, 1).find("unbalanced"), std::string::npos);
  EXPECT_EQ(message(with_blur(2, 1e-14), 1), "accepted");
}

// The clouds: 7 x 2 against 5 x 2 Gaussians, float64.
struct SmallClouds {
  at::Tensor x, y;
  SmallClouds() {
    at::manual_seed(30);
    x = at::randn({7, 2}, at::kDouble);
    y = at::randn({5, 2}, at::kDouble) + at::tensor({0.8, -1.2}, at::kDouble);
  }
  // |mean x - mean y|^2 / 2: S_eps's eps -> infinity limit for p = 2 (uniform weights).
  double mean_gap() const { return 0.5 * (x.mean(0) - y.mean(0)).square().sum().item<double>(); }
  double oracle_divergence(int p, double eps) const {
    const at::Tensor a = at::full({7}, 1.0 / 7, at::kDouble), b = at::full({5}, 1.0 / 5, at::kDouble);
    const auto cx = to_dense(x, a), cy = to_dense(y, b);
    return oracle_sinkhorn(cx, cy, p, eps).ot - 0.5 * oracle_sinkhorn(cx, cx, p, eps).ot -
           0.5 * oracle_sinkhorn(cy, cy, p, eps).ot;
  }
};

TEST(LargeBlur, MatchesTheOracleWhereSinkhornRuns) {
  // eps from 10 to 1e5 times the largest cost (~10): the stop rule must not accept the first
  // potentials, whose marginal error is already tiny there.
  const SmallClouds clouds;
  for (const int p : {1, 2}) {
    for (const double blur : {30.0, 1e3}) {
      const double eps = std::pow(blur, p);
      const DivergenceResult result = divergence_with_details(at::Tensor(), clouds.x, at::Tensor(), clouds.y,
                                                              with_blur(p, blur));
      EXPECT_NE(result.diagnostics.backend, "limit");
      EXPECT_TRUE(result.diagnostics.converged);
      const double expected = clouds.oracle_divergence(p, eps);
      EXPECT_LT(std::abs(result.value.item<double>() - expected), 1e-6 * std::max(1.0, std::abs(expected)))
          << "p=" << p << " blur=" << blur << " expected " << expected;
    }
  }
}

TEST(LargeBlur, FarAboveTheCostScaleIsTheLimit) {
  const SmallClouds clouds;
  const double limit = clouds.mean_gap();
  for (const double blur : {1e4, 1e8, 1e10, 1e100}) {
    for (const at::ScalarType dtype : {at::kDouble, at::kFloat}) {
      const DivergenceResult result = divergence_with_details(
          at::Tensor(), clouds.x.to(dtype), at::Tensor(), clouds.y.to(dtype), with_blur(2, blur));
      const double tolerance = dtype == at::kDouble ? 1e-7 : 1e-6;
      EXPECT_LT(relative_error(result.value.item<double>(), limit), tolerance) << "blur=" << blur << " " << dtype;
      EXPECT_TRUE(result.diagnostics.converged);
    }
  }
  // p = 1: the energy distance.
  const at::Tensor a = at::full({7}, 1.0 / 7, at::kDouble), b = at::full({5}, 1.0 / 5, at::kDouble);
  const double energy = testing::energy_distance(to_dense(clouds.x, a), to_dense(clouds.y, b));
  for (const double blur : {1e6, 1e9, 1e20}) {
    const double value = divergence(clouds.x, clouds.y, with_blur(1, blur)).item<double>();
    EXPECT_LT(relative_error(value, energy), 1e-5) << "blur=" << blur;
  }
}

TEST(LargeBlur, Float32IsPromotedInsteadOfRoundedAway) {
  // At eps = 1e6 a float32 log-domain softmin rounds to eps u ~ 0.1: the issue measured -119209.
  const SmallClouds clouds;
  const double expected = divergence(clouds.x, clouds.y, with_blur(2, 1e3)).item<double>();
  const at::Tensor value = divergence(clouds.x.to(at::kFloat), clouds.y.to(at::kFloat), with_blur(2, 1e3));
  EXPECT_EQ(value.scalar_type(), at::kFloat);
  EXPECT_LT(relative_error(value.item<double>(), expected), 1e-6);
}

TEST(LargeBlur, LimitGradientsAndPotentialsMatchTheNeighbouringSolve) {
  // Either side of the switch to the limit (eps = 1e7 max C) the values, gradients and potentials
  // must agree to O(max C / eps), weights not uniform, total mass 2.
  at::manual_seed(31);
  const at::Tensor x0 = at::randn({9, 3}, at::kDouble), y0 = at::randn({6, 3}, at::kDouble) + 0.5;
  const at::Tensor a0 = 2 * testing::random_weights(9), b0 = 2 * testing::random_weights(6);
  for (const Loss loss : {Loss::divergence, Loss::ot_eps, Loss::primal}) {
    for (const int p : {1, 2}) {
      const auto run = [&](double blur) {
        const at::Tensor x = x0.clone().requires_grad_(true), a = a0.clone().requires_grad_(true);
        SinkhornOptions options = with_blur(p, blur);
        options.loss = loss;
        options.tolerance = 1e-8;
        const DivergenceResult result = divergence_with_details(a, x, b0, y0, options);
        result.value.backward();
        return std::make_tuple(result, x.grad(), a.grad());
      };
      const at::Tensor both = at::cat({x0, y0});
      const double diameter = (std::get<0>(both.max(0)) - std::get<0>(both.min(0))).norm().item<double>();
      const double max_cost = std::pow(diameter, p) / p;
      const double eps_below = 3e6 * max_cost, eps_above = 3e7 * max_cost;
      const auto [below, x_grad_below, a_grad_below] = run(std::pow(eps_below, 1.0 / p));
      const auto [above, x_grad_above, a_grad_above] = run(std::pow(eps_above, 1.0 / p));
      EXPECT_NE(below.diagnostics.backend, "limit");
      EXPECT_EQ(above.diagnostics.backend, "limit");
      const std::string where = to_string(loss) + " p=" + std::to_string(p);
      // ot_eps carries -m eps log m: compare it relative to itself.
      const double scale = loss == Loss::ot_eps ? std::abs(below.value.item<double>()) + max_cost : max_cost;
      // The values differ by their O(max C^2 / eps) terms and by ot_eps's eps ratio.
      if (loss == Loss::ot_eps) {
        const double mass = a0.sum().item<double>();
        const double drift = (eps_above - eps_below) * mass * std::log(mass);
        EXPECT_NEAR(above.value.item<double>() + drift, below.value.item<double>(), 1e-5 * scale) << where;
      } else {
        EXPECT_NEAR(above.value.item<double>(), below.value.item<double>(), 1e-5 * scale) << where;
      }
      EXPECT_LT((x_grad_above - x_grad_below).abs().max().item<double>(), 1e-5 * max_cost) << where;
      // Weight gradients are defined up to a constant (balanced), and ot_eps's carry eps log m.
      const at::Tensor da = (a_grad_above - a_grad_below);
      EXPECT_LT((da - da.mean()).abs().max().item<double>(), 1e-5 * max_cost) << where;
      const at::Tensor df = above.potentials.f_ab - below.potentials.f_ab;
      EXPECT_LT((df - df.mean()).abs().max().item<double>(), 1e-5 * max_cost) << where;
    }
  }
}

TEST(Scale, CovariantFromOneEMinusTwentyToOneETwenty) {
  // S(c x, c y; c blur) = c^p S(x, y; blur): the solve runs on rescaled clouds, so no absolute
  // constant may enter (the issue measured -1.67e-18 where the value is 1e-40).
  at::manual_seed(32);
  const at::Tensor x = at::rand({40, 2}, at::kDouble), y = at::rand({30, 2}, at::kDouble) + 0.3;
  for (const int p : {1, 2}) {
    for (const double blur : {0.05, 3.0}) {
      const double reference = divergence(x, y, with_blur(p, blur)).item<double>();
      for (const double c : {1e-20, 1e-7, 1e9, 1e20}) {
        const double value = divergence(c * x, c * y, with_blur(p, c * blur)).item<double>();
        EXPECT_LT(relative_error(value / std::pow(c, p), reference), 1e-6) << "p=" << p << " c=" << c;
      }
      for (const double c : {1e-20, 1e-3, 1e14}) {  // float32 holds costs up to 1e30
        const double value =
            divergence((c * x).to(at::kFloat), (c * y).to(at::kFloat), with_blur(p, c * blur)).item<double>();
        EXPECT_LT(relative_error(value / std::pow(c, p), reference), 1e-3) << "float32 p=" << p << " c=" << c;
      }
    }
  }
}

TEST(Scale, TinyCloudsAtAnOrdinaryBlurGiveTheirTinyValue) {
  const SmallClouds clouds;
  const double value = divergence(1e-20 * clouds.x, 1e-20 * clouds.y, with_blur(2, 0.05)).item<double>();
  EXPECT_LT(relative_error(value, 1e-40 * clouds.mean_gap()), 1e-6) << value;
}

// The largest relative L1 marginal error of the plan a_i b_j exp((f_i + g_j - C_ij) / eps).
double plan_error(const at::Tensor& x, const at::Tensor& a, const at::Tensor& f, const at::Tensor& y,
                  const at::Tensor& b, const at::Tensor& g, int p, double eps) {
  at::Tensor cost = at::cdist(x, y);
  if (p == 2) cost = 0.5 * cost.square();
  const at::Tensor plan = a.unsqueeze(1) * b.unsqueeze(0) * ((f.unsqueeze(1) + g.unsqueeze(0) - cost) / eps).exp();
  const double rows = (plan.sum(1) - a).abs().sum().item<double>() / a.sum().item<double>();
  const double columns = (plan.sum(0) - b).abs().sum().item<double>() / b.sum().item<double>();
  return std::max(rows, columns);
}

TEST(ReportedError, IsThatOfThePlansTheValueComesFrom) {
  at::manual_seed(33);
  const at::Tensor x = at::randn({300, 3}, at::kDouble), y = at::randn({250, 3}, at::kDouble) + 0.2;
  const at::Tensor a = testing::random_weights(300), b = testing::random_weights(250);
  for (const double tolerance : {1e-2, 1e-4}) {
    SinkhornOptions options = with_blur(2, 0.1);
    options.tolerance = tolerance;
    const DivergenceResult result = divergence_with_details(a, x, b, y, options);
    const Potentials& potentials = result.potentials;
    const double eps = result.diagnostics.epsilon;
    const double actual = std::max({plan_error(x, a, potentials.f_ab, y, b, potentials.g_ab, 2, eps),
                                    plan_error(x, a, potentials.f_aa, x, a, potentials.f_aa, 2, eps),
                                    plan_error(y, b, potentials.g_bb, y, b, potentials.g_bb, 2, eps)});
    EXPECT_NEAR(result.diagnostics.marginal_error, actual, 1e-6 * actual + 1e-12) << "tolerance " << tolerance;
    EXPECT_EQ(result.diagnostics.converged, actual <= result.diagnostics.tolerance);
  }
}

}  // namespace
}  // namespace sinkhorn
