// sinkhorn::divergence against independent oracles: the dense primal-objective Sinkhorn of
// test_support.h, the reference backend, exact 1-D OT by sorting, and the energy distance.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <tuple>

#include "sinkhorn/divergence.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

using testing::DenseCloud;
using testing::oracle_sinkhorn;
using testing::relative_error;
using testing::to_dense;

SinkhornOptions tight(int p, double blur, std::optional<double> reach = std::nullopt) {
  SinkhornOptions options;
  options.p = p;
  options.blur = blur;
  options.reach = reach;
  options.tolerance = 1e-11;
  options.max_iterations = 20000;
  return options;
}

// p, blur, reach (0 = balanced), backend.
class AgainstOracle : public ::testing::TestWithParam<std::tuple<int, double, double, Backend>> {
 protected:
  void SetUp() override {
    at::manual_seed(11);
    x = at::rand({13, 2}, at::kDouble);
    y = at::rand({17, 2}, at::kDouble) + at::tensor({0.3, -0.2}, at::kDouble);
    a = testing::random_weights(13);
    b = testing::random_weights(17);
    const auto [p_, blur_, reach_, backend_] = GetParam();
    p = p_;
    blur = blur_;
    backend = backend_;
    if (reach_ > 0) reach = reach_;
    eps = std::pow(blur, p);
    if (reach) rho = std::pow(*reach, p);
  }
  at::Tensor x, y, a, b;
  SinkhornOptions tight_options() const {
    SinkhornOptions options = tight(p, blur, reach);
    options.backend = backend;
    return options;
  }
  int p = 2;
  double blur = 0.1, eps = 0.01;
  std::optional<double> reach, rho;
  Backend backend = Backend::automatic;
};

TEST_P(AgainstOracle, OtEpsEqualsPrimalObjective) {
  SinkhornOptions options = tight_options();
  options.loss = Loss::ot_eps;
  const double value = divergence(a, x, b, y, options).item<double>();
  const double expected = oracle_sinkhorn(to_dense(x, a), to_dense(y, b), p, eps, rho).ot;
  EXPECT_LT(relative_error(value, expected), 1e-8) << value << " vs " << expected;
}

TEST_P(AgainstOracle, DivergenceIsDebiasedCombination) {
  const double value = divergence(a, x, b, y, tight_options()).item<double>();
  const DenseCloud cx = to_dense(x, a), cy = to_dense(y, b);
  double expected = oracle_sinkhorn(cx, cy, p, eps, rho).ot - 0.5 * oracle_sinkhorn(cx, cx, p, eps, rho).ot -
                    0.5 * oracle_sinkhorn(cy, cy, p, eps, rho).ot;
  // With reach, S (Sejourne et al., GeomLoss) = OT_ab - OT_aa/2 - OT_bb/2 + eps/2 (|a| - |b|)^2;
  // the weights here have equal masses, so the term is zero. Unequal masses: UnbalancedMasses below.
  EXPECT_LT(relative_error(value, expected), 1e-7) << value << " vs " << expected;
}

TEST_P(AgainstOracle, PrimalIsTransportCostOfEntropicPlans) {
  if (reach) GTEST_SKIP() << "E_eps is defined for balanced transport";
  SinkhornOptions options = tight_options();
  options.loss = Loss::primal;
  const double value = divergence(a, x, b, y, options).item<double>();
  const DenseCloud cx = to_dense(x, a), cy = to_dense(y, b);
  const double expected = 2 * oracle_sinkhorn(cx, cy, p, eps).transport_cost -
                          oracle_sinkhorn(cx, cx, p, eps).transport_cost -
                          oracle_sinkhorn(cy, cy, p, eps).transport_cost;
  EXPECT_LT(relative_error(value, expected), 1e-7) << value << " vs " << expected;
}

TEST_P(AgainstOracle, ReferenceBackendAgrees) {
  SinkhornOptions options = tight_options();
  const double tensorized = divergence(a, x, b, y, options).item<double>();
  options.backend = Backend::reference;
  const double reference = divergence(a, x, b, y, options).item<double>();
  EXPECT_LT(relative_error(tensorized, reference), 1e-9);
}

std::string setting_name(const ::testing::TestParamInfo<std::tuple<int, double, double, Backend>>& info) {
  const auto [p, blur, reach, backend] = info.param;
  return "p" + std::to_string(p) + "_blur0" + std::to_string(static_cast<int>(blur * 10)) +
         (reach > 0 ? "_unbalanced_" : "_balanced_") + to_string(backend);
}

INSTANTIATE_TEST_SUITE_P(Settings, AgainstOracle,
                         ::testing::Combine(::testing::Values(1, 2), ::testing::Values(0.1, 0.3),
                                            ::testing::Values(0.0, 0.5),
                                            ::testing::Values(Backend::tensorized, Backend::online, Backend::multiscale)),
                         setting_name);

TEST(UnbalancedMasses, DivergenceFollowsSejourneFormula) {
  at::manual_seed(3);
  const at::Tensor x = at::rand({9, 2}, at::kDouble), y = at::rand({12, 2}, at::kDouble);
  const at::Tensor a = testing::random_weights(9) * 1.5, b = testing::random_weights(12) * 0.7;
  const int p = 2;
  const double blur = 0.2, reach = 0.7, eps = blur * blur, rho = reach * reach;
  const double value = divergence(a, x, b, y, tight(p, blur, reach)).item<double>();
  const DenseCloud cx = to_dense(x, a), cy = to_dense(y, b);
  const double exact = oracle_sinkhorn(cx, cy, p, eps, rho).ot - 0.5 * oracle_sinkhorn(cx, cx, p, eps, rho).ot -
                       0.5 * oracle_sinkhorn(cy, cy, p, eps, rho).ot;
  EXPECT_LT(relative_error(value, exact + eps / 2 * (1.5 - 0.7) * (1.5 - 0.7)), 1e-7);
}

TEST(Float32, TensorizedMatchesFloat64Reference) {
  at::manual_seed(5);
  for (const int p : {1, 2}) {
    for (const bool unbalanced : {false, true}) {
      for (const int64_t batch : {1, 3}) {
        const at::Tensor x = at::randn({batch, 60, 3}, at::kDouble);
        const at::Tensor y = at::randn({batch, 45, 3}, at::kDouble) + 0.5;
        const at::Tensor a = at::rand({batch, 60}, at::kDouble) + 0.1;
        const at::Tensor b = at::rand({batch, 45}, at::kDouble) + 0.1;
        const at::Tensor an = a / a.sum(1, true), bn = b / b.sum(1, true);
        SinkhornOptions options;
        options.p = p;
        options.blur = 0.1;
        if (unbalanced) options.reach = 1.0;
        SinkhornOptions reference = options;
        reference.backend = Backend::reference;
        reference.tolerance = 1e-10;
        const at::Tensor expected = divergence(an, x, bn, y, reference);
        const at::Tensor actual = divergence(an.to(at::kFloat), x.to(at::kFloat), bn.to(at::kFloat),
                                             y.to(at::kFloat), options);
        EXPECT_EQ(actual.scalar_type(), at::kFloat);
        ASSERT_EQ(actual.sizes(), expected.sizes());
        const double error = ((actual.to(at::kDouble) - expected).abs() / expected.abs()).max().item<double>();
        EXPECT_LT(error, 1e-3) << "p=" << p << " unbalanced=" << unbalanced << " batch=" << batch;
      }
    }
  }
}

TEST(Limits, SmallBlurApproachesExactOtIn1D) {
  // S_eps -> OT as eps -> 0 (Feydy et al. 2019, theorem 1); for discrete measures the gap is
  // O(eps). Check that it shrinks with eps and is small at the smallest blur.
  at::manual_seed(8);
  const at::Tensor x = at::randn({40, 1}, at::kDouble);
  const at::Tensor y = at::randn({40, 1}, at::kDouble) * 0.5 + 1.0;
  const std::vector<double> xs(x.data_ptr<double>(), x.data_ptr<double>() + 40);
  const std::vector<double> ys(y.data_ptr<double>(), y.data_ptr<double>() + 40);
  const std::vector<std::pair<int, std::vector<double>>> blurs{{1, {0.1, 0.01, 0.002}},
                                                                {2, {0.1, 0.03, 0.01}}};
  for (const auto& [p, blur_values] : blurs) {
    const double exact = testing::sorted_ot_1d(xs, ys, p);
    double previous_gap = INFINITY;
    for (const double blur : blur_values) {
      SinkhornOptions options;
      options.p = p;
      options.blur = blur;
      options.max_iterations = 20000;
      const double gap = relative_error(divergence(x, y, options).item<double>(), exact);
      EXPECT_LT(gap, previous_gap) << "p=" << p << " blur=" << blur;
      previous_gap = gap;
    }
    EXPECT_LT(previous_gap, p == 1 ? 1e-2 : 1e-3) << "p=" << p;
  }
}

TEST(Limits, LargeBlurWithP1ApproachesEnergyDistance) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({30, 2}, at::kDouble), y = at::randn({25, 2}, at::kDouble) + 0.7;
  const at::Tensor a = testing::random_weights(30), b = testing::random_weights(25);
  const double energy = testing::energy_distance(to_dense(x, a), to_dense(y, b));
  SinkhornOptions options;
  options.p = 1;
  options.loss = Loss::energy;
  EXPECT_LT(relative_error(divergence(a, x, b, y, options).item<double>(), energy), 1e-12);
  // S_eps - energy = O(1/eps): the gap shrinks tenfold per decade of blur.
  options.loss = Loss::divergence;
  double previous_gap = INFINITY;
  for (const double blur : {1e2, 1e3, 1e4}) {
    options.blur = blur;
    const double gap = relative_error(divergence(a, x, b, y, options).item<double>(), energy);
    EXPECT_LT(gap, previous_gap / 5);
    previous_gap = gap;
  }
  EXPECT_LT(previous_gap, 1e-3);
}

TEST(DefaultAccuracy, WithinOneThousandthOfConvergedFloat64) {
  // The promise: default options land within 1e-3 relative (or 1e-7 absolute) of a fully
  // converged float64 solve, in float32 too, down to small blurs where GeomLoss's defaults miss.
  at::manual_seed(12);
  const at::Tensor x = at::rand({300, 2}, at::kDouble);
  const at::Tensor y = at::rand({250, 2}, at::kDouble) * 0.8 + 0.3;
  for (const int p : {1, 2}) {
    for (const double blur : {0.05, 0.01}) {
      SinkhornOptions options;
      options.p = p;
      options.blur = blur;
      SinkhornOptions converged = options;
      converged.tolerance = 1e-12;
      converged.max_iterations = 50000;
      const double truth = divergence(x, y, converged).item<double>();
      for (const at::ScalarType dtype : {at::kDouble, at::kFloat}) {
        const DivergenceResult result = divergence_with_details({}, x.to(dtype), {}, y.to(dtype), options);
        const double value = result.value.item<double>();
        EXPECT_TRUE(std::abs(value - truth) <= std::max(1e-3 * std::abs(truth), 1e-7))
            << "p=" << p << " blur=" << blur << " dtype=" << dtype << ": " << value << " vs " << truth
            << " after " << result.diagnostics.iterations << " iterations";
        EXPECT_TRUE(result.diagnostics.converged);
      }
    }
  }
}

TEST(Stability, NoNanDownToBlurOneThousandthOfDiameterInFloat32) {
  at::manual_seed(13);
  const at::Tensor x = (at::rand({200, 3}) * 10).requires_grad_(true);
  const at::Tensor y = at::rand({150, 3}) * 10 + 2;
  const double diameter = 10 * std::sqrt(3.0) + 2;
  for (const int p : {1, 2}) {
    for (const Loss loss : {Loss::divergence, Loss::ot_eps}) {
      SinkhornOptions options;
      options.p = p;
      options.loss = loss;
      options.blur = 1e-3 * diameter;
      options.max_iterations = 200;
      const at::Tensor value = divergence(x, y, options);
      EXPECT_TRUE(std::isfinite(value.item<double>())) << "p=" << p;
      const at::Tensor gradient = torch::autograd::grad({value}, {x})[0];
      EXPECT_TRUE(at::isfinite(gradient).all().item<bool>()) << "p=" << p;
    }
  }
}

}  // namespace
}  // namespace sinkhorn
