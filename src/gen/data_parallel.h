// The data-parallel part of training (under torchrun): every rank draws the same global batch,
// generates and scores its own block of rows, and the ranks sum their gradients and take each
// decision together. Without a group (one process) every operation is the identity.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <string>

#include "dist/group.h"
#include "gen/train_config.h"

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
  /// `flag` rides along: the result is true on every rank when it is true on any (a stop request,
  /// agreed without a collective of its own).
  bool sum_gradients(torch::nn::Module& module, bool flag = false) const;

  /// How this run's steps solve their loss across the ranks (gathered, split or sharded; never
  /// automatic), decided at the first call from `choice` and, for automatic, a cost model fed by the
  /// group's latency measured here (the median of 7 all-reduces of one number, the ranks' largest):
  ///   - sharded saves (1 - 1/P) of each sweep's reductions (rows x columns x 3 problems at
  ///     kPairsPerSecondPerThread per thread) and pays kCollectivesPerSweep collectives per sweep;
  ///   - split, against gathered, saves the symmetric problems' reductions on the rank that solves
  ///     OT(a, b) (rows^2 + columns^2 pairs per sweep, at least kSymmetricSweeps sweeps) and pays one
  ///     collective per solve.
  /// Every rank decides alike. `message` receives the decision with its numbers, once. In one
  /// process: gathered (nothing is exchanged).
  DataParallelSolve plan(int64_t rows, int64_t columns, DataParallelSolve choice, std::string* message);

  /// All ranks' rows of this rank's `block` of a global batch of `rows` rows (even_blocks), in
  /// rank order: differentiable, the gradient reaching `block` as this rank's rows of it.
  at::Tensor gather(const at::Tensor& block, int64_t rows) const;

  /// The other ranks wait for rank 0 to set up (or resume) the run folder and learn whether it did:
  /// a refusal there (a locked folder, a bad checkpoint) ends every rank at once, not after a
  /// timeout. `failed`: this rank's own setup failed (it throws its own error after this).
  void agree_on_setup(bool failed) const;

 private:
  const dist::Group* group_;
  at::Device device_;
  std::optional<DataParallelSolve> plan_;  // decided at the first call
};

/// The cost model's reduction rate: pairs (one exp each) per second per thread, from the kernels'
/// measured throughput on this project's machine (docs/benchmarks.md, "Kernels": about 2e9 per
/// core for D <= 3, 0.3e9 at D = 64; the estimate errs toward gathering).
inline constexpr double kPairsPerSecondPerThread = 1e9;
/// Collectives per sweep of a sharded solve: the softmins' all-gather, the error's all-reduce and
/// the extrapolation's.
inline constexpr int kCollectivesPerSweep = 3;
/// What the symmetric problems cost a solve, in sweeps of their pairs at kPairsPerSecondPerThread:
/// measured on 500-point ring8 training batches, 8-12 ms of a 32-36 ms divergence (value and
/// gradient) is theirs, 16-24 such sweeps (docs/benchmarks.md, "Data-parallel training").
inline constexpr int kSymmetricSweeps = 16;

}  // namespace sinkhorn::gen
