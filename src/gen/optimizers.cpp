#include "gen/optimizers.h"

#include <torch/optim/adam.h>
#include <torch/optim/rmsprop.h>

#include <cmath>

#include "gen/fused_adam.h"
#include "util/check.h"

namespace sinkhorn::gen {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind, std::vector<at::Tensor> parameters,
                                                        double learning_rate) {
  switch (kind) {
    case OptimizerKind::rmsprop:
      return std::make_unique<torch::optim::RMSprop>(std::move(parameters), torch::optim::RMSpropOptions(learning_rate));
    case OptimizerKind::adam:
      break;
  }
  return std::make_unique<FusedAdam>(std::move(parameters), torch::optim::AdamOptions(learning_rate));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double rate) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(rate);
}

double learning_rate_at(const TrainConfig& config, int64_t step) {
  if (config.schedule == LearningRateSchedule::constant || config.steps <= 1) return config.learning_rate;
  constexpr double kFinalFraction = 0.05;
  const double progress = static_cast<double>(step - 1) / static_cast<double>(config.steps - 1);
  return config.learning_rate * (kFinalFraction + (1 - kFinalFraction) * 0.5 * (1 + std::cos(M_PI * progress)));
}

void map_state_tensors(torch::optim::OptimizerParamState& state,
                       const std::function<at::Tensor(const char* name, const at::Tensor& tensor)>& map) {
  const auto mapped = [&](const char* name, const at::Tensor& tensor) {
    return tensor.defined() ? map(name, tensor) : tensor;
  };
  if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(&state)) {
    adam->exp_avg(mapped("exp_avg", adam->exp_avg()));
    adam->exp_avg_sq(mapped("exp_avg_sq", adam->exp_avg_sq()));
    adam->max_exp_avg_sq(mapped("max_exp_avg_sq", adam->max_exp_avg_sq()));
  } else if (auto* rmsprop = dynamic_cast<torch::optim::RMSpropParamState*>(&state)) {
    rmsprop->square_avg(mapped("square_avg", rmsprop->square_avg()));
    rmsprop->momentum_buffer(mapped("momentum_buffer", rmsprop->momentum_buffer()));
    rmsprop->grad_avg(mapped("grad_avg", rmsprop->grad_avg()));
  } else {
    SINKHORN_INTERNAL_CHECK(false, "an optimiser state of a kind the trainer does not build");
  }
}

std::vector<std::pair<const char*, at::Tensor>> state_tensors(const torch::optim::OptimizerParamState& state) {
  std::vector<std::pair<const char*, at::Tensor>> tensors;
  // Read through a copy: map_state_tensors writes back what the map returns (here, the same).
  const std::unique_ptr<torch::optim::OptimizerParamState> view = state.clone();
  map_state_tensors(*view, [&](const char* name, const at::Tensor& tensor) {
    tensors.emplace_back(name, tensor);
    return tensor;
  });
  return tensors;
}

std::unique_ptr<torch::optim::OptimizerParamState> deep_copy(const torch::optim::OptimizerParamState& state) {
  std::unique_ptr<torch::optim::OptimizerParamState> copy = state.clone();
  map_state_tensors(*copy, [](const char*, const at::Tensor& tensor) { return tensor.clone(); });
  return copy;
}

void move_state(torch::optim::Optimizer& optimizer, const at::Device& device) {
  for (auto& entry : optimizer.state()) {
    map_state_tensors(*entry.second, [&](const char*, const at::Tensor& tensor) { return tensor.to(device); });
  }
}

}  // namespace sinkhorn::gen
