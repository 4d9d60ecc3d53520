#include "gen/critic_step.h"

#include <cmath>

#include "gen/optimizers.h"

namespace sinkhorn::gen {

CriticStepSnapshot::CriticStepSnapshot(torch::nn::Module& critic, torch::optim::Optimizer& optimizer,
                                       torch::nn::Module& generator)
    : critic_(critic), optimizer_(optimizer), generator_(generator) {
  for (const at::Tensor& tensor : tensors()) saved_.push_back(tensor.detach().clone());
  for (const auto& [key, state] : optimizer_.state()) state_.emplace(key, deep_copy(*state));
}

void CriticStepSnapshot::restore() {
  torch::NoGradGuard no_grad;
  const std::vector<at::Tensor> current = tensors();
  for (size_t k = 0; k < current.size(); ++k) current[k].copy_(saved_[k]);
  optimizer_.state().clear();
  for (const auto& [key, state] : state_) optimizer_.state()[key] = deep_copy(*state);
}

std::vector<at::Tensor> CriticStepSnapshot::tensors() const {
  std::vector<at::Tensor> all = critic_.parameters();
  for (const at::Tensor& buffer : critic_.buffers()) all.push_back(buffer);
  for (const at::Tensor& buffer : generator_.buffers()) all.push_back(buffer);
  return all;
}

double critic_update(Critic& critic, torch::optim::Optimizer& optimizer, const DataParallel& ranks, double clip,
                     const std::function<at::Tensor()>& loss) {
  const at::Tensor value = loss();
  if (!all_finite(value)) return std::nan("");
  optimizer.zero_grad();
  (-value).backward();
  ranks.sum_gradients(*critic);
  optimizer.step();
  if (clip > 0) critic->clip_weights(clip);
  return value.item<double>();
}

}  // namespace sinkhorn::gen
