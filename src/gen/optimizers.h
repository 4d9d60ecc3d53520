// The optimisers of a training run, in one place that knows each kind: how one is built, how its
// rate follows the schedule, and which tensors its per-parameter state holds (Adam's running
// moments, RMSprop's averages), for the copies a stop request restores, the moves between
// devices, and the checks a checkpoint's state must pass.
#pragma once

#include <torch/optim/optimizer.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "gen/train_config.h"

namespace sinkhorn::gen {

/// The optimiser `kind` over `parameters` at `learning_rate` (Adam is FusedAdam, gen/fused_adam.h).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind, std::vector<at::Tensor> parameters,
                                                        double learning_rate);

/// Sets every parameter group's rate. The optimiser's saved state carries a rate too; the trainer
/// sets it every step, which makes the configuration (and a resume's new --lr) the one source.
void set_learning_rate(torch::optim::Optimizer& optimizer, double rate);

/// The generator's rate at `step` (1-based) of config.steps under config.schedule: constant, or a
/// half cosine from learning_rate down to 5% of it.
double learning_rate_at(const TrainConfig& config, int64_t step);

/// Replaces each defined tensor of one parameter's state with map(its name, it): the one place
/// that knows which tensors each optimiser keeps. An optimiser state of another kind is an
/// internal error.
void map_state_tensors(torch::optim::OptimizerParamState& state,
                       const std::function<at::Tensor(const char* name, const at::Tensor& tensor)>& map);

/// The defined tensors of one parameter's state, with their names.
std::vector<std::pair<const char*, at::Tensor>> state_tensors(const torch::optim::OptimizerParamState& state);

/// A copy of one parameter's state that owns its tensors (clone() alone shares them, and the
/// optimiser updates them in place).
std::unique_ptr<torch::optim::OptimizerParamState> deep_copy(const torch::optim::OptimizerParamState& state);

/// Moves every parameter's state to `device`, as Module::to moves parameters (a checkpoint's state
/// is read onto the CPU).
void move_state(torch::optim::Optimizer& optimizer, const at::Device& device);

}  // namespace sinkhorn::gen
