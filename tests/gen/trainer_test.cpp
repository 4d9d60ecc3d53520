#include "gen/trainer.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "flag_names.h"
#include "gen/checkpoint.h"
#include "api/option_table.h"
#include "gen/gen_test_support.h"
#include "gen/models/networks.h"
#include "gen/recipes.h"
#include "gen/seeds.h"
#include "gen/small_runs.h"
#include "gen/train_options.h"
#include "io/file_bytes.h"
#include "io/pictures.h"
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::ScratchFolder;
using testing::small_image_run;
using testing::small_run;

// Runs `config` from the start to its end; the critic's loss at every step (NaN where it has none).
std::vector<double> critic_losses_of_run(const TrainConfig& config) {
  std::vector<double> losses;
  const TrainOutcome outcome = Trainer::start(config, false).run(
      [&](const StepReport& r) { losses.push_back(r.critic_loss.value_or(NAN)); });
  EXPECT_EQ(outcome.status, TrainStatus::finished) << outcome.message;
  return losses;
}

void expect_same_state(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(a[k].equal(b[k])) << "tensor " << k << " differs";
}

using testing::read_text;

// The trainer's finiteness probe (a bit test on the host) against ATen's isfinite, on every kind of
// value: the largest finite numbers and subnormals are finite, NaN and both infinities are not,
// wherever they sit (a strided view takes ATen's path).
TEST(AllFinite, AgreesWithIsfiniteOnEveryKindOfValue) {
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const double largest = dtype == at::kFloat ? 3.4e38 : 1.7e308;
    const double tiny = dtype == at::kFloat ? 1e-45 : 5e-324;
    at::Tensor values = at::tensor({0.0, -0.0, 1.5, -largest, largest, tiny}, at::TensorOptions().dtype(at::kDouble)).to(dtype);
    EXPECT_TRUE(all_finite(values));
    for (const double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
      for (const int64_t where : {0, 3, 5}) {
        at::Tensor broken = values.clone();
        broken[where] = bad;
        EXPECT_EQ(all_finite(broken), broken.isfinite().all().item<bool>());
        EXPECT_FALSE(all_finite(broken));
        EXPECT_FALSE(all_finite(at::stack({broken, broken}).t()));  // not contiguous
      }
    }
  }
}

TEST(TrainConfig, EverySettingIsCheckedAgainstItsTableRange) {
  // Each setting just outside its range is refused by validate() naming it, and by the JSON reader.
  for (const TrainOptionSpec& spec : train_option_table()) {
    TrainValue bad;
    if (spec.kind == TrainOptionKind::integer) {
      bad = static_cast<long long>(spec.range.max) + 1;
    } else if (spec.kind == TrainOptionKind::number) {
      bad = spec.minimum_allowed ? spec.minimum - 1 : spec.minimum;
    } else if (spec.kind == TrainOptionKind::shape) {
      bad = std::vector<int64_t>{2, 2};
    } else {
      continue;  // names are refused by set() (below); texts where they are used
    }
    if (std::string(spec.key) == "seed") bad = -1LL;  // its max is int64's
    TrainConfig c = small_run("/tmp/x");
    spec.set(c, bad);
    try {
      validate(c);
      ADD_FAILURE() << spec.key << " accepted " << to_text(bad);
    } catch (const Error& error) {
      EXPECT_EQ(error.argument(), spec.key);
    }
  }
  for (const char* key : {"cost", "optimizer", "schedule", "device"}) {
    TrainConfig c = small_run("/tmp/x");
    try {
      find_train_option(key)->set(c, std::string("nonsense"));
      ADD_FAILURE() << key << " accepted nonsense";
    } catch (const Error& error) {
      EXPECT_EQ(error.argument(), key);
    }
  }
}

TEST(TrainConfig, JsonRoundTripKeepsEverySetting) {
  TrainConfig c = small_run("/tmp/x");
  // Every loss option away from its default, from the option table: one that to_json leaves out
  // (as --cluster-scale once was) comes back at its default and fails here.
  for (const api::OptionSpec& spec : api::option_table()) spec.set(c.loss, spec.sample);
  // And every other setting, from its table (gen/train_options.h).
  for (const TrainOptionSpec& spec : train_option_table()) spec.set(c, spec.sample);
  c.seed = 12345678901234ULL;
  const std::string json = to_json(c);
  const TrainConfig restored = train_config_from_json(json);
  for (const api::OptionSpec& spec : api::option_table()) {
    EXPECT_EQ(api::to_text(spec.get(restored.loss)), api::to_text(spec.sample)) << spec.name;
  }
  for (const TrainOptionSpec& spec : train_option_table()) {
    if (std::string(spec.key) == "seed") continue;
    EXPECT_EQ(to_text(spec.get(restored)), to_text(spec.sample)) << spec.key;
  }
  EXPECT_EQ(restored.seed, 12345678901234ULL);
  EXPECT_EQ(to_json(restored), json);
  EXPECT_THROW(train_config_from_json("{\"data\": 3}"), Error);
  EXPECT_THROW(train_config_from_json("not json"), Error);
  // A run written before an option existed (or before its default changed) keeps what it had:
  // without the key, coarse_correction is off, as those runs trained; new runs have it on.
  EXPECT_TRUE(TrainConfig{}.loss.coarse_correction);
  std::string old_run = to_json(TrainConfig{});
  const size_t key = old_run.find("\"coarse_correction\": true,");
  ASSERT_NE(key, std::string::npos) << old_run;
  old_run.erase(key, std::string("\"coarse_correction\": true,").size());
  EXPECT_FALSE(train_config_from_json(old_run).loss.coarse_correction);
}

TEST(Trainer, SolvesThatStopShortAreReportedOnceAndCountedAtTheEnd) {
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.steps = 4;
  c.eval_every = 4;
  c.loss.tolerance = 1e-9;  // out of reach in 2 sweeps at the final eps
  c.loss.max_iterations = 2;
  Trainer trainer = Trainer::start(c, false);
  std::vector<std::string> step_warnings;
  const TrainOutcome outcome = trainer.run([&](const StepReport& r) {
    step_warnings.insert(step_warnings.end(), r.warnings.begin(), r.warnings.end());
  });
  ASSERT_EQ(outcome.status, TrainStatus::finished);
  ASSERT_EQ(step_warnings.size(), 1u);
  EXPECT_NE(step_warnings[0].find("step 1: a solve stopped after"), std::string::npos) << step_warnings[0];
  EXPECT_NE(step_warnings[0].find("> tolerance"), std::string::npos) << step_warnings[0];
  ASSERT_EQ(outcome.warnings.size(), 1u);
  EXPECT_NE(outcome.warnings[0].find("4 of 4 solves of this run stopped at max_iterations"), std::string::npos)
      << outcome.warnings[0];
  // A run whose solves converge says nothing.
  ScratchFolder other;
  TrainConfig quiet = small_run(other.file("run"));
  quiet.steps = 3;
  quiet.eval_every = 3;
  Trainer converging = Trainer::start(quiet, false);
  std::vector<std::string> none;
  const TrainOutcome fine = converging.run([&](const StepReport& r) { none.insert(none.end(), r.warnings.begin(), r.warnings.end()); });
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(fine.warnings.empty());
}

TEST(Trainer, ShortRunLowersTheHeldOutDivergenceAndWritesItsFolder) {
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.steps = 150;
  c.eval_every = 150;
  c.sample_every = 150;
  c.log_every = 10;
  Trainer trainer = Trainer::start(c, false);
  const double initial = trainer.evaluate().divergence;
  double first_losses = 0, last_losses = 0;
  const TrainOutcome outcome = trainer.run([&](const StepReport& r) {
    if (r.step <= 10) first_losses += r.loss;
    if (r.step > 140) last_losses += r.loss;
  });
  ASSERT_EQ(outcome.status, TrainStatus::finished);
  EXPECT_EQ(trainer.step(), 150);
  const Evaluation final_evaluation = trainer.evaluate();
  EXPECT_LT(final_evaluation.divergence, 0.5 * initial);
  EXPECT_LT(last_losses, 0.5 * first_losses);
  ASSERT_TRUE(final_evaluation.modes.has_value());
  EXPECT_EQ(*final_evaluation.modes, 8);

  const std::string metrics = read_text(folder.file("run/metrics.csv"));
  EXPECT_EQ(metrics.rfind("step,loss,critic_loss,seconds,eval_divergence", 0), 0u);
  EXPECT_NE(metrics.find("\n0,,"), std::string::npos);  // the untrained generator's evaluation
  EXPECT_NE(metrics.find("\n150,"), std::string::npos);
  EXPECT_EQ(train_config_from_json(read_text(folder.file("run/config.json"))).steps, 150);
  const io::Image scatter = io::read_png(folder.file("run/scatter_final.png"));
  EXPECT_EQ(scatter.channels, 3);
  EXPECT_TRUE(io::path_exists(folder.file("run/scatter_000150.png")));
  EXPECT_TRUE(io::path_exists(folder.file("run/checkpoint.pt")));
  EXPECT_FALSE(io::path_exists(folder.file("run/checkpoint.pt.tmp")));

  // A second start in the same folder must not silently destroy the run.
  EXPECT_THROW(Trainer::start(c, false), Error);
}

TEST(Trainer, ResumedRunEndsWithExactlyTheParametersOfAnUninterruptedOne) {
  ScratchFolder folder;
  Trainer whole = Trainer::start(small_run(folder.file("whole")), false);
  ASSERT_EQ(whole.run().status, TrainStatus::finished);

  TrainConfig half = small_run(folder.file("split"));
  half.steps = 4;
  ASSERT_EQ(Trainer::start(half, false).run().status, TrainStatus::finished);
  Trainer resumed = Trainer::resume(folder.file("split"), {8, std::nullopt});
  EXPECT_EQ(resumed.step(), 4);
  ASSERT_EQ(resumed.run().status, TrainStatus::finished);
  expect_same_state(whole.generator_state(), resumed.generator_state());
  // metrics.csv reads as one run: every step once.
  const std::string metrics = read_text(folder.file("split/metrics.csv"));
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 1 + 1 + 8);
}

// --draw-on device: a step's generator is the default generator of the run's device, cloned and
// reseeded. On the CPU that must be the host stream exactly, whatever the default generator drew
// before (a reseed restarts the twister and drops a cached Gaussian), or CPU runs would depend on
// what else the process drew.
TEST(StepStreams, ADeviceStreamOnTheCpuDrawsWhatTheHostStreamDraws) {
  at::Generator default_generator = at::globalContext().defaultGenerator(at::kCPU);
  const uint64_t kept_seed = default_generator.current_seed();
  for (const uint64_t stream : {uint64_t{1}, uint64_t{2}, uint64_t{977}, kEvaluationStream}) {
    // The default generator in another state each time, with Gaussians drawn one at a time (fewer
    // than 16 numbers), so that one may be cached.
    at::manual_seed(stream + 5);
    at::randn({3});
    at::Generator host = generator_for(42, stream), device = generator_for(42, stream, at::kCPU);
    EXPECT_TRUE(at::randn({3}, host).equal(at::randn({3}, device))) << stream;
    EXPECT_TRUE(at::rand({40}, host).equal(at::rand({40}, device))) << stream;
    EXPECT_TRUE(at::randint(1000, {9}, host, at::kLong).equal(at::randint(1000, {9}, device, at::kLong))) << stream;
  }
  // Streams of different steps or seeds differ.
  at::Generator a = generator_for(42, 1, at::kCPU), b = generator_for(42, 2, at::kCPU), c = generator_for(43, 1, at::kCPU);
  const at::Tensor first = at::rand({8}, a);
  EXPECT_FALSE(first.equal(at::rand({8}, b)));
  EXPECT_FALSE(first.equal(at::rand({8}, c)));
  at::manual_seed(kept_seed);
}

// On the CPU, drawing "on the device" is drawing on the host: the same run, step for step, for a
// toy (the mixture's centres placed once) and an image set (its bytes placed once).
TEST(Trainer, DrawingOnTheDeviceOfACpuRunIsTheHostRun) {
  ScratchFolder folder;
  for (const bool images : {false, true}) {
    const std::string tag = images ? "images-" : "ring8-";
    TrainConfig host = images ? small_image_run(folder, folder.file(tag + "host")) : small_run(folder.file(tag + "host"));
    host.steps = 4;
    TrainConfig device = host;
    device.out_dir = folder.file(tag + "device");
    device.draw_on = DrawOn::device;
    std::vector<double> host_losses, device_losses;
    Trainer a = Trainer::start(host, false);
    ASSERT_EQ(a.run([&](const StepReport& r) { host_losses.push_back(r.loss); }).status, TrainStatus::finished);
    Trainer b = Trainer::start(device, false);
    ASSERT_EQ(b.run([&](const StepReport& r) { device_losses.push_back(r.loss); }).status, TrainStatus::finished);
    EXPECT_EQ(host_losses, device_losses) << tag;
    expect_same_state(a.generator_state(), b.generator_state());
    EXPECT_EQ(train_config_from_json(read_text(folder.file(tag + "device/config.json"))).draw_on, DrawOn::device);
  }
}

// StepTimings: the phases partition a step, nothing counted twice (a learned cost's critic updates
// count their own solves, which the generator's solve phase then leaves out), so their sum stays
// within the steps' wall time; and asking for device waits changes nothing on the CPU.
TEST(Trainer, StepTimingsCountEachPhaseOnce) {
  ScratchFolder folder;
  for (const bool learned : {false, true}) {
    TrainConfig c = small_run(folder.file(learned ? "learned" : "fixed"));
    c.steps = 4;
    if (learned) {
      c.cost = CostKind::learned;
      c.critic.architecture = "mlp";
      c.critic_steps = 3;
    }
    Trainer trainer = Trainer::start(c, false);
    trainer.time_phases_on_device(true);
    ASSERT_EQ(trainer.run().status, TrainStatus::finished);
    const StepTimings& t = trainer.timings();
    EXPECT_EQ(t.steps, 4);
    const double phases = t.critic + t.generate + t.gather + t.solve + t.backward + t.reduce + t.update;
    EXPECT_GT(t.solve, 0);
    EXPECT_GT(t.generate, 0);
    EXPECT_EQ(t.critic > 0, learned);
    // Each phase's interval lies inside its step's and apart from the others': a phase counted
    // twice (the critic's solves also in the solve phase) can push the sum past the steps' time.
    EXPECT_LE(phases, t.step);
  }
}

TEST(Trainer, InterruptedRunSavesACheckpointAndResumesExactly) {
  ScratchFolder folder;
  Trainer whole = Trainer::start(small_run(folder.file("whole")), false);
  whole.run();

  {
    // Its own scope: the run holds its folder's lock until it is destroyed.
    Trainer interrupted = Trainer::start(small_run(folder.file("stopped")), false);
    std::atomic<bool> stop{false};
    const TrainOutcome outcome = interrupted.run([&](const StepReport& r) { stop = r.step == 3; }, &stop);
    EXPECT_EQ(outcome.status, TrainStatus::interrupted);
    EXPECT_EQ(outcome.step, 3);
  }
  Trainer resumed = Trainer::resume(folder.file("stopped"));
  EXPECT_EQ(resumed.step(), 3);
  resumed.run();
  expect_same_state(whole.generator_state(), resumed.generator_state());
}

TEST(Trainer, LearnedCostAndBatchNormResumeExactly) {
  ScratchFolder folder;
  for (const bool images : {false, true}) {
    SCOPED_TRACE(images ? "dcgan on images" : "learned cost on ring8");
    auto config = [&](const std::string& name, int64_t steps) {
      TrainConfig c = images ? small_image_run(folder, folder.file(name)) : small_run(folder.file(name));
      if (!images) {
        c.cost = CostKind::learned;
        c.optimizer = OptimizerKind::rmsprop;
        c.critic.width = 16;
        c.critic.feature_dim = 4;
        c.critic_steps = 2;
        c.critic_learning_rate = 1e-3;
        c.clip = 0.05;
      }
      c.steps = steps;
      return c;
    };
    const std::string tag = images ? "i" : "l";
    Trainer whole = Trainer::start(config(tag + "whole", 6), false);
    ASSERT_EQ(whole.run().status, TrainStatus::finished);
    ASSERT_EQ(Trainer::start(config(tag + "split", 3), false).run().status, TrainStatus::finished);
    Trainer resumed = Trainer::resume(folder.file(tag + "split"), {6, std::nullopt});
    ASSERT_EQ(resumed.run().status, TrainStatus::finished);
    expect_same_state(whole.generator_state(), resumed.generator_state());
    if (images) {
      EXPECT_TRUE(io::path_exists(folder.file(tag + "whole/samples_final.png")));
    }
  }
}

TEST(Trainer, ThePapersUnrolledLossTrains) {
  // E_eps with L = 10 unrolled iterations (the paper's Algorithm 1): autograd through the loop.
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.loss.loss = Loss::primal;
  c.loss.gradient = GradientMode::unrolled;
  c.loss.iterations = 10;
  c.loss.blur = 0.5;
  c.steps = 60;
  Trainer trainer = Trainer::start(c, false);
  const double initial = trainer.evaluate().divergence;
  ASSERT_EQ(trainer.run().status, TrainStatus::finished);
  EXPECT_LT(trainer.evaluate().divergence, 0.5 * initial);
}

TEST(Trainer, LearnedCostWithDcganCriticOnCifarShapedImages) {
  ScratchFolder folder;
  // 12 CIFAR-10 records (label byte + 3 planes of 32 x 32) with varied pixels.
  std::vector<uint8_t> bytes;
  for (int k = 0; k < 12; ++k) {
    bytes.push_back(static_cast<uint8_t>(k % 10));
    for (int i = 0; i < 3 * 1024; ++i) bytes.push_back(static_cast<uint8_t>((k * 53 + i * 7) % 256));
  }
  testing::write_bytes(folder.file("data_batch.bin"), bytes);
  TrainConfig c = small_run(folder.file("run"));
  c.data.name = "cifar10";
  c.data.path = folder.file("data_batch.bin");
  c.data.heldout = 4;
  c.generator.architecture = "dcgan";
  c.generator.width = 4;
  c.generator.latent_dim = 8;
  c.cost = CostKind::learned;
  c.critic.architecture = "dcgan";
  c.critic.width = 4;
  c.critic.feature_dim = 8;
  c.critic_steps = 2;
  c.optimizer = OptimizerKind::rmsprop;
  c.batch_size = 4;
  c.steps = 3;
  c.eval_samples = 4;
  c.eval_blur = 10;
  const std::vector<double> critic_losses = critic_losses_of_run(c);
  ASSERT_EQ(critic_losses.size(), 3u);
  for (double value : critic_losses) EXPECT_TRUE(std::isfinite(value));
  const io::Image grid = io::read_png(folder.file("run/samples_final.png"));
  EXPECT_EQ(grid.channels, 3);
  EXPECT_EQ(grid.width, 2 + 2 * (32 + 2));  // 4 samples: a 2 x 2 grid of 32 x 32 RGB images
  SavedGenerator saved = SavedGenerator::load(folder.file("run"));
  EXPECT_EQ(saved.sample(2, 0).sizes(), at::IntArrayRef({2, 3, 32, 32}));
}

TEST(Trainer, TheCriticAscendsTheLossItLearnsForBothLosses) {
  // Algorithm 2's critic maximises the loss: with the generator all but frozen (lr 1e-12), the
  // loss the critic reports must grow for the Sinkhorn divergence and for the MMD baseline alike;
  // a sign slip in the critic update would shrink it instead.
  ScratchFolder folder;
  for (const Loss loss : {Loss::divergence, Loss::gaussian_mixture}) {
    SCOPED_TRACE(loss == Loss::divergence ? "divergence" : "gaussian_mixture");
    TrainConfig c = small_run(folder.file(loss == Loss::divergence ? "s" : "m"));
    c.cost = CostKind::learned;
    c.optimizer = OptimizerKind::rmsprop;
    c.loss.loss = loss;
    c.loss.blur = 0.05;
    c.loss.p = 1;
    c.critic.width = 16;
    c.critic.feature_dim = 4;
    c.critic_steps = 2;
    c.critic_learning_rate = 1e-3;
    c.learning_rate = 1e-12;
    c.clip = 0.05;
    c.steps = 40;
    const std::vector<double> critic_losses = critic_losses_of_run(c);
    ASSERT_EQ(critic_losses.size(), 40u);
    double first = 0, last = 0;
    for (int k = 0; k < 5; ++k) {
      first += critic_losses[k];
      last += critic_losses[35 + k];
    }
    EXPECT_GT(last, 2 * first) << "first five " << first / 5 << ", last five " << last / 5;
  }
}

TEST(Trainer, TheLearnedCostExperimentsConfigurationRunsOnMnistShapedImages) {
  // experiments/learned_cost.sh at toy size: DCGAN generator and critic on 28 x 28 digits, the
  // MMD baseline's Gaussian-mixture loss on the critic's features, RMSprop, clipping.
  ScratchFolder folder;
  TrainConfig c = small_image_run(folder, folder.file("run"));
  c.cost = CostKind::learned;
  c.critic.architecture = "dcgan";
  c.critic.width = 4;
  c.critic.feature_dim = 16;
  c.critic_steps = 2;
  c.optimizer = OptimizerKind::rmsprop;
  c.learning_rate = 5e-4;
  c.critic_learning_rate = 5e-4;
  c.clip = 0.01;
  c.loss.loss = Loss::gaussian_mixture;
  c.loss.p = 1;
  c.loss.blur = 0.05;
  c.steps = 3;
  const std::vector<double> critic_losses = critic_losses_of_run(c);
  ASSERT_EQ(critic_losses.size(), 3u);
  for (double value : critic_losses) EXPECT_TRUE(std::isfinite(value) && value >= 0) << value;
  const io::Image grid = io::read_png(folder.file("run/samples_final.png"));
  EXPECT_EQ(grid.channels, 1);
  EXPECT_EQ(grid.width, 2 + 3 * (28 + 2));  // 8 samples: 3 columns of 28 x 28 digits
}

TEST(Trainer, NonFiniteValuesStopTheRunAndKeepTheLastGoodCheckpoint) {
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.checkpoint_every = 1;
  c.steps = 3;
  ASSERT_EQ(Trainer::start(c, false).run().status, TrainStatus::finished);
  // Resumed with an absurd learning rate, the first update throws the outputs to infinity.
  Trainer trainer = Trainer::resume(folder.file("run"), {20, 1e30});
  EXPECT_EQ(trainer.config().learning_rate, 1e30);
  const TrainOutcome outcome = trainer.run();
  ASSERT_EQ(outcome.status, TrainStatus::non_finite);
  EXPECT_EQ(outcome.step, 3);
  EXPECT_NE(outcome.message.find("step 4: "), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("non-finite"), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("checkpoint.pt"), std::string::npos) << outcome.message;
  // The checkpoint left behind is step 3's, and its generator is sound.
  SavedGenerator saved = SavedGenerator::load(folder.file("run"));
  EXPECT_EQ(saved.step(), 3);
  EXPECT_TRUE(saved.sample(16, 0).isfinite().all().item<bool>());

  // From scratch with that rate there is no good checkpoint at all, and the message says so.
  c.out_dir = folder.file("fresh");
  c.learning_rate = 1e30;
  {
    Trainer fresh = Trainer::start(c, false);
    const TrainOutcome fresh_outcome = fresh.run();
    ASSERT_EQ(fresh_outcome.status, TrainStatus::non_finite);
    EXPECT_NE(fresh_outcome.message.find("no checkpoint was written; the run's files were removed, leaving " +
                                         c.out_dir + " as it was (start again with a smaller --lr)"),
              std::string::npos)
        << fresh_outcome.message;
    EXPECT_EQ(fresh_outcome.message.find("--resume"), std::string::npos) << fresh_outcome.message;
  }
  // The folder is as the run found it: empty, so a new start needs no --overwrite.
  EXPECT_TRUE(std::filesystem::is_empty(c.out_dir));
  c.learning_rate = 5e-3;
  EXPECT_NO_THROW(Trainer::start(c, false));
}

TEST(SavedGenerator, SamplesTheTrainedGeneratorReproducibly) {
  ScratchFolder folder;
  Trainer::start(small_run(folder.file("run")), false).run();
  SavedGenerator saved = SavedGenerator::load(folder.file("run/checkpoint.pt"));
  EXPECT_EQ(saved.step(), 8);
  const at::Tensor a = saved.sample(16, 1);
  EXPECT_EQ(a.sizes(), at::IntArrayRef({16, 2}));
  EXPECT_TRUE(a.equal(saved.sample(16, 1)));
  EXPECT_FALSE(a.equal(saved.sample(16, 2)));
  testing::write_bytes(folder.file("bad.pt"), {1, 2, 3});
  EXPECT_THROW(SavedGenerator::load(folder.file("bad.pt")), Error);
  EXPECT_THROW(SavedGenerator::load(folder.file("missing.pt")), Error);
  EXPECT_THROW(Trainer::resume(folder.file("nothing-here")), Error);
  // A damaged metrics.csv is reported, not a crash.
  std::ofstream(folder.file("run/metrics.csv"), std::ios::app) << "garbage line\n";
  try {
    Trainer::resume(folder.file("run"));
    FAIL() << "a malformed metrics.csv should be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("malformed row: 'garbage line'"), std::string::npos) << error.what();
  }
}

TEST(Trainer, BadSettingsFailNamingTheFlag) {
  ScratchFolder folder;
  auto message_of = [&](const std::function<void(TrainConfig&)>& change) -> std::string {
    TrainConfig c = small_run(folder.file("bad"));
    try {
      change(c);
      Trainer::start(c, true);
    } catch (const Error& error) {
      return cli::message_for(error);  // as the command line says it
    }
    return "no error";
  };
  EXPECT_NE(message_of([](TrainConfig& c) { c.data.name = "imagenet"; }).find("--data"), std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { c.data.name = "mnist"; }).find("--data-path"), std::string::npos);
  for (const char* images : {"mnist", "cifar10"}) {
    const std::string message = message_of([&](TrainConfig& c) {
      c.data.name = images;
      c.data.path = "/no/such/folder";
    });
    EXPECT_NE(message.find("--data-path '/no/such/folder' does not exist"), std::string::npos) << message;
  }
  EXPECT_NE(message_of([](TrainConfig& c) { c.batch_size = 1; }).find("--batch-size"), std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { c.loss.blur = -1; }).find("--blur"), std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { find_train_option("cost")->set(c, std::string("random")); })
                .find("--cost must be one of fixed, learned, got 'random'"),
            std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { find_train_option("draw_on")->set(c, std::string("gpu")); })
                .find("--draw-on must be one of host, device, got 'gpu'"),
            std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { c.generator.architecture = "dcgan"; }).find("--generator dcgan"),
            std::string::npos);
  EXPECT_NE(message_of([](TrainConfig& c) { c.learning_rate = 0; }).find("--lr"), std::string::npos);
}

TEST(Trainer, AStopBetweenCriticUpdatesCheckpointsTheLastFinishedStepExactly) {
  // A learned cost with many critic updates per step and a batch-norm generator (its running
  // statistics move while the critic's batches are generated): a stop request lands inside a
  // step's critic updates almost always, and the checkpoint must still be the last finished
  // step's, so that the resumed run ends where an uninterrupted one does.
  ScratchFolder folder;
  auto config = [&](const std::string& name) {
    TrainConfig c = small_image_run(folder, folder.file(name));
    c.cost = CostKind::learned;
    c.optimizer = OptimizerKind::rmsprop;
    c.critic.architecture = "dcgan";
    c.critic.width = 4;
    c.critic.feature_dim = 4;
    c.critic_steps = 60;
    c.critic_learning_rate = 1e-3;
    c.steps = 3;
    return c;
  };
  Trainer whole = Trainer::start(config("whole"), false);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(whole.run().status, TrainStatus::finished);
  const auto step_time = (std::chrono::steady_clock::now() - started) / 3;
  {
    Trainer stopped = Trainer::start(config("stopped"), false);
    std::atomic<bool> stop{false};
    // Half way through the second step's critic updates.
    std::thread stopper([&] {
      std::this_thread::sleep_for(step_time * 3 / 2);
      stop = true;
    });
    const TrainOutcome outcome = stopped.run({}, &stop);
    stopper.join();
    ASSERT_EQ(outcome.status, TrainStatus::interrupted);
    EXPECT_LT(outcome.step, 3);
  }
  Trainer resumed = Trainer::resume(folder.file("stopped"));
  ASSERT_EQ(resumed.run().status, TrainStatus::finished);
  expect_same_state(whole.generator_state(), resumed.generator_state());
  // The critic too: the next step of each would differ otherwise. Compare the checkpoints' critics.
  const at::Tensor probe = at::rand({4, 1, 28, 28}, at::TensorOptions().dtype(at::kFloat));
  const auto critic_of = [&](const std::string& name) {
    const Checkpoint checkpoint = Checkpoint::read(folder.file(name + "/checkpoint.pt"), "checkpoint");
    Critic critic{nullptr};
    construct_seeded(0, [&] { critic = Critic(checkpoint.config().critic); });
    checkpoint.load_module("critic", *critic);
    torch::NoGradGuard no_grad;
    return critic->forward(probe);
  };
  EXPECT_TRUE(critic_of("whole").equal(critic_of("stopped")));
}

TEST(Trainer, ResumeNamesTheCheckpointWhenItsSavedSettingsNoLongerWork) {
  ScratchFolder folder;
  TrainConfig c = small_image_run(folder, folder.file("run"));
  c.data.path = folder.file("digits");
  std::filesystem::create_directories(c.data.path);
  std::filesystem::rename(folder.file("train-images-idx3-ubyte"), c.data.path + "/train-images-idx3-ubyte");
  c.steps = 1;
  ASSERT_EQ(Trainer::start(c, false).run().status, TrainStatus::finished);
  testing::remove_tree(c.data.path);
  try {
    Trainer::resume(folder.file("run"), {2, std::nullopt});
    FAIL() << "a resume whose data is gone should be refused";
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "out_dir");
    EXPECT_EQ(error.problem(), "'" + folder.file("run/checkpoint.pt") + "' holds settings that cannot be used now: "
                                   "data.path '" + c.data.path + "' does not exist");
    EXPECT_EQ(cli::message_for(error).rfind("--out '", 0), 0u) << cli::message_for(error);
  }
}

TEST(TrainConfig, NumbersOutsideTheirTypeOrRangeAreRefusedNeverNarrowed) {
  const std::string json = to_json(small_run("/tmp/x"));
  auto changed = [&](const std::string& from, const std::string& to) {
    std::string text = json;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
  };
  auto error_of = [](const std::string& text) -> std::string {
    try {
      validate(train_config_from_json(text));
    } catch (const Error& error) {
      return error.argument() + " | " + error.problem();
    }
    return "no error";
  };
  EXPECT_EQ(error_of(json), "no error");
  EXPECT_EQ(error_of(changed("\"p\": 2", "\"p\": 4294967298")), "p | must be between 1 and 2, got 4294967298");
  EXPECT_EQ(error_of(changed("\"hidden\": 32", "\"hidden\": 2.5")), "generator.hidden | must be an integer, got 2.5");
  EXPECT_EQ(error_of(changed("\"hidden\": 32", "\"hidden\": 100000")),
            "generator.hidden | must be between 1 and 65536, got 100000");
  EXPECT_EQ(error_of(changed("\"batch_size\": 64", "\"batch_size\": \"64\"")),
            "batch_size | must be an integer, got \"64\"");
  EXPECT_EQ(error_of(changed("\"seed\": 0", "\"seed\": -1")), "seed | must be between 0 and 9223372036854775807, got -1");
  EXPECT_EQ(error_of(changed("\"seed\": 0", "\"seed\": 18446744073709551615")),
            "seed | is too large, got 18446744073709551615");
  EXPECT_EQ(error_of(changed("\"max_iterations\": 1000", "\"max_iterations\": 2147483648")),
            "max_iterations | must be between 0 and 10000000, got 2147483648");
  EXPECT_EQ(error_of(changed("\"learning_rate\": 0.005", "\"learning_rate\": true")),
            "learning_rate | must be a number, got true");
  // The critic's shape comes first in the JSON (its keys are sorted), the generator's second.
  const std::string shape = "[\n      2\n    ]";
  const std::string negative = changed(shape, "[-1, -1]");
  EXPECT_EQ(error_of(negative), "critic.sample_shape | must be [2] (2-D points) or [C, H, W] (images: C 1 or 3, "
                                "sides 1 to 1024), got [-1, -1]");
  const size_t second = negative.find(shape);
  ASSERT_NE(second, std::string::npos);
  EXPECT_EQ(error_of(std::string(negative).replace(second, shape.size(), "[-1, -1]")),
            "generator.sample_shape | must be [2] (2-D points) or [C, H, W] (images: C 1 or 3, sides 1 to 1024), got "
            "[-1, -1]");
  EXPECT_EQ(error_of(changed(shape, "[1, 28, 28]")), "critic.sample_shape | must be the generator's [2], got [1, 28, 28]");
}

TEST(Recipes, AreWhatTheCommandLineStartsFrom) {
  struct Expected {
    const char* data;
    const char* cost;
    const char* generator;
    int64_t latent_dim;
    const char* latent;
    int64_t hidden;
    const char* activation;
    double blur;
    int p;
    const char* critic;
    const char* optimizer;
    double learning_rate;
    const char* schedule;
    double eval_blur;
  };
  // The values `sinkhorn train` chose before its defaults moved to gen/recipes.cpp.
  const std::vector<Expected> recipes{
      {"ring8", "fixed", "mlp", 2, "gaussian", 128, "relu", 0.1, 2, "mlp", "adam", 5e-3, "cosine", 0.05},
      {"grid25", "learned", "mlp", 2, "gaussian", 128, "relu", 0.1, 1, "mlp", "rmsprop", 5e-5, "constant", 0.05},
      {"mnist", "fixed", "mlp", 2, "uniform", 500, "softplus", 1.0, 2, "dcgan", "adam", 1e-3, "constant", 1.0},
      {"mnist", "learned", "mlp", 2, "uniform", 500, "softplus", 0.05, 1, "dcgan", "rmsprop", 5e-5, "constant", 1.0},
      {"cifar10", "fixed", "dcgan", 100, "uniform", 500, "softplus", 1.0, 2, "dcgan", "adam", 1e-3, "constant", 1.0},
      {"cifar10", "learned", "dcgan", 100, "uniform", 500, "softplus", 0.05, 1, "dcgan", "rmsprop", 5e-5, "constant",
       1.0},
  };
  for (const Expected& e : recipes) {
    SCOPED_TRACE(std::string(e.data) + " " + e.cost);
    const TrainConfig c = recipe_for(e.data, parse_cost(e.cost, "cost"));
    EXPECT_EQ(c.data.name, e.data);
    EXPECT_EQ(c.data.path, "");
    EXPECT_EQ(c.data.split, "train");
    EXPECT_EQ(c.data.heldout, 1000);
    EXPECT_EQ(to_string(c.cost), e.cost);
    EXPECT_EQ(c.generator.architecture, e.generator);
    EXPECT_EQ(c.generator.latent_dim, e.latent_dim);
    EXPECT_EQ(c.generator.latent, e.latent);
    EXPECT_EQ(c.generator.hidden, e.hidden);
    EXPECT_EQ(c.generator.activation, e.activation);
    EXPECT_EQ(c.generator.width, 64);
    SinkhornOptions loss;  // the library's defaults, but for these three
    loss.blur = e.blur;
    loss.p = e.p;
    loss.tolerance = 1e-3;
    TrainConfig expected_loss = c;
    expected_loss.loss = loss;
    EXPECT_EQ(to_json(c), to_json(expected_loss));
    EXPECT_EQ(c.critic.architecture, e.critic);
    EXPECT_EQ(c.critic.feature_dim, 16);
    EXPECT_EQ(c.critic.width, 64);
    EXPECT_EQ(c.critic_steps, 5);
    EXPECT_EQ(c.clip, 0.01);
    EXPECT_EQ(c.critic_learning_rate, 5e-5);
    EXPECT_EQ(to_string(c.optimizer), e.optimizer);
    EXPECT_EQ(c.learning_rate, e.learning_rate);
    EXPECT_EQ(to_string(c.schedule), e.schedule);
    EXPECT_EQ(c.batch_size, 200);
    EXPECT_EQ(c.steps, 2000);
    EXPECT_EQ(c.seed, 0u);
    EXPECT_EQ(c.eval_every, 100);
    EXPECT_EQ(c.eval_samples, 1000);
    EXPECT_EQ(c.eval_blur, e.eval_blur);
    EXPECT_EQ(c.sample_every, 500);
    EXPECT_EQ(c.checkpoint_every, 500);
    EXPECT_EQ(c.log_every, 10);
    EXPECT_EQ(c.out_dir, std::string("runs/") + e.data);
  }
}

}  // namespace
}  // namespace sinkhorn::gen
