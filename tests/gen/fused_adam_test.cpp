// FusedAdam against torch::optim::Adam, the oracle it replaces: the same parameters after many
// steps of the same gradients (float32 and float64; plain, weight decay, amsgrad), parameters
// without a gradient untouched, and a run that saves one optimiser and loads the other goes on
// as if it never changed class (checkpoints written before FusedAdam resume with it).
#include "gen/fused_adam.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

namespace sinkhorn::gen {
namespace {

std::vector<at::Tensor> fresh_parameters(at::ScalarType dtype) {
  at::manual_seed(11);
  return {at::randn({7, 5}, dtype).requires_grad_(true), at::randn({5}, dtype).requires_grad_(true),
          at::randn({3, 2, 4}, dtype).requires_grad_(true)};
}

// Gradients that depend on the current parameters (so a wrong update changes later gradients too)
// plus noise from a fixed stream; the last parameter gets none every third step.
void set_gradients(std::vector<at::Tensor>& parameters, int step, at::ScalarType dtype) {
  at::manual_seed(1000 + step);
  for (size_t k = 0; k < parameters.size(); ++k) {
    const at::Tensor noise = at::randn(parameters[k].sizes(), dtype);
    if (k == 2 && step % 3 == 0) {
      parameters[k].mutable_grad() = at::Tensor();
    } else {
      parameters[k].mutable_grad() = (parameters[k].detach().sin() + noise).contiguous();
    }
  }
}

template <typename Optimizer>
std::vector<at::Tensor> trained(const torch::optim::AdamOptions& options, at::ScalarType dtype, int steps) {
  std::vector<at::Tensor> parameters = fresh_parameters(dtype);
  Optimizer optimizer(parameters, options);
  for (int step = 0; step < steps; ++step) {
    set_gradients(parameters, step, dtype);
    optimizer.step();
  }
  return parameters;
}

double largest_relative_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double largest = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    const double scale = b[k].abs().max().item<double>();
    largest = std::max(largest, (a[k] - b[k]).abs().max().item<double>() / scale);
  }
  return largest;
}

TEST(FusedAdam, FollowsTorchAdamStepByStep) {
  const std::vector<std::pair<std::string, torch::optim::AdamOptions>> settings{
      {"plain", torch::optim::AdamOptions(1e-2)},
      {"weight decay", torch::optim::AdamOptions(5e-3).weight_decay(0.1).betas({0.8, 0.99})},
      {"amsgrad", torch::optim::AdamOptions(1e-2).amsgrad(true).eps(1e-6)},
  };
  for (const auto& [name, options] : settings) {
    for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      SCOPED_TRACE(name + (dtype == at::kFloat ? " float32" : " float64"));
      const auto ours = trained<FusedAdam>(options, dtype, 60);
      const auto oracle = trained<torch::optim::Adam>(options, dtype, 60);
      const auto start = fresh_parameters(dtype);
      // The parameters moved (60 steps of ~lr each), and both classes moved them alike.
      EXPECT_GT(largest_relative_difference(ours, start), 1e-2);
      EXPECT_LT(largest_relative_difference(ours, oracle), dtype == at::kFloat ? 2e-5 : 1e-12);
    }
  }
}

TEST(FusedAdam, LeavesParametersWithoutGradientsAlone) {
  std::vector<at::Tensor> parameters = fresh_parameters(at::kFloat);
  const at::Tensor before = parameters[1].detach().clone();
  FusedAdam optimizer(parameters, torch::optim::AdamOptions(1e-1));
  parameters[0].mutable_grad() = at::ones_like(parameters[0]);
  optimizer.step();
  EXPECT_TRUE(at::equal(parameters[1].detach(), before));
  EXPECT_EQ(optimizer.state().count(parameters[1].unsafeGetTensorImpl()), 0u);
  EXPECT_EQ(optimizer.state().count(parameters[0].unsafeGetTensorImpl()), 1u);
}

TEST(FusedAdam, StateMovesBetweenItAndTorchAdam) {
  const torch::optim::AdamOptions options(1e-2);
  const at::ScalarType dtype = at::kDouble;
  const auto oracle = trained<torch::optim::Adam>(options, dtype, 20);

  std::vector<at::Tensor> parameters = fresh_parameters(dtype);
  std::stringstream saved;
  {
    FusedAdam first(parameters, options);
    for (int step = 0; step < 10; ++step) {
      set_gradients(parameters, step, dtype);
      first.step();
    }
    torch::serialize::OutputArchive archive;
    first.save(archive);
    archive.save_to(saved);
  }
  torch::optim::Adam second(parameters, options);
  torch::serialize::InputArchive archive;
  archive.load_from(saved);
  second.load(archive);
  for (int step = 10; step < 20; ++step) {
    set_gradients(parameters, step, dtype);
    second.step();
  }
  EXPECT_LT(largest_relative_difference(parameters, oracle), 1e-12);
}

}  // namespace
}  // namespace sinkhorn::gen
