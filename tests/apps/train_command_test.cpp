// `sinkhorn train` and `sinkhorn sample` run in-process: the run folder, resume, sampling, and the
// exit codes and messages of bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "apps/command_test_support.h"
#include "cli.h"
#include "gen/checkpoint.h"
#include "gen/recipes.h"
#include "gen/gen_test_support.h"
#include "gen/run_folder.h"
#include "gen/trainer.h"
#include "io/array_io.h"
#include "io/pictures.h"
#include "io/zip_archive.h"

namespace sinkhorn::cli {
namespace {

namespace fs = std::filesystem;

class TrainCommand : public CommandTest {};

using sinkhorn::testing::file_digests;
using sinkhorn::testing::tmp_files;

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

// Every setting the table lets a resume change is changed by its flag (not only accepted), and
// kept in config.json; a setting that may not change is refused by the library too, naming it.
TEST_F(TrainCommand, AResumeChangesTheSettingsItMayChange) {
  ASSERT_EQ(run_command(quick_train("run", 2)), 0) << err.str();
  const auto saved = [&] { return gen::train_config_from_json(testing::read_text(path("run/config.json"))); };
  EXPECT_EQ(saved().draw_on, gen::DrawOn::host);
  EXPECT_EQ(saved().data_parallel_solve, gen::DataParallelSolve::automatic);
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("run"), "--steps", "3", "--lr", "0.002", "--draw-on", "device",
                         "--data-parallel-solve", "split", "--threads", "1"}),
            0)
      << err.str();
  const gen::TrainConfig after = saved();
  EXPECT_EQ(after.steps, 3);
  EXPECT_EQ(after.learning_rate, 0.002);
  EXPECT_EQ(after.draw_on, gen::DrawOn::device);
  EXPECT_EQ(after.data_parallel_solve, gen::DataParallelSolve::split);
  expect_error({"train", "--resume", "--out", path("run"), "--steps", "4", "--draw-on", "elsewhere"},
               "--draw-on must be one of host, device, got 'elsewhere'");
  gen::ResumeOverrides seed;
  seed.settings["seed"] = 7LL;
  try {
    gen::Trainer::resume(path("run"), seed);
    ADD_FAILURE() << "a resume changed the seed";
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "seed") << error.what();
  }
}

TEST_F(TrainCommand, StartsFromTheRecipeOfItsDataAndCostWithTheGivenFlagsOnTop) {
  for (const char* cost : {"fixed", "learned"}) {
    SCOPED_TRACE(cost);
    std::vector<std::string> args = quick_train(std::string("run_") + cost, 1);
    args.insert(args.end(), {"--cost", cost});
    ASSERT_EQ(run_command(args), 0) << err.str();
    gen::TrainConfig expected = gen::recipe_for("ring8", gen::parse_cost(cost, "cost"));
    expected.steps = 1;
    expected.out_dir = path(std::string("run_") + cost);
    expected.batch_size = 32;
    expected.generator.hidden = 16;
    expected.eval_samples = 100;
    expected.data.heldout = 100;
    expected.loss.blur = 0.3;
    expected.eval_every = 2;
    const std::vector<uint8_t> bytes = sinkhorn::testing::read_bytes(path(std::string("run_") + cost + "/config.json"));
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), gen::to_json(expected));
  }
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
      {{"train", "--resume", "--out", path("empty"), "--coarse-correction"},
       "--coarse-correction cannot change when resuming"},
      {{"sample", "--out", path("x.png")}, "--checkpoint"},
      {{"sample", "--checkpoint", path("none"), "--out", path("x.txt")}, "--out must end in .png or .npy"},
      {{"sample", "--checkpoint", path("none"), "--out", path("x.png")}, "does not exist"},
  };
  for (const auto& [args, fragment] : cases) {
    EXPECT_EQ(run_command(args), 2) << args[1] << " " << fragment;
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
  }
}

TEST_F(TrainCommand, ASecondTrainOnAFolderInUseIsRefusedNamingItsHolder) {
  ASSERT_EQ(run_command(quick_train("run", 2)), 0) << err.str();
  const gen::RunFolder held = gen::RunFolder::for_resume(path("run"));  // as another process would
  const auto before = file_digests(path("run"));
  const std::string in_use =
      "--out '" + path("run") + "' is in use by another sinkhorn process (PID " + std::to_string(::getpid()) + ",";
  expect_error({"train", "--resume", "--out", path("run"), "--steps", "4"}, in_use);
  std::vector<std::string> overwrite = quick_train("run", 2);
  overwrite.push_back("--overwrite");
  expect_error(overwrite, in_use);
  expect_error(quick_train("run", 2), in_use);
  EXPECT_EQ(file_digests(path("run")), before);
}

TEST_F(TrainCommand, RefusesAFolderOfOtherFiles) {
  fs::create_directories(path("mine"));
  sinkhorn::testing::write_bytes(path("mine/data.csv"), {'1', '\n'});
  expect_error(quick_train("mine", 2), "--out '" + path("mine") + "' is not empty and holds no checkpoint.pt");
  EXPECT_EQ(file_digests(path("mine")).size(), 1u);
}

TEST_F(TrainCommand, RefusedResumesWriteNothing) {
  ASSERT_EQ(run_command(quick_train("run", 3)), 0) << err.str();
  const auto before = file_digests(path("run"));
  expect_error({"train", "--resume", "--out", path("run"), "--steps", "2"},
               "--steps 2 is below the step of the checkpoint in '" + path("run") + "' (3)");
  expect_error({"train", "--resume", "--out", path("run"), "--lr", "0"}, "--lr must be positive");
  EXPECT_EQ(file_digests(path("run")), before);
  EXPECT_TRUE(tmp_files(path("run")).empty());
}

TEST_F(TrainCommand, ResumeRepairsAMetricsRowCutShortAndSaysSo) {
  ASSERT_EQ(run_command(quick_train("run", 2)), 0) << err.str();
  std::ofstream(path("run/metrics.csv"), std::ios::app) << "3,0.0";  // killed while writing step 3's row
  ASSERT_EQ(run_command({"train", "--resume", "--out", path("run"), "--steps", "3", "--threads", "1"}), 0) << err.str();
  EXPECT_EQ(err.str().rfind("sinkhorn train: repaired: '" + path("run/metrics.csv") + "' ended in a row cut short ('3,0.0')", 0),
            0u)
      << err.str();
  const std::vector<uint8_t> bytes = sinkhorn::testing::read_bytes(path("run/metrics.csv"));
  const std::string metrics(bytes.begin(), bytes.end());
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 4) << metrics;  // header, steps 0, 2 (evaluated), 3
  EXPECT_NE(metrics.find("\n3,"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("3,0.0\n"), std::string::npos) << metrics;
}

TEST_F(TrainCommand, ACorruptCheckpointIsRefusedBySampleAndResume) {
  ASSERT_EQ(run_command(quick_train("run", 2)), 0) << err.str();
  const std::string checkpoint = path("run/checkpoint.pt");
  std::vector<uint8_t> bytes = sinkhorn::testing::read_bytes(checkpoint);
  const std::string chars(bytes.begin(), bytes.end());
  std::string entry_name;
  for (const io::ZipEntry& entry : io::zip_entries(chars, checkpoint, "checkpoint")) {
    if (entry.name.find("/data/") != std::string::npos && entry.compressed_size >= 64) {
      bytes[entry.data_offset + 17] ^= 0x01;  // one bit of one weight
      entry_name = entry.name;
      break;
    }
  }
  ASSERT_FALSE(entry_name.empty());
  sinkhorn::testing::write_bytes(checkpoint, bytes);
  const auto before = file_digests(path("run"));
  const std::string corrupt = "'" + checkpoint + "' is corrupt: entry '" + entry_name + "' fails its CRC-32 check";
  expect_error({"sample", "--checkpoint", path("run"), "--out", path("s.npy")}, "--checkpoint " + corrupt);
  EXPECT_FALSE(fs::exists(path("s.npy")));
  expect_error({"train", "--resume", "--out", path("run"), "--steps", "4"}, "--out " + corrupt);
  EXPECT_EQ(file_digests(path("run")), before);
}

TEST_F(TrainCommand, SampleRefusesPicturesTooLargeToDrawAndStreamsArrays) {
  ASSERT_EQ(run_command(quick_train("run", 2)), 0) << err.str();
  expect_error({"sample", "--checkpoint", path("run"), "--n", "1000001", "--out", path("s.png")},
               "--n 1000001 is more points than a scatter plot draws (at most 1000000)");
  EXPECT_FALSE(fs::exists(path("s.png")));
  ASSERT_EQ(run_command({"sample", "--checkpoint", path("run"), "--n", "150000", "--out", path("s.npy"), "--threads", "1"}), 0)
      << err.str();
  EXPECT_EQ(io::read_npy(path("s.npy")).shape, (std::vector<int64_t>{150000, 2}));
  EXPECT_TRUE(tmp_files(directory.string()).empty());
}

TEST_F(TrainCommand, AFullDiskEndsTheRunWithOneLineAndKeepsTheLastCheckpoint) {
  sinkhorn::testing::TmpfsMount disk(2 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string run = disk.file("run");
  std::vector<std::string> train = quick_train("unused", 2);
  train[4] = run;    // --out
  train[8] = "128";  // --hidden: a checkpoint of about 200 KB
  train.insert(train.end(), {"--checkpoint-every", "2"});
  ASSERT_EQ(run_command(train), 0) << err.str();
  const std::vector<uint8_t> checkpoint = sinkhorn::testing::read_bytes(run + "/checkpoint.pt");
  ASSERT_TRUE(sinkhorn::testing::fill_disk(disk.file(""), 48 << 10));
  expect_error({"train", "--resume", "--out", run, "--steps", "4", "--threads", "1"},
               "--out cannot write '" + run + "/checkpoint.pt': No space left on device; the last good checkpoint "
               "(step 2) is kept in " + run + "/checkpoint.pt",
               true);
  EXPECT_EQ(sinkhorn::testing::read_bytes(run + "/checkpoint.pt"), checkpoint);
  EXPECT_TRUE(tmp_files(run).empty());
  // `sample` into the full disk: the same kind of line, and no partial file.
  std::ofstream(disk.file("more"), std::ios::binary) << std::string(4 << 20, 'x');
  expect_error({"sample", "--checkpoint", run, "--n", "20000", "--out", disk.file("s.npy"), "--threads", "1"},
               "--out cannot write '" + disk.file("s.npy") + "': No space left on device");
  EXPECT_FALSE(fs::exists(disk.file("s.npy")));
  EXPECT_TRUE(tmp_files(disk.file("")).empty());
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
