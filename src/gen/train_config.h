// Every setting of a training run, with its JSON form (config.json and the checkpoint carry it, so
// `sinkhorn sample` and `--resume` rebuild exactly the same models).
#pragma once

#include <cstdint>
#include <string>

#include "gen/data/training_data.h"
#include "gen/models/networks.h"
#include "sinkhorn/options.h"

namespace sinkhorn::gen {

struct TrainConfig {
  /// The data and its held-out split.
  DataSpec data;
  /// The generator g_theta (its sample_shape is set from the data).
  GeneratorSpec generator;
  /// The loss between generated and real batches (on raw samples, or on critic features).
  SinkhornOptions loss;
  /// "fixed": the loss on raw samples; "learned": on f_phi features, f_phi trained adversarially
  /// to maximise it (the paper's Algorithm 2).
  std::string cost = "fixed";
  /// The critic f_phi of a learned cost (its sample_shape is set from the data).
  CriticSpec critic;
  /// Critic updates per generator update (learned cost).
  int64_t critic_steps = 5;
  /// Weight clipping bound of the critic's parameters (learned cost; 0 disables).
  double clip = 0.01;
  /// "adam" or "rmsprop", for the generator and the critic.
  std::string optimizer = "adam";
  /// Generator learning rate.
  double learning_rate = 1e-3;
  /// "constant", or "cosine": the generator's rate decays from learning_rate to 5% of it along a
  /// half cosine over the run (a function of the step, so resume stays exact).
  std::string schedule = "constant";
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
};

/// Throws sinkhorn::Error naming the first bad setting (Error::argument(): its field name here,
/// "batch_size", "learning_rate", or the loss's own "blur"; the command line shows the flag).
void validate(const TrainConfig& config);

std::string to_json(const TrainConfig& config);
/// Parses what to_json wrote; throws sinkhorn::Error on malformed or incomplete JSON.
TrainConfig train_config_from_json(const std::string& json);

}  // namespace sinkhorn::gen
