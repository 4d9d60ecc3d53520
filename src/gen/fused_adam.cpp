#include "gen/fused_adam.h"

#include <ATen/ops/_fused_adam.h>
#include <c10/core/GradMode.h>

#include <memory>
#include <vector>

namespace sinkhorn::gen {
namespace {

bool fusable(const at::Tensor& parameter) {
  const at::Tensor& gradient = parameter.grad();
  return parameter.device().is_cpu() && !gradient.is_sparse() && parameter.layout() == at::kStrided &&
         (parameter.scalar_type() == at::kFloat || parameter.scalar_type() == at::kDouble) &&
         gradient.scalar_type() == parameter.scalar_type();
}

}  // namespace

at::Tensor FusedAdam::step(LossClosure closure) {
  for (const auto& group : param_groups()) {
    for (const at::Tensor& parameter : group.params()) {
      if (parameter.grad().defined() && !fusable(parameter)) return torch::optim::Adam::step(std::move(closure));
    }
  }
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  c10::NoGradGuard no_grad;
  for (auto& group : param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    std::vector<at::Tensor> parameters, gradients, averages, squares, largest_squares, steps;
    for (at::Tensor& parameter : group.params()) {
      if (!parameter.grad().defined()) continue;
      // State created as torch::optim::Adam creates it, so either class can continue the other's run.
      std::unique_ptr<torch::optim::OptimizerParamState>& slot = state()[parameter.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamParamState>();
        fresh->exp_avg(at::zeros_like(parameter, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(at::zeros_like(parameter, at::MemoryFormat::Preserve));
        if (options.amsgrad()) fresh->max_exp_avg_sq(at::zeros_like(parameter, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& adam = static_cast<torch::optim::AdamParamState&>(*slot);
      adam.step(adam.step() + 1);
      parameters.push_back(parameter);
      gradients.push_back(parameter.grad());
      averages.push_back(adam.exp_avg());
      squares.push_back(adam.exp_avg_sq());
      if (options.amsgrad()) largest_squares.push_back(adam.max_exp_avg_sq());
      // The kernel reads the step count (already advanced, as in torch.optim.Adam) from a tensor.
      steps.push_back(at::full({}, static_cast<double>(adam.step()), at::kFloat));
    }
    if (parameters.empty()) continue;
    const auto [beta1, beta2] = options.betas();
    at::_fused_adam_(parameters, gradients, averages, squares, largest_squares, steps, options.lr(), beta1, beta2,
                     options.weight_decay(), options.eps(), options.amsgrad(), /*maximize=*/false);
  }
  return loss;
}

}  // namespace sinkhorn::gen
