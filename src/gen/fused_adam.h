// Adam whose update is one pass over each parameter (ATen's fused CPU kernel) instead of
// torch::optim::Adam's eight elementwise operations with their temporaries. For the paper's MNIST
// generator (643,000 parameters) torch::optim::Adam's step took about 2 ms on 2 cores, a sixth of
// a training step, and the fused one 0.4 ms (docs/benchmarks.md). Same options, state and
// serialisation as torch::optim::Adam (checkpoints move between the two); the same update rule
// (Kingma and Ba, with torch's bias corrections and eps outside the square root), to rounding.
#pragma once

#include <torch/optim/adam.h>

namespace sinkhorn::gen {

class FusedAdam final : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;

  /// One Adam update of every parameter that has a gradient. Dense CPU parameters go through
  /// at::_fused_adam_; any other (a CUDA or sparse one) makes the whole step torch::optim::Adam's.
  at::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace sinkhorn::gen
