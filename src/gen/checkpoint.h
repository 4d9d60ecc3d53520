// checkpoint.pt: a LibTorch archive (a zip file of stored entries) holding the run's settings, its
// step, and the networks and their optimisers. It is serialised in memory and written with checked
// system calls (a full disk is an error message, not an abort in LibTorch's zip writer), and read
// whole, bounded in size, with every zip entry's CRC-32 checked before LibTorch parses it: LibTorch
// itself loads a checkpoint with flipped bytes in a weight without a word.
//
// A checkpoint is trusted input: loading one runs LibTorch's deserialisation, which was not written
// to resist a malicious file. The checks here catch damage (a flipped bit, a truncated copy, a file
// that is no checkpoint) and keep the checks themselves bounded on any bytes (no overlapping
// entries, no inflation bombs), not an attacker who can hand the program a crafted archive.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gen/train_config.h"

namespace sinkhorn::gen {

/// Larger files are refused before they are read: a generator of the paper's sizes saves a few MB.
inline constexpr uint64_t kMaxCheckpointBytes = uint64_t{4} << 30;

/// What a checkpoint holds, for writing; the critic and its optimiser are null for a fixed cost.
struct CheckpointContents {
  const TrainConfig* config = nullptr;                 ///< saved as JSON
  int64_t step = 0;                                    ///< the last finished step
  double seconds = 0;                                  ///< training time up to it
  torch::nn::Module* generator = nullptr;              ///< its parameters and buffers
  torch::optim::Optimizer* generator_optimizer = nullptr;  ///< its state (running averages, options)
  torch::nn::Module* critic = nullptr;                 ///< learned cost only
  torch::optim::Optimizer* critic_optimizer = nullptr;  ///< learned cost only
};

/// Serialises `contents` in memory and replaces `path` atomically. On failure nothing but the
/// previous checkpoint is left and Error("out_dir", "cannot write '<path>': <OS error>") is thrown.
void write_checkpoint(const std::string& path, const CheckpointContents& contents);

/// A checkpoint read whole and verified, ready to load into networks.
class Checkpoint {
 public:
  /// Reads `path` (a regular file of at most kMaxCheckpointBytes), checks every zip entry's CRC-32,
  /// the format tag and the saved settings (validate(): the ranges the command line accepts).
  /// Errors are Error(argument, "'<path>' ..."): argument is the library's name of what the user
  /// passed ("checkpoint", "out_dir").
  static Checkpoint read(const std::string& path, const std::string& argument);

  Checkpoint(Checkpoint&&) noexcept;
  ~Checkpoint();

  /// The settings of the saved run.
  const TrainConfig& config() const;
  /// The last finished step.
  int64_t step() const;
  /// Training time up to that step.
  double seconds() const;
  /// Loads the saved "generator" or "critic" into `module` (built from config()), refusing
  /// weights that do not fit it (another shape or type of any parameter or buffer: LibTorch would
  /// load them anyway) or are not finite.
  void load_module(const std::string& part, torch::nn::Module& module) const;
  /// Loads the saved "generator_optimizer" or "critic_optimizer", refusing state tensors that do
  /// not fit the parameters they belong to.
  void load_optimizer(const std::string& part, torch::optim::Optimizer& optimizer) const;
  /// Runs `build`, which builds something from config() (data, networks); an Error it throws
  /// naming a setting becomes Error(argument, "'<path>' holds settings that cannot be used now:
  /// <setting> <problem>"): on `--resume` and in `sample` the saved settings are not flags.
  void with_saved_settings(const std::function<void()>& build) const;

 private:
  struct State;
  explicit Checkpoint(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sinkhorn::gen
