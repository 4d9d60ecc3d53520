// The critic's step of a learned-cost run (the paper's Algorithm 2, after MMD GAN): its updates,
// gradient ascent on the loss followed by weight clipping, and the snapshot that lets a stop
// request between updates leave the run at its last finished step.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "gen/data_parallel.h"
#include "gen/models/networks.h"

namespace sinkhorn::gen {

/// What a step's critic updates change: the critic, its optimiser, and the generator's buffers
/// (batch norm's running statistics move as the critic's batches are generated in training mode).
/// Taken before the updates and put back when a stop request interrupts them, so that the
/// checkpoint then written is the last finished step's and a resume redoes the step from its start.
class CriticStepSnapshot {
 public:
  CriticStepSnapshot(torch::nn::Module& critic, torch::optim::Optimizer& optimizer, torch::nn::Module& generator);
  void restore();

 private:
  std::vector<at::Tensor> tensors() const;

  torch::nn::Module& critic_;
  torch::optim::Optimizer& optimizer_;
  torch::nn::Module& generator_;
  std::vector<at::Tensor> saved_;
  std::map<void*, std::unique_ptr<torch::optim::OptimizerParamState>> state_;
};

/// One update of `critic`: ascent on loss(generated, real) (descent on its negative), the ranks'
/// gradients summed, then its weights clipped to [-clip, clip] (clip 0: none). Returns the loss
/// before the update, or NaN (and no update) when it is not finite.
double critic_update(Critic& critic, torch::optim::Optimizer& optimizer, const DataParallel& ranks, double clip,
                     const std::function<at::Tensor()>& loss);

}  // namespace sinkhorn::gen
