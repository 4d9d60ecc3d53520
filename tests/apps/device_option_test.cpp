// --device of `sinkhorn train` and `sinkhorn sample` (the parsing `sinkhorn divergence` shares):
// refusals everywhere; on a machine with a GPU, ring8 and MNIST runs on it that resume on the CPU.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/command_test_support.h"
#include "cli.h"
#include "gen/checkpoint.h"
#include "gen/gen_test_support.h"
#include "io/array_io.h"
#include "io/pictures.h"
#include "platform/devices.h"

namespace sinkhorn::cli {
namespace {

namespace fs = std::filesystem;

class DeviceOption : public CommandTest {
 protected:
  std::vector<std::string> quick_train(const std::string& folder, int steps, const std::string& device) const {
    std::vector<std::string> args = CommandTest::quick_train(folder, steps);
    args.insert(args.end(), {"--device", device});
    return args;
  }

  // Exit status 2 and one line, "sinkhorn <command>: error: --device ...".
  void expect_device_error(const std::vector<std::string>& args, const std::string& fragment) {
    expect_error(args, fragment);
    EXPECT_EQ(err.str().rfind("sinkhorn " + args[0] + ": error: --device", 0), 0u) << err.str();
  }

  // The metrics.csv loss column: every row after step 0 holds a finite loss.
  void expect_finite_losses(const std::string& folder, int rows) {
    std::ifstream file(path(folder) + "/metrics.csv");
    std::string line;
    std::getline(file, line);  // header: step,loss,...
    int seen = 0;
    while (std::getline(file, line)) {
      const size_t comma = line.find(',');
      const std::string loss = line.substr(comma + 1, line.find(',', comma + 1) - comma - 1);
      if (line.rfind("0,", 0) == 0) continue;  // the untrained generator's evaluation: no loss
      ++seen;
      EXPECT_TRUE(std::isfinite(std::stod(loss))) << line;
    }
    EXPECT_EQ(seen, rows);
  }

};

TEST_F(DeviceOption, BadNamesAreRefusedNamingTheOption) {
  expect_device_error(quick_train("run", 2, "bogus"), "bogus");
  expect_device_error(quick_train("run", 2, "cuda:x"), "cuda:x");
  EXPECT_FALSE(fs::exists(path("run")));
  ASSERT_EQ(run_command(quick_train("run", 2, "cpu")), 0) << err.str();
  expect_device_error({"train", "--resume", "--out", path("run"), "--steps", "3", "--device", "bogus"}, "bogus");
  expect_device_error({"sample", "--checkpoint", path("run"), "--out", path("s.npy"), "--device", "bogus"}, "bogus");
}

TEST_F(DeviceOption, CudaWithoutAGpuIsRefusedNamingTheOption) {
  if (sinkhorn::platform::gpu_available()) GTEST_SKIP() << "this machine has a GPU";
  expect_device_error(quick_train("run", 2, "cuda"), "GPU");
  expect_device_error(quick_train("run", 2, "cuda:1"), "GPU");
  EXPECT_FALSE(fs::exists(path("run")));
  ASSERT_EQ(run_command(quick_train("run", 2, "cpu")), 0) << err.str();
  const auto before = sinkhorn::testing::file_digests(path("run"));
  expect_device_error({"train", "--resume", "--out", path("run"), "--steps", "3", "--device", "cuda"}, "GPU");
  EXPECT_EQ(sinkhorn::testing::file_digests(path("run")), before);
  expect_device_error({"sample", "--checkpoint", path("run"), "--out", path("s.npy"), "--device", "cuda"}, "GPU");
}

TEST_F(DeviceOption, ARing8RunOnTheGpuResumesOnTheCpu) {
  if (!sinkhorn::platform::gpu_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or no CUDA in this LibTorch)";
  ASSERT_EQ(run_command(quick_train("run", 4, "cuda")), 0) << err.str();
  EXPECT_NE(out.str().find(" on cuda"), std::string::npos) << out.str();
  expect_finite_losses("run", 2);  // rows at the evaluations (--eval-every 2): steps 2 and 4
  // A resume keeps the saved device unless told otherwise; here, the CPU.
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("run"), "--steps", "6", "--device", "cpu", "--threads", "1"}), 0)
      << err.str();
  EXPECT_NE(out.str().find("done: 6 steps"), std::string::npos) << out.str();
  expect_finite_losses("run", 3);
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("run"), "--steps", "7"}), 0) << err.str();
  EXPECT_EQ(out.str().find(" on cuda"), std::string::npos) << out.str();  // the CPU, as last saved
  for (const char* device : {"cpu", "cuda"}) {
    const std::string file = path(std::string("s_") + device + ".npy");
    ASSERT_EQ(run_command({"sample", "--checkpoint", path("run"), "--n", "40", "--out", file, "--device", device}), 0)
        << err.str();
  }
  const io::Array a = io::read_array(path("s_cpu.npy")), b = io::read_array(path("s_cuda.npy"));
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t k = 0; k < a.values.size(); ++k) EXPECT_NEAR(a.values[k], b.values[k], 1e-4) << k;
}

TEST_F(DeviceOption, ThePaperMlpTrainsOnRealMnistOnTheGpuAndResumesOnTheCpu) {
  if (!sinkhorn::platform::gpu_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or no CUDA in this LibTorch)";
  if (!fs::exists(SINKHORN_MNIST_DIR)) GTEST_SKIP() << "no MNIST copy at " << SINKHORN_MNIST_DIR;
  ASSERT_EQ(run_command({"train", "--data", "mnist", "--data-path", SINKHORN_MNIST_DIR, "--split", "test", "--steps",
                         "3", "--batch-size", "64", "--eval-samples", "64", "--heldout", "64", "--out", path("mnist"),
                         "--device", "cuda"}),
            0)
      << err.str();
  expect_finite_losses("mnist", 3);
  EXPECT_EQ(io::read_png(path("mnist/samples_final.png")).channels, 1);
  EXPECT_EQ(io::read_png(path("mnist/latent_grid_final.png")).width, 15 * 28);
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("mnist"), "--steps", "4", "--device", "cpu"}), 0) << err.str();
  expect_finite_losses("mnist", 4);
  // The learned cost (critic, RMSprop) on the GPU as well.
  ASSERT_EQ(run_command({"train", "--data", "mnist", "--data-path", SINKHORN_MNIST_DIR, "--split", "test", "--steps",
                         "2", "--cost", "learned", "--critic-steps", "2", "--batch-size", "32", "--eval-samples", "32",
                         "--heldout", "32", "--out", path("learned"), "--device", "cuda"}),
            0)
      << err.str();
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("learned"), "--steps", "3", "--device", "cpu"}), 0)
      << err.str();
}

}  // namespace
}  // namespace sinkhorn::cli
