// The training configurations the trainer's tests share.
#pragma once

#include <string>

#include "gen/gen_test_support.h"
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

// An image run on 40 hand-made 28 x 28 images written into `folder`: a DCGAN generator with batch
// norm (its running statistics are buffers that a resume must restore too).
inline gen::TrainConfig small_image_run(const ScratchFolder& folder, const std::string& out) {
  write_bytes(folder.file("train-images-idx3-ubyte"), idx_bytes({40, 28, 28}, patterned_pixels(40)));
  gen::TrainConfig c = small_run(out);
  c.data.name = "mnist";
  c.data.path = folder.path();
  c.data.heldout = 8;
  c.generator.architecture = "dcgan";
  c.generator.width = 4;
  c.generator.latent_dim = 3;
  c.loss.blur = 5.0;
  c.batch_size = 8;
  c.steps = 6;
  c.eval_samples = 8;
  c.eval_blur = 5.0;
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
