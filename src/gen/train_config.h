// Every setting of a training run, with its JSON form (config.json and the checkpoint carry it, so
// `sinkhorn sample` and `--resume` rebuild exactly the same models).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "gen/data/training_data.h"
#include "gen/models/networks.h"
#include "sinkhorn/options.h"

namespace sinkhorn::gen {

/// An inclusive range of an integer setting.
struct IntegerRange {
  int64_t min = 0;  ///< smallest value accepted
  int64_t max = 0;  ///< largest value accepted
};

// The ranges of the integer settings, in one place: validate() enforces them on every config (typed
// on the command line, or read back from a config.json or a checkpoint), and `sinkhorn train`
// declares its options with them, so that no value passes one door and not the other. Each bound
// keeps the run's memory and time finite and every value inside its C++ type.
/// Step counts (steps, eval_every, ...): a run of 10^9 steps is years long already.
inline constexpr int64_t kMaxSteps = 1000000000;
/// The largest seed: any 63-bit value (the command line's --seed range).
inline constexpr uint64_t kMaxSeed = (uint64_t{1} << 63) - 1;
/// data.heldout: held-out samples kept in memory.
inline constexpr IntegerRange kHeldoutRange{1, 10000000};
/// generator.latent_dim.
inline constexpr IntegerRange kLatentDimRange{1, 4096};
/// generator.hidden: an MLP layer of 65536^2 weights is 16 GiB already.
inline constexpr IntegerRange kHiddenRange{1, 65536};
/// generator.width, critic.width, critic.feature_dim: channels and features.
inline constexpr IntegerRange kWidthRange{1, 4096};
/// critic_steps.
inline constexpr IntegerRange kCriticStepsRange{1, 1000};
/// batch_size: two batches of 10^6 samples.
inline constexpr IntegerRange kBatchSizeRange{2, 1000000};
/// eval_samples.
inline constexpr IntegerRange kEvalSamplesRange{2, 1000000};
/// steps: at least one (a run of none would write no checkpoint to sample or resume from).
inline constexpr IntegerRange kStepsRange{1, kMaxSteps};
/// eval_every, checkpoint_every, log_every.
inline constexpr IntegerRange kEveryRange{1, kMaxSteps};
/// sample_every (0: pictures only at the end).
inline constexpr IntegerRange kSampleEveryRange{0, kMaxSteps};
/// The loss's max_iterations and iterations (the latter at least 1).
inline constexpr IntegerRange kLossIterationsRange{0, 10000000};
/// Images: the side of an image (generator.sample_shape and critic.sample_shape are [2] for 2-D
/// points, or [C, H, W] with C 1 or 3 and H, W up to this).
inline constexpr int64_t kMaxImageSide = 1024;

/// What the loss compares: raw samples, or features of a critic trained to tell them apart.
enum class CostKind {
  fixed,    ///< the loss on raw samples
  learned,  ///< on f_phi features, f_phi trained adversarially to maximise it (Algorithm 2)
};
/// The optimiser of the generator and the critic.
enum class OptimizerKind { adam, rmsprop };
/// The generator's learning rate over a run.
enum class LearningRateSchedule {
  constant,  ///< learning_rate throughout
  cosine,    ///< from learning_rate to 5% of it along a half cosine (a function of the step)
};

/// Under torchrun, how the ranks solve a step's loss (gen/data_parallel.h).
enum class DataParallelSolve {
  automatic,  ///< from the measured latency of the group and the problem's size
  gathered,   ///< all-gather the batch once; every rank solves it whole, no per-sweep collective
  split,      ///< gathered, and the divergence's three problems solved on different ranks (one more
              ///< all-gather, of the potentials, per solve); each rank's gradients of its own rows
  sharded,    ///< each rank reduces its rows; the potentials are all-gathered every sweep
};

/// Where a step's random numbers (latents, data batches, toy samples) are drawn.
enum class DrawOn {
  host,    ///< on the CPU, then copied: a seed gives the same batches on any device
  device,  ///< on the run's device (--device): no copy per step; on a GPU, Philox streams, not the CPU's
};

/// Names, as config.json, the command line and messages write them ("fixed", "rmsprop", ...).
std::string to_string(DataParallelSolve solve);
DataParallelSolve parse_data_parallel_solve(const std::string& name, const std::string& argument);
std::string to_string(DrawOn draw_on);
DrawOn parse_draw_on(const std::string& name, const std::string& argument);
std::string to_string(CostKind cost);
std::string to_string(OptimizerKind optimizer);
std::string to_string(LearningRateSchedule schedule);
/// The value named `name`; throws sinkhorn::Error naming `argument` and the names there are.
CostKind parse_cost(const std::string& name, const std::string& argument);
OptimizerKind parse_optimizer(const std::string& name, const std::string& argument);
LearningRateSchedule parse_schedule(const std::string& name, const std::string& argument);

struct TrainConfig {
  /// The data and its held-out split.
  DataSpec data;
  /// The generator g_theta (its sample_shape is set from the data).
  GeneratorSpec generator;
  /// The loss between generated and real batches (on raw samples, or on critic features).
  SinkhornOptions loss;
  /// Raw samples (fixed) or critic features (learned, the paper's Algorithm 2).
  CostKind cost = CostKind::fixed;
  /// The critic f_phi of a learned cost (its sample_shape is set from the data).
  CriticSpec critic;
  /// Critic updates per generator update (learned cost).
  int64_t critic_steps = 5;
  /// Weight clipping bound of the critic's parameters (learned cost; 0 disables).
  double clip = 0.01;
  /// For the generator and the critic.
  OptimizerKind optimizer = OptimizerKind::adam;
  /// Generator learning rate.
  double learning_rate = 1e-3;
  /// The generator's rate over the run (a function of the step, so resume stays exact).
  LearningRateSchedule schedule = LearningRateSchedule::constant;
  /// Critic learning rate (learned cost).
  double critic_learning_rate = 5e-5;
  /// Samples per batch, generated and real alike.
  int64_t batch_size = 200;
  /// Generator updates in the whole run.
  int64_t steps = 2000;
  /// Seeds the networks' initialisation and every batch: a run is a function of its config.
  uint64_t seed = 0;
  /// Evaluate (held-out divergence) every this many steps, and at the end.
  int64_t eval_every = 100;
  /// Generated samples in each evaluation (compared with the data's held-out set).
  int64_t eval_samples = 1000;
  /// Blur of the evaluation divergence (p = 2, default tolerance); fixed so runs compare by a number.
  double eval_blur = 0.05;
  /// Write sample pictures every this many steps (0: only at the end).
  int64_t sample_every = 500;
  /// Write a checkpoint every this many steps (and at the end, and on Ctrl-C).
  int64_t checkpoint_every = 500;
  /// Append a metrics.csv row every this many steps.
  int64_t log_every = 10;
  /// The run folder.
  std::string out_dir = "runs/train";
  /// Under torchrun: how the ranks solve each step's loss. Not part of the run's maths (every
  /// choice gives the one-process loss), so a resume may change it.
  DataParallelSolve data_parallel_solve = DataParallelSolve::automatic;
  /// Where the networks, their optimisers' state, the batches and the loss live: cpu, cuda or
  /// cuda:K (config.json writes its name). Random numbers are drawn as draw_on says. Not a setting a run must keep: a resumed
  /// run may continue on another device (checkpoints are read onto the CPU, then moved), and a
  /// config.json or checkpoint without it (written before it existed) means "cpu".
  c10::Device device{c10::kCPU};
  /// Where each step's latents and batches are drawn. host: on the CPU and copied, so a run draws
  /// the same latents and data on any device. device: where the run lives, with the step's stream
  /// seeded alike (a step's draws stay a function of (seed, step), so a resume on the same device
  /// is exact), and an image set's bytes copied there once; on a GPU the streams are Philox's, so
  /// a seed gives other batches than on the CPU. Not part of what the run is: a resume may change
  /// it. The evaluations' latents are drawn on the host either way, so scores compare.
  DrawOn draw_on = DrawOn::host;
};

/// Throws sinkhorn::Error naming the first bad setting (Error::argument(): its field name here,
/// "batch_size", "learning_rate", "generator.hidden", or the loss's own "blur"; the command line
/// shows the flag): integer settings outside their range above, rates and blurs that are not
/// positive and finite, unknown names, sample shapes of no known form.
void validate(const TrainConfig& config);

/// The settings as JSON (config.json, and inside checkpoints).
std::string to_json(const TrainConfig& config);
/// Parses what to_json wrote. Throws sinkhorn::Error on malformed or incomplete JSON, and naming
/// the field (Error::argument()) on a value of the wrong JSON type: an integer setting must be a
/// JSON integer that fits its C++ type (2.5, "2" and 4294967298 for p are refused, never
/// narrowed). Call validate() for the ranges.
TrainConfig train_config_from_json(const std::string& json);

}  // namespace sinkhorn::gen
