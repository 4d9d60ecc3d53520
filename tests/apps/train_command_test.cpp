// `sinkhorn train` and `sinkhorn sample` run in-process: the run folder, resume, sampling, and the
// exit codes and messages of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "cli.h"
#include "gen/gen_test_support.h"
#include "io/array_io.h"
#include "io/pictures.h"

namespace sinkhorn::cli {
namespace {

namespace fs = std::filesystem;

class TrainCommand : public ::testing::Test {
 protected:
  int run_command(const std::vector<std::string>& args) {
    out.str("");
    err.str("");
    return run(args, out, err);
  }
  std::string path(const std::string& name) const { return (directory / name).string(); }

  // A quick toy run: small network, small batches, a large blur.
  std::vector<std::string> quick_train(const std::string& folder, int steps) const {
    return {"train", "--steps", std::to_string(steps), "--out", path(folder), "--batch-size", "32", "--hidden", "16",
            "--eval-samples", "100", "--heldout", "100", "--blur", "0.3", "--eval-every", "2", "--threads", "1"};
  }

  sinkhorn::testing::ScratchFolder scratch;
  fs::path directory{scratch.path()};
  std::ostringstream out, err;
};

TEST_F(TrainCommand, TrainsResumesAndSamples) {
  ASSERT_EQ(run_command(quick_train("run", 4)), 0) << err.str();
  EXPECT_NE(out.str().find("done: 4 steps"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("modes covered"), std::string::npos) << out.str();
  EXPECT_NE(err.str().find("step 4/4"), std::string::npos) << err.str();  // plain progress lines off a terminal
  for (const char* file : {"config.json", "metrics.csv", "checkpoint.pt", "scatter_final.png"}) {
    EXPECT_TRUE(fs::exists(directory / "run" / file)) << file;
  }
  // The same folder again: refused, then accepted with --overwrite.
  EXPECT_EQ(run_command(quick_train("run", 4)), 2);
  EXPECT_NE(err.str().find("--resume"), std::string::npos) << err.str();
  std::vector<std::string> again = quick_train("run", 2);
  again.push_back("--overwrite");
  EXPECT_EQ(run_command(again), 0) << err.str();

  ASSERT_EQ(run_command({"train", "--resume", "--out", path("run"), "--steps", "5", "--threads", "1"}), 0) << err.str();
  EXPECT_NE(out.str().find("resuming"), std::string::npos);
  EXPECT_NE(out.str().find("done: 5 steps"), std::string::npos) << out.str();

  ASSERT_EQ(run_command({"sample", "--checkpoint", path("run"), "--n", "10", "--out", path("s.npy")}), 0) << err.str();
  const io::Array samples = io::read_npy(path("s.npy"));
  EXPECT_EQ(samples.shape, (std::vector<int64_t>{10, 2}));
  ASSERT_EQ(run_command({"sample", "--checkpoint", path("run/checkpoint.pt"), "--out", path("s.png")}), 0) << err.str();
  EXPECT_EQ(io::read_png(path("s.png")).channels, 3);
  EXPECT_EQ(run_command({"sample", "--checkpoint", path("run"), "--lattice", "5", "--out", path("l.png")}), 2);
  EXPECT_NE(err.str().find("--lattice needs a generator of images"), std::string::npos) << err.str();
}

TEST_F(TrainCommand, BadInputExitsWithTwoNamingTheOption) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"train", "--data", "mnist", "--out", path("a")}, "--data-path"},
      {{"train", "--data", "mnist", "--data-path", path("nowhere"), "--out", path("a")}, "nowhere"},
      {{"train", "--data", "faces", "--out", path("a")}, "--data"},
      {{"train", "--steps", "-3", "--out", path("a")}, "--steps"},
      {{"train", "--blur", "0", "--out", path("a")}, "--blur"},
      {{"train", "--optimizer", "sgd", "--out", path("a")}, "--optimizer"},
      {{"train", "--resume", "--out", path("empty")}, "holds no checkpoint"},
      {{"train", "--resume"}, "--resume needs --out"},
      {{"train", "--resume", "--out", path("empty"), "--blur", "0.2"}, "--blur cannot change when resuming"},
      {{"sample", "--out", path("x.png")}, "--checkpoint"},
      {{"sample", "--checkpoint", path("none"), "--out", path("x.txt")}, "--out must end in .png or .npy"},
      {{"sample", "--checkpoint", path("none"), "--out", path("x.png")}, "does not exist"},
  };
  for (const auto& [args, fragment] : cases) {
    EXPECT_EQ(run_command(args), 2) << args[1] << " " << fragment;
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
  }
}

TEST_F(TrainCommand, TrainsThePaperMlpOnRealMnist) {
  if (!fs::exists(SINKHORN_MNIST_DIR)) GTEST_SKIP() << "no MNIST copy at " << SINKHORN_MNIST_DIR;
  ASSERT_EQ(run_command({"train", "--data", "mnist", "--data-path", SINKHORN_MNIST_DIR, "--split", "test", "--steps",
                         "3", "--batch-size", "32", "--hidden", "32", "--eval-samples", "64", "--heldout", "64",
                         "--out", path("mnist"), "--threads", "1"}),
            0)
      << err.str();
  const io::Image samples = io::read_png(path("mnist/samples_final.png"));
  EXPECT_EQ(samples.channels, 1);
  EXPECT_EQ(samples.width, 2 + 8 * (28 + 2));  // 64 samples: an 8 x 8 grid
  const io::Image lattice = io::read_png(path("mnist/latent_grid_final.png"));
  EXPECT_EQ(lattice.width, 15 * 28);  // the paper's 15 x 15 latent-manifold picture
  ASSERT_EQ(run_command({"sample", "--checkpoint", path("mnist"), "--lattice", "4", "--out", path("l.png")}), 0);
  EXPECT_EQ(io::read_png(path("l.png")).height, 4 * 28);
}

}  // namespace
}  // namespace sinkhorn::cli
