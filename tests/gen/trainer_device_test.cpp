// The trainer on a GPU (config.device): networks, optimiser state, batches and the loss on the
// device, checkpoints readable on any device. The GPU tests skip on a machine without one; the
// refusals and the config's device setting are checked everywhere.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "gen/checkpoint.h"
#include "gen/gen_test_support.h"
#include "gen/saved_generator.h"
#include "gen/small_runs.h"
#include "gen/trainer.h"
#include "io/file_bytes.h"
#include "sinkhorn/error.h"
#include "platform/devices.h"

namespace sinkhorn::gen {
namespace {

using testing::ScratchFolder;
using testing::small_run;

#define SKIP_WITHOUT_GPU() \
  if (!sinkhorn::platform::gpu_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or no CUDA in this LibTorch)"

// Runs `trainer` to its end; every step's loss must be finite, and the run must finish.
void run_to_the_end(Trainer& trainer) {
  const TrainOutcome outcome = trainer.run([](const StepReport& r) {
    EXPECT_TRUE(std::isfinite(r.loss)) << "step " << r.step;
    if (r.critic_loss) {
      EXPECT_TRUE(std::isfinite(*r.critic_loss)) << "step " << r.step;
    }
  });
  ASSERT_EQ(outcome.status, TrainStatus::finished) << outcome.message;
  ASSERT_TRUE(outcome.evaluation.has_value());
  EXPECT_TRUE(std::isfinite(outcome.evaluation->divergence));
}

void expect_finite_cpu_state(const Trainer& trainer) {
  for (const at::Tensor& tensor : trainer.generator_state()) {
    EXPECT_TRUE(tensor.device().is_cpu());
    EXPECT_TRUE(tensor.isfinite().all().item<bool>());
  }
}

TEST(TrainerDevice, TheDeviceIsASettingThatOldConfigsReadAsCpu) {
  TrainConfig c = small_run("/tmp/x");
  EXPECT_EQ(c.device.str(), "cpu");
  c.device = c10::Device("cuda:1");
  EXPECT_EQ(train_config_from_json(to_json(c)).device.str(), "cuda:1");
  // A config.json or checkpoint written before the setting existed: a CPU run.
  nlohmann::json old = nlohmann::json::parse(to_json(small_run("/tmp/x")));
  ASSERT_EQ(old.erase("device"), 1u);
  const std::string json = old.dump();
  EXPECT_EQ(train_config_from_json(json).device.str(), "cpu");
  // A device name outside the one grammar (platform/devices.h) in a saved configuration.
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "CUDA", "cuda:0:1", ""}) {
    nlohmann::json saved = nlohmann::json::parse(to_json(small_run("/tmp/x")));
    saved["device"] = bad;
    try {
      train_config_from_json(saved.dump());
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.argument(), "device") << bad;
    }
  }
  for (const char* good : {"cpu", "cuda", "cuda:0", "cuda:12"}) {
    EXPECT_TRUE(platform::parse_device_name(good).has_value()) << good;
  }
}

TEST(TrainerDevice, AGpuRunOnAMachineWithoutOneIsRefusedBeforeTheFolderIsTouched) {
  if (sinkhorn::platform::gpu_available()) GTEST_SKIP() << "this machine has a GPU";
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.device = c10::Device("cuda");
  try {
    Trainer::start(c, false);
    FAIL() << "a CUDA run started without a GPU";
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "device") << error.what();
    // Why, as the command line's --device says it: no GPU here, or the module not loadable.
    const std::string problem = error.problem();
    EXPECT_TRUE(problem.find("no GPU") != std::string::npos || problem.find("CUDA module") != std::string::npos)
        << problem;
  }
  EXPECT_FALSE(std::filesystem::exists(folder.file("run")));
  // A CPU run saved, then resumed on a GPU this machine lacks: refused, the run untouched.
  TrainConfig cpu = small_run(folder.file("cpu"));
  cpu.steps = 2;
  ASSERT_EQ(Trainer::start(cpu, false).run().status, TrainStatus::finished);
  ResumeOverrides overrides;
  overrides.steps = 4;
  overrides.device = c10::Device("cuda");
  EXPECT_THROW(Trainer::resume(folder.file("cpu"), overrides), Error);
  EXPECT_EQ(Checkpoint::read(folder.file("cpu/checkpoint.pt"), "x").step(), 2);
}

TEST(TrainerDevice, ARing8RunOnTheGpuResumesOnTheCpuAndBack) {
  SKIP_WITHOUT_GPU();
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.device = c10::Device("cuda");
  c.steps = 4;
  c.sample_every = 2;  // pictures from device tensors
  // Each trainer holds the run folder's lock until it is destroyed: one at a time.
  std::vector<at::Tensor> saved;
  {
    Trainer gpu = Trainer::start(c, false);
    run_to_the_end(gpu);
    expect_finite_cpu_state(gpu);
    saved = gpu.generator_state();
  }
  EXPECT_TRUE(io::path_exists(folder.file("run/scatter_final.png")));
  EXPECT_EQ(Checkpoint::read(folder.file("run/checkpoint.pt"), "x").config().device.str(), "cuda");

  // The checkpoint written on the GPU continues on the CPU...
  {
    ResumeOverrides to_cpu;
    to_cpu.steps = 8;
    to_cpu.device = c10::Device("cpu");
    Trainer cpu = Trainer::resume(folder.file("run"), to_cpu);
    EXPECT_EQ(cpu.step(), 4);
    EXPECT_EQ(cpu.config().device.str(), "cpu");
    // ... from exactly the weights the GPU run ended with.
    const std::vector<at::Tensor> loaded = cpu.generator_state();
    ASSERT_EQ(saved.size(), loaded.size());
    for (size_t k = 0; k < saved.size(); ++k) EXPECT_TRUE(saved[k].equal(loaded[k])) << "tensor " << k;
    run_to_the_end(cpu);
    EXPECT_EQ(cpu.step(), 8);
  }

  // ... and a CPU checkpoint (with Adam's state) continues on the GPU again.
  {
    ResumeOverrides to_gpu;
    to_gpu.steps = 10;
    to_gpu.device = c10::Device("cuda:0");
    Trainer again = Trainer::resume(folder.file("run"), to_gpu);
    run_to_the_end(again);
    expect_finite_cpu_state(again);
  }

  // The saved generator samples on either device.
  SavedGenerator on_cpu = SavedGenerator::load(folder.file("run"));
  SavedGenerator on_gpu = SavedGenerator::load(folder.file("run"), at::Device("cuda"));
  const at::Tensor a = on_cpu.sample(50, 3), b = on_gpu.sample(50, 3);
  EXPECT_TRUE(b.is_cuda());
  EXPECT_TRUE(at::allclose(a, b.cpu(), 1e-4, 1e-4));
}

// --draw-on device on a GPU: the latents and batches come from the GPU's own (Philox) streams, one
// per step as on the host, so a resume on the GPU is exact; and they are other draws than the
// host's. Toys and image sets (their bytes copied to the GPU once).
TEST(TrainerDevice, DrawingOnTheGpuResumesExactlyAndDrawsItsOwnStreams) {
  SKIP_WITHOUT_GPU();
  ScratchFolder folder;
  for (const bool images : {false, true}) {
    const std::string tag = images ? "images-" : "ring8-";
    const std::string out = folder.file(tag + "whole");
    TrainConfig c = images ? testing::small_image_run(folder, out) : small_run(out);
    // An MLP generator: the exact comparison below needs deterministic kernels, which the DCGAN's
    // transposed convolutions on cuDNN need not be.
    c.generator.architecture = "mlp";
    c.device = c10::Device("cuda");
    c.draw_on = DrawOn::device;
    c.steps = 6;
    std::vector<at::Tensor> whole;
    {
      Trainer run = Trainer::start(c, false);
      run_to_the_end(run);
      whole = run.generator_state();
    }
    TrainConfig half = c;
    half.out_dir = folder.file(tag + "split");
    half.steps = 3;
    ASSERT_EQ(Trainer::start(half, false).run().status, TrainStatus::finished);
    {
      ResumeOverrides more;
      more.steps = 6;
      Trainer resumed = Trainer::resume(half.out_dir, more);
      EXPECT_EQ(resumed.config().draw_on, DrawOn::device);
      run_to_the_end(resumed);
      const std::vector<at::Tensor> again = resumed.generator_state();
      ASSERT_EQ(whole.size(), again.size());
      for (size_t k = 0; k < whole.size(); ++k) EXPECT_TRUE(whole[k].equal(again[k])) << tag << "tensor " << k;
    }
    TrainConfig host = c;
    host.out_dir = folder.file(tag + "host");
    host.draw_on = DrawOn::host;
    Trainer drawn_on_host = Trainer::start(host, false);
    run_to_the_end(drawn_on_host);
    const std::vector<at::Tensor> other = drawn_on_host.generator_state();
    bool all_equal = true;
    for (size_t k = 0; k < whole.size(); ++k) all_equal = all_equal && whole[k].equal(other[k]);
    EXPECT_FALSE(all_equal) << tag << "the GPU's streams drew what the host's did";
  }
}

// --timings on a GPU: each phase waits for the device at its start and end, so the phases hold their own
// kernels' time and still partition the steps.
TEST(TrainerDevice, PhasesWaitingForTheGpuPartitionTheSteps) {
  SKIP_WITHOUT_GPU();
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.device = c10::Device("cuda");
  c.steps = 6;
  Trainer trainer = Trainer::start(c, false);
  trainer.time_phases_on_device(true);
  run_to_the_end(trainer);
  const StepTimings& t = trainer.timings();
  EXPECT_GT(t.generate, 0);
  EXPECT_GT(t.solve, 0);
  EXPECT_GT(t.backward, 0);
  EXPECT_GT(t.update, 0);
  EXPECT_LE(t.critic + t.generate + t.gather + t.solve + t.backward + t.reduce + t.update, t.step);
}

TEST(TrainerDevice, ALearnedCostRunWithRmspropOnTheGpuResumesOnTheCpu) {
  SKIP_WITHOUT_GPU();
  ScratchFolder folder;
  TrainConfig c = small_run(folder.file("run"));
  c.device = c10::Device("cuda");
  c.cost = CostKind::learned;
  c.critic.architecture = "mlp";
  c.critic.feature_dim = 4;
  c.critic.width = 16;
  c.critic_steps = 2;
  c.optimizer = OptimizerKind::rmsprop;
  c.steps = 3;
  {
    Trainer gpu = Trainer::start(c, false);  // releases the run folder's lock at the end of the block
    run_to_the_end(gpu);
  }
  ResumeOverrides to_cpu;
  to_cpu.steps = 5;
  to_cpu.device = c10::Device("cpu");
  Trainer cpu = Trainer::resume(folder.file("run"), to_cpu);
  run_to_the_end(cpu);
  expect_finite_cpu_state(cpu);
}

}  // namespace
}  // namespace sinkhorn::gen
