// The data-parallel part of training (under torchrun): every rank draws the same global batch,
// generates and scores its own block of rows, and the ranks sum their gradients and take each
// decision together. Without a group (one process) every operation is the identity.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <memory>

#include "dist/group.h"

namespace sinkhorn::gen {

class DataParallel {
 public:
  /// `group` null: one process. The caller keeps the group alive for this object's life.
  DataParallel(const dist::Group* group, at::Device device) : group_(group), device_(device) {}

  /// Whether there is a group at all.
  bool distributed() const { return group_ != nullptr; }
  /// This rank, 0 in one process.
  int rank() const { return group_ ? group_->rank() : 0; }
  /// Rank 0 writes the run folder; the other ranks of a group only compute.
  bool writes_files() const { return rank() == 0; }
  /// The group without ownership, for the loss's sharded solve (null in one process).
  std::shared_ptr<const dist::Group> shared_group() const;
  /// The device the decisions' collectives run on.
  void set_device(at::Device device) { device_ = device; }

  /// This rank's block of rows of a global batch (all of it in one process).
  at::Tensor share(const at::Tensor& batch) const;

  /// True on every rank when `flag` is true on any (`flag` itself in one process): the ranks take
  /// each decision together, or the one that stops would leave the others waiting in a collective.
  bool on_any_rank(bool flag) const;

  /// The gradient of the whole batch's loss: each rank's backward reached `module`'s parameters
  /// through its own rows only, so the ranks' gradients add up (one all-reduce for all of them).
  void sum_gradients(torch::nn::Module& module) const;

  /// The other ranks wait for rank 0 to set up (or resume) the run folder and learn whether it did:
  /// a refusal there (a locked folder, a bad checkpoint) ends every rank at once, not after a
  /// timeout. `failed`: this rank's own setup failed (it throws its own error after this).
  void agree_on_setup(bool failed) const;

 private:
  const dist::Group* group_;
  at::Device device_;
};

}  // namespace sinkhorn::gen
