// The generator saved in a run's checkpoint, for drawing samples (`sinkhorn sample`).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gen/train_config.h"

namespace sinkhorn::gen {

/// Samples generated at a time by sample_in_batches's callers: memory stays bounded whatever n.
inline constexpr int64_t kSampleBatch = 65536;

class SavedGenerator {
 public:
  /// Loads `path` (a checkpoint.pt, or a run folder holding one) after checking it (see
  /// Checkpoint::read: its CRCs, settings and finite weights). Errors are Error("checkpoint", ...).
  /// The generator runs on `device` (whatever device trained it); latents are drawn on the CPU and
  /// moved, and the samples returned are on `device`. On a GPU the samples equal the CPU's only to
  /// rounding, and batches need not give the one-shot samples bit for bit.
  static SavedGenerator load(const std::string& path, const at::Device& device = at::Device(at::kCPU));
  SavedGenerator(SavedGenerator&&) noexcept;
  ~SavedGenerator();
  /// n samples (n, sample_shape...) from latents drawn with `seed`, in one piece.
  at::Tensor sample(int64_t n, uint64_t seed);
  /// The samples sample(n, seed) returns, bit for bit, generated about `batch` at a time (a multiple
  /// of 16, at least 16: see the definition for why) and handed to `consume` in order.
  void sample_in_batches(int64_t n, uint64_t seed, int64_t batch, const std::function<void(const at::Tensor&)>& consume);
  /// The images of a rows x rows lattice of the 2-D latent square (the paper's manifold picture).
  at::Tensor decode_lattice(int64_t rows);
  /// The settings of the run that trained it.
  const TrainConfig& config() const;
  /// The step it was saved at.
  int64_t step() const;

 private:
  struct State;
  explicit SavedGenerator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// Writes n samples as a float32 .npy file, streamed `batch` samples at a time; the file is
/// io::write_npy's of sample(n, seed). Errors name "out_dir" (the command's --out).
void write_samples_npy(SavedGenerator& generator, const std::string& path, int64_t n, uint64_t seed,
                       int64_t batch = kSampleBatch);

}  // namespace sinkhorn::gen
