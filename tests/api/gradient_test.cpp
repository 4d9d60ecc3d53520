// Gradients against float64 finite differences, in both modes (flashlight's habit: a Jacobian
// checked against its definition), the agreement of envelope and unrolled gradients as L grows,
// the double-backward error, and a plain LibTorch training loop.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>

#include "sinkhorn/divergence.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

struct Clouds {
  at::Tensor a, x, b, y;
};

Clouds random_clouds(uint64_t seed) {
  at::manual_seed(seed);
  return {testing::random_weights(9), at::rand({9, 2}, at::kDouble), testing::random_weights(7),
          at::rand({7, 2}, at::kDouble) + 0.2};
}

// Checks d loss / d input along a random direction against a central difference. For balanced
// transport the weights live on the simplex: the direction has zero sum.
void expect_gradients_match(const SinkhornOptions& options, double tolerance) {
  const Clouds c = random_clouds(31);
  const bool balanced = !options.reach && is_sinkhorn_loss(options.loss);
  std::vector<at::Tensor> inputs{c.a.clone(), c.x.clone(), c.b.clone(), c.y.clone()};
  for (auto& t : inputs) t.requires_grad_(true);
  const at::Tensor value = divergence(inputs[0], inputs[1], inputs[2], inputs[3], options);
  const std::vector<at::Tensor> gradients = torch::autograd::grad({value}, inputs);
  for (size_t k = 0; k < inputs.size(); ++k) {
    at::Tensor direction = at::randn(inputs[k].sizes(), at::kDouble);
    if (balanced && (k == 0 || k == 2)) direction -= direction.mean();
    const auto loss_at = [&](const at::Tensor& t) {
      std::vector<at::Tensor> moved{c.a, c.x, c.b, c.y};
      moved[k] = t;
      return divergence(moved[0], moved[1], moved[2], moved[3], options).item<double>();
    };
    const double numeric = testing::directional_difference(loss_at, inputs[k].detach(), direction, 1e-6);
    const double analytic = (gradients[k] * direction).sum().item<double>();
    EXPECT_NEAR(analytic, numeric, tolerance * (1 + std::abs(numeric)))
        << "input " << "axby"[k] << ", loss " << to_string(options.loss) << ", gradient "
        << to_string(options.gradient) << ", p " << options.p << (options.reach ? ", unbalanced" : "");
  }
}

// p, loss, unbalanced, backend.
class EnvelopeGradients : public ::testing::TestWithParam<std::tuple<int, Loss, bool, Backend>> {};

TEST_P(EnvelopeGradients, MatchFiniteDifferencesAtConvergence) {
  const auto [p, loss, unbalanced, backend] = GetParam();
  SinkhornOptions options;
  options.backend = backend;
  options.p = p;
  options.loss = loss;
  options.blur = 0.3;
  if (unbalanced) options.reach = 0.8;
  options.tolerance = 1e-12;
  options.max_iterations = 10000;
  options.gradient = GradientMode::envelope;
  expect_gradients_match(options, 1e-6);
}

std::string envelope_name(const ::testing::TestParamInfo<std::tuple<int, Loss, bool, Backend>>& info) {
  const auto [p, loss, unbalanced, backend] = info.param;
  return "p" + std::to_string(p) + "_" + to_string(loss) + (unbalanced ? "_unbalanced_" : "_balanced_") +
         to_string(backend);
}

INSTANTIATE_TEST_SUITE_P(Losses, EnvelopeGradients,
                         ::testing::Combine(::testing::Values(1, 2),
                                            ::testing::Values(Loss::divergence, Loss::ot_eps),
                                            ::testing::Bool(),
                                            ::testing::Values(Backend::tensorized, Backend::online, Backend::multiscale)),
                         envelope_name);

TEST(UnrolledGradients, MatchFiniteDifferencesOfTheUnrolledLoss) {
  // With a fixed L the loss is a smooth function of the inputs, and autograd differentiates it
  // exactly: the finite difference must agree to its own accuracy, converged or not.
  for (const int p : {1, 2}) {
    for (const Loss loss : {Loss::divergence, Loss::primal, Loss::ot_eps}) {
      SinkhornOptions options;
      options.p = p;
      options.loss = loss;
      options.blur = 0.2;
      options.iterations = 10;
      options.gradient = GradientMode::unrolled;
      expect_gradients_match(options, 1e-6);
    }
  }
  SinkhornOptions annealed;  // unrolled through eps-scaling too
  annealed.gradient = GradientMode::unrolled;
  annealed.reach = 0.5;
  annealed.blur = 0.2;
  annealed.tolerance = 1e-12;
  expect_gradients_match(annealed, 1e-5);
}

TEST(KernelLossGradients, MatchFiniteDifferences) {
  for (const Loss loss : {Loss::energy, Loss::gaussian, Loss::laplacian}) {
    SinkhornOptions options;
    options.loss = loss;
    options.blur = 0.5;
    expect_gradients_match(options, 1e-6);
  }
}

TEST(EnvelopeVsUnrolled, AgreeAsIterationsGrow) {
  const Clouds c = random_clouds(32);
  SinkhornOptions envelope;
  envelope.blur = 0.3;
  envelope.tolerance = 1e-12;
  const at::Tensor x = c.x.clone().requires_grad_(true);
  const at::Tensor reference = torch::autograd::grad({divergence(c.a, x, c.b, c.y, envelope)}, {x})[0];
  double previous = INFINITY;
  for (const int iterations : {2, 10, 50, 250}) {
    SinkhornOptions unrolled = envelope;
    unrolled.gradient = GradientMode::unrolled;
    unrolled.iterations = iterations;
    const at::Tensor gradient = torch::autograd::grad({divergence(c.a, x, c.b, c.y, unrolled)}, {x})[0];
    const double gap = ((gradient - reference).norm() / reference.norm()).item<double>();
    EXPECT_TRUE(gap < previous || gap < 1e-12) << "L = " << iterations << ": " << gap << " after " << previous;
    previous = gap;
  }
  EXPECT_LT(previous, 1e-6);
}

TEST(EnvelopeGradient, DoubleBackwardFailsClearly) {
  const Clouds c = random_clouds(33);
  const at::Tensor x = c.x.clone().requires_grad_(true);
  const at::Tensor value = divergence(c.a, x, c.b, c.y);
  try {
    torch::autograd::grad({value}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    FAIL() << "double backward through envelope gradients should throw";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("double backward"), std::string::npos) << error.what();
  }
}

TEST(EnvelopeGradient, BatchedGradientsScaleWithTheirOutputGradient) {
  at::manual_seed(34);
  const at::Tensor x = at::randn({2, 10, 2}, at::kDouble).requires_grad_(true);
  const at::Tensor y = at::randn({2, 12, 2}, at::kDouble);
  SinkhornOptions options;
  options.blur = 0.5;
  options.tolerance = 1e-12;  // the batch shares one stopping rule: compare converged solves
  const at::Tensor values = divergence(x, y, options);
  const at::Tensor weights = at::tensor({2.0, -3.0}, at::kDouble);
  const at::Tensor gradient = torch::autograd::grad({(values * weights).sum()}, {x})[0];
  for (int64_t k = 0; k < 2; ++k) {
    const at::Tensor single = x[k].detach().clone().requires_grad_(true);
    const at::Tensor expected = torch::autograd::grad({divergence(single, y[k], options)}, {single})[0];
    EXPECT_TRUE(at::allclose(gradient[k], weights[k] * expected, 1e-8, 1e-10));
  }
}

TEST(TrainingLoop, OptimiserDecreasesTheDivergence) {
  torch::manual_seed(35);
  const torch::Tensor target = torch::randn({200, 2}) * 0.3 + torch::tensor({1.0f, -1.0f});
  torch::Tensor points = torch::randn({200, 2}).requires_grad_(true);
  torch::optim::Adam optimiser({points}, torch::optim::AdamOptions(0.05));
  const double initial = divergence(points, target).item<double>();
  double last = initial;
  for (int step = 0; step < 60; ++step) {
    optimiser.zero_grad();
    const torch::Tensor loss = divergence(points, target);
    loss.backward();
    optimiser.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, initial / 20) << initial << " -> " << last;
}

}  // namespace
}  // namespace sinkhorn
