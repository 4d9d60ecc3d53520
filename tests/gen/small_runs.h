// The training configurations the trainer's tests share.
#pragma once

#include <string>

#include "gen/train_config.h"

namespace sinkhorn::testing {

/// A small, quick ring8 run: blur 0.2 keeps each Sinkhorn solve to a few dozen sweeps.
inline gen::TrainConfig small_run(const std::string& out) {
  gen::TrainConfig c;
  c.data.name = "ring8";
  c.data.heldout = 300;
  c.generator.hidden = 32;
  c.generator.latent = "gaussian";
  c.loss.blur = 0.2;
  c.batch_size = 64;
  c.learning_rate = 5e-3;
  c.steps = 8;
  c.eval_every = 100;
  c.eval_samples = 300;
  c.eval_blur = 0.1;
  c.sample_every = 0;
  c.checkpoint_every = 100;
  c.log_every = 1;
  c.out_dir = out;
  return c;
}

/// small_run ending after 2 steps with a checkpoint of about 200 KB: the full-disk tests leave room
/// for config.json and metrics.csv but not for a second such checkpoint.
inline gen::TrainConfig large_checkpoint_run(const std::string& out) {
  gen::TrainConfig c = small_run(out);
  c.generator.hidden = 128;
  c.steps = 2;
  c.checkpoint_every = 2;
  return c;
}

}  // namespace sinkhorn::testing
