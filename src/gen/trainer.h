// The training loop of Genevay, Peyre & Cuturi (2018): a generator g_theta is fitted by minimising a
// Sinkhorn loss between a generated batch and a data batch, with a fixed ground cost (Algorithm 1)
// or a learned one, c_phi(x, y) = |f_phi(x) - f_phi(y)|^p, f_phi trained to maximise the loss
// (Algorithm 2, after MMD GAN). It owns the run folder: config.json, metrics.csv, pictures and an
// atomically replaced checkpoint from which a run resumes exactly.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "gen/train_config.h"

namespace sinkhorn::gen {

/// What the trainer reports after each generator update.
struct StepReport {
  int64_t step = 0, steps = 0;
  double loss = 0;                       ///< the generator's loss on this step's batches
  std::optional<double> critic_loss;     ///< learned cost: the critic's last loss value (the loss it maximises)
  std::optional<double> eval_divergence; ///< set on evaluation steps
  double seconds = 0;                    ///< training time so far, across resumes
};

enum class TrainStatus {
  finished,     ///< every step done; final checkpoint and pictures written
  interrupted,  ///< the stop flag was raised; a checkpoint of the last finished step was written
  non_finite,   ///< a loss, gradient or sample was NaN/Inf; the last good checkpoint is kept
};

struct Evaluation {
  double divergence = 0;  ///< S_eps (p = 2, blur eval_blur) between generated and held-out samples
  std::optional<int64_t> modes_covered, modes;  ///< mixtures of Gaussians only
  std::optional<double> high_quality_fraction;
};

struct TrainOutcome {
  TrainStatus status = TrainStatus::finished;
  int64_t step = 0;     ///< last finished step
  std::string message;  ///< for non_finite: what went wrong, where
  /// For finished: the evaluation of the last step (unset when there was no step left to run).
  std::optional<Evaluation> evaluation;
};


/// Settings a resumed run may change; everything else comes from the checkpoint.
struct ResumeOverrides {
  /// The new total number of steps (extends or shortens the run).
  std::optional<int64_t> steps;
  /// A new generator learning rate, e.g. a smaller one after a non-finite stop.
  std::optional<double> learning_rate;
};

class Trainer {
 public:
  /// A new run in config.out_dir. Refuses a folder holding a checkpoint unless `overwrite`.
  static Trainer start(TrainConfig config, bool overwrite);
  /// Continues the run saved in out_dir exactly where its checkpoint left it.
  static Trainer resume(const std::string& out_dir, const ResumeOverrides& overrides = {});

  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;
  ~Trainer();

  /// Trains up to config().steps. Calls on_step after every update; stops cleanly (checkpoint
  /// first) when *stop becomes true.
  TrainOutcome run(const std::function<void(const StepReport&)>& on_step = {},
                   const std::atomic<bool>* stop = nullptr);

  /// The held-out evaluation of the current generator (deterministic: fixed latent sample).
  Evaluation evaluate();
  const TrainConfig& config() const;
  int64_t step() const;
  /// Copies of the generator's parameters and buffers, in registration order (for comparisons).
  std::vector<at::Tensor> generator_state() const;

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// The generator saved in a checkpoint, for drawing samples (`sinkhorn sample`).
class SavedGenerator {
 public:
  /// Loads `path` (a checkpoint.pt, or a run folder holding one); throws naming the path.
  static SavedGenerator load(const std::string& path);
  SavedGenerator(SavedGenerator&&) noexcept;
  ~SavedGenerator();
  /// n samples (n, sample_shape...) from latents drawn with `seed`.
  at::Tensor sample(int64_t n, uint64_t seed);
  /// The images of a rows x rows lattice of the 2-D latent square (the paper's manifold picture).
  at::Tensor decode_lattice(int64_t rows);
  const TrainConfig& config() const;
  int64_t step() const;

 private:
  struct State;
  explicit SavedGenerator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// The file name of a run's checkpoint inside its folder.
inline constexpr const char* kCheckpointFile = "checkpoint.pt";

}  // namespace sinkhorn::gen
