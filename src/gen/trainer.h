// The training loop of Genevay, Peyre & Cuturi (2018): a generator g_theta is fitted by minimising a
// Sinkhorn loss between a generated batch and a data batch, with a fixed ground cost (Algorithm 1)
// or a learned one, c_phi(x, y) = |f_phi(x) - f_phi(y)|^p, f_phi trained to maximise the loss
// (Algorithm 2, after MMD GAN). It writes the run folder (gen/run_folder.h: locked for the run's
// life): config.json, metrics.csv (gen/metrics_log.h), pictures and an atomically replaced,
// verified checkpoint (gen/checkpoint.h) from which a run resumes exactly.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gen/run_folder.h"
#include "gen/saved_generator.h"
#include "gen/train_config.h"
#include "gen/train_options.h"

namespace sinkhorn::dist {
class Group;
}

namespace sinkhorn::gen {

/// What the trainer reports after each generator update.
struct StepReport {
  int64_t step = 0;                      ///< the update just finished (1-based)
  int64_t steps = 0;                     ///< the run's total
  double loss = 0;                       ///< the generator's loss on this step's batches
  std::optional<double> critic_loss;     ///< learned cost: the critic's last loss value (the loss it maximises)
  std::optional<double> eval_divergence; ///< set on evaluation steps
  double seconds = 0;                    ///< training time so far, across resumes
  /// Problems this step met that did not stop the run (an old run's file that a commit could not
  /// remove), one line each; the command line prints them as warnings.
  std::vector<std::string> warnings;
  /// Decisions worth a line, once per run (how the ranks solve the loss under torchrun).
  std::vector<std::string> notes;
};

enum class TrainStatus {
  finished,     ///< every step done; final checkpoint and pictures written
  /// The stop flag was raised (it is read between steps and between a step's critic updates): a
  /// checkpoint of the last finished step was written, except for a new run over an old one
  /// stopped before its first step (then the old run is kept; `message`).
  interrupted,
  /// A loss, gradient or sample was NaN/Inf. The last good checkpoint is kept; a run that had
  /// written none leaves its folder as it found it (its own files removed, an old run kept).
  non_finite,
};

struct Evaluation {
  double divergence = 0;  ///< S_eps (p = 2, blur eval_blur) between generated and held-out samples
  std::optional<int64_t> modes_covered, modes;  ///< mixtures of Gaussians only
  std::optional<double> high_quality_fraction;  ///< samples within 3 std of a mode (mixtures only)
};

struct TrainOutcome {
  TrainStatus status = TrainStatus::finished;
  int64_t step = 0;     ///< last finished step
  std::string message;  ///< for non_finite: what went wrong, where; for interrupted: what was kept
  /// For finished: the evaluation of the last step (unset when there was no step left to run).
  std::optional<Evaluation> evaluation;
  /// Warnings met after the last StepReport (at the checkpoint of an interruption).
  std::vector<std::string> warnings;
};


/// Where a run's training steps spent their time (wall seconds summed over the steps run by this
/// process; evaluations, pictures and checkpoints excluded): what a user weighs before adding ranks
/// (docs/distributed.md), and the measured input of bench/data_parallel_model.py.
struct StepTimings {
  int64_t steps = 0;
  double critic = 0;    ///< the learned cost's critic updates (their solves and collectives included)
  double generate = 0;  ///< latents and the generator's forward pass
  double gather = 0;    ///< the all-gathers of a gathered or split batch (the generator's update's)
  double solve = 0;     ///< the generator's loss: the solve and its envelope gradients (a split solve's exchange included)
  double backward = 0;  ///< the generator's backward pass
  double reduce = 0;    ///< the all-reduce of the generator's gradients (and the stop request)
  double update = 0;    ///< the optimizer's step
  double step = 0;      ///< the whole steps: the phases and the checks between them
};

/// Settings a resumed run may change; everything else comes from the checkpoint.
struct ResumeOverrides {
  /// The new total number of steps (extends or shortens the run).
  std::optional<int64_t> steps;
  /// A new generator learning rate, e.g. a smaller one after a non-finite stop.
  std::optional<double> learning_rate;
  /// Another device to continue on (cpu, cuda, cuda:K); unset: the one the run was saved with.
  /// The checkpoint is read onto the CPU and moved, so a run saved on a GPU continues on a CPU.
  /// (Initialised, so that the older two-field braces {steps, learning_rate} stay warning-free.)
  std::optional<c10::Device> device = std::nullopt;
  /// The table's other settings that a resume may change (TrainOptionSpec::may_change_on_resume:
  /// "draw_on", "data_parallel_solve"), by key, as the table writes them ("device", "split").
  /// A key the table does not let a resume change is refused naming it.
  std::map<std::string, TrainValue> settings = {};
};

class Trainer {
 public:
  /// A new run in config.out_dir, which it locks for its life (RunFolder::for_new_run). Refuses a
  /// folder holding a checkpoint or other files unless `overwrite`; with it, an old run stays in
  /// place until the new one writes its first checkpoint.
  ///
  /// With a `group` (torchrun: sinkhorn/distributed.h) the ranks train one model together:
  /// batch_size stays the global batch, drawn from (seed, step) exactly as in one process; each
  /// rank generates its block of rows of it, the loss is the sharded solve's over the whole batch,
  /// and the parameter gradients are summed over the ranks, so every rank takes the same step.
  /// Rank 0 alone claims and writes the run folder; the others only compute. Every rank must call
  /// with the same settings. Batch norm, where a network has it, sees each rank's rows only.
  static Trainer start(TrainConfig config, bool overwrite, const dist::Group* group = nullptr);
  /// Continues the run saved in out_dir exactly where its checkpoint left it. Checks everything
  /// first (the lock, the checkpoint, the settings, --steps not below the saved step, metrics.csv)
  /// and writes nothing unless all is well (it only finishes a commit a killed process cut short:
  /// see RunFolder). Errors about the saved settings name the checkpoint (Error("out_dir", "'<out>/
  /// checkpoint.pt' holds settings that ...")), those about the overrides "steps" or "learning_rate".
  /// With a `group`, rank 0 resumes the folder first, then the others read its checkpoint: a run
  /// resumes with any number of ranks.
  static Trainer resume(const std::string& out_dir, const ResumeOverrides& overrides = {},
                        const dist::Group* group = nullptr);

  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;
  ~Trainer();

  /// Trains up to config().steps. Calls on_step after every update; stops cleanly (checkpoint
  /// first) when *stop becomes true. A stop inside a step's critic updates puts the critic and the
  /// generator's batch-norm statistics back as they were before the step, so the checkpoint is the
  /// last finished step's and a resume stays exact. Errors (a full disk) carry what is kept.
  TrainOutcome run(const std::function<void(const StepReport&)>& on_step = {},
                   const std::atomic<bool>* stop = nullptr);

  /// This process's step timings so far.
  const StepTimings& timings() const;
  /// With `on`, each phase of a step starts and ends by waiting for the run's device to finish its
  /// work, so that on a GPU timings() gives each phase its own kernels' time (otherwise a phase's
  /// kernels count where the host next waits), at two device synchronisations per phase. Nothing
  /// changes on the CPU. Off by default; `sinkhorn train --timings` turns it on.
  void time_phases_on_device(bool on);
  /// The held-out evaluation of the current generator (deterministic: fixed latent sample).
  Evaluation evaluate();
  /// The run's settings (the saved ones with the overrides, after a resume).
  const TrainConfig& config() const;
  /// The last finished step.
  int64_t step() const;
  /// CPU copies of the generator's parameters and buffers, in registration order (for comparisons).
  std::vector<at::Tensor> generator_state() const;
  /// What start() or resume() repaired in the run folder (a commit cut short, a metrics.csv row
  /// cut short), one line each.
  const std::vector<std::string>& repairs() const;

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  // A new run's folder: claimed, config.json, metrics.csv with the untrained generator's score.
  static void start_folder(State& state, bool overwrite);
  // Resuming in one process, or as rank 0 of a group: the folder's lock, checks, then the state.
  static Trainer resume_folder(const std::string& out_dir, const ResumeOverrides& overrides);
  std::unique_ptr<State> state_;
};

}  // namespace sinkhorn::gen
