// checkpoint.pt's integrity: damaged bytes, non-finite weights and files that are no checkpoint at
// all are refused by `sample` and `--resume` alike; a full disk while writing one keeps the last
// good one; building networks leaves LibTorch's global generator alone; batched sampling.
#include "gen/checkpoint.h"

#include <gtest/gtest.h>
#include <ATen/Parallel.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstring>

#include "gen/gen_test_support.h"
#include "gen/models/networks.h"
#include "gen/small_runs.h"
#include "gen/trainer.h"
#include "io/array_io.h"
#include "io/file_bytes.h"
#include "io/zip_archive.h"
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::file_digests;
using testing::ScratchFolder;
using testing::small_run;
using testing::tmp_files;
using io::verify_zip;
using io::zip_entries;
using io::ZipEntry;

using testing::as_chars;

void put_u32(std::vector<uint8_t>& bytes, uint64_t at, uint32_t value) {
  for (int k = 0; k < 4; ++k) bytes[at + static_cast<uint64_t>(k)] = static_cast<uint8_t>(value >> (8 * k));
}

// Rewrites the CRC-32 of `entry` in its local header and its central record, as a forger would.
void fix_crc(std::vector<uint8_t>& bytes, const ZipEntry& entry) {
  const uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), bytes.data() + entry.data_offset, static_cast<uInt>(entry.compressed_size)));
  put_u32(bytes, entry.local_header_offset + 14, crc);
  put_u32(bytes, entry.central_header_offset + 16, crc);
}

// The tensor records of a LibTorch archive (".../data/<n>"), largest first.
std::vector<ZipEntry> tensor_entries(const std::vector<uint8_t>& bytes) {
  std::vector<ZipEntry> tensors;
  for (const ZipEntry& entry : zip_entries(as_chars(bytes), "checkpoint.pt", "checkpoint")) {
    if (entry.name.find("/data/") != std::string::npos && entry.compressed_size > 0) tensors.push_back(entry);
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const ZipEntry& a, const ZipEntry& b) { return a.compressed_size > b.compressed_size; });
  return tensors;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TrainConfig c = small_run(run);
    c.steps = 3;
    ASSERT_EQ(Trainer::start(c, false).run().status, TrainStatus::finished);
    good = testing::read_bytes(checkpoint);
  }

  // `sample` and `--resume` both refuse the checkpoint now in place, naming it and `fragment`,
  // and leave the run folder as it was.
  void expect_refused(const std::string& fragment) {
    const auto before = file_digests(run);
    const std::string sampled = testing::error_message([&] { SavedGenerator::load(run); });
    EXPECT_EQ(sampled.rfind("checkpoint | '" + checkpoint + "' ", 0), 0u) << sampled;
    EXPECT_NE(sampled.find(fragment), std::string::npos) << sampled;
    const std::string resumed = testing::error_message([&] { Trainer::resume(run); });
    EXPECT_EQ(resumed.rfind("out_dir | '" + checkpoint + "' ", 0), 0u) << resumed;
    EXPECT_NE(resumed.find(fragment), std::string::npos) << resumed;
    EXPECT_EQ(file_digests(run), before);
  }

  ScratchFolder folder;
  std::string run = folder.file("run"), checkpoint = run + "/checkpoint.pt";
  std::vector<uint8_t> good;
};

TEST_F(CheckpointTest, AGoodCheckpointPassesItsZipChecks) {
  const std::vector<ZipEntry> entries = zip_entries(as_chars(good), checkpoint, "checkpoint");
  EXPECT_GT(entries.size(), 5u);
  // LibTorch stores tensors (and deflates the code records, which verify_zip inflates).
  for (const ZipEntry& entry : tensor_entries(good)) EXPECT_EQ(entry.method, 0) << entry.name;
  EXPECT_NO_THROW(verify_zip(as_chars(good), checkpoint, "checkpoint"));
  const Checkpoint read = Checkpoint::read(checkpoint, "checkpoint");
  EXPECT_EQ(read.step(), 3);
  EXPECT_EQ(read.config().steps, 3);
}

TEST_F(CheckpointTest, AFlippedByteInAWeightIsRefusedNamingTheEntry) {
  const ZipEntry weights = tensor_entries(good).at(0);
  std::vector<uint8_t> bytes = good;
  bytes[weights.data_offset + weights.compressed_size / 2] ^= 0x10;
  testing::write_bytes(checkpoint, bytes);
  expect_refused("is corrupt: entry '" + weights.name + "' fails its CRC-32 check");
}

TEST_F(CheckpointTest, DamagedStructureAndTruncationAreRefused) {
  std::vector<uint8_t> bytes = good;
  const ZipEntry first = zip_entries(as_chars(good), checkpoint, "checkpoint").at(0);
  bytes[first.central_header_offset + 42] ^= 0x01;  // its local header offset
  testing::write_bytes(checkpoint, bytes);
  expect_refused("is corrupt or not a checkpoint");
  testing::write_bytes(checkpoint, std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2));
  expect_refused("no zip end-of-central-directory record");
  testing::write_bytes(checkpoint, {1, 2, 3});
  expect_refused("too short to be a zip archive");
}

TEST_F(CheckpointTest, NonFiniteWeightsAreRefused) {
  // NaN in every float of every tensor, with the CRCs made to match: only the values are wrong.
  std::vector<uint8_t> bytes = good;
  for (const ZipEntry& entry : tensor_entries(good)) {
    for (uint64_t at = entry.data_offset; at + 4 <= entry.data_offset + entry.compressed_size; at += 4) {
      put_u32(bytes, at, 0x7fc00000u);
    }
    fix_crc(bytes, entry);
  }
  testing::write_bytes(checkpoint, bytes);
  EXPECT_NO_THROW(verify_zip(as_chars(bytes), checkpoint, "checkpoint"));
  expect_refused("holds non-finite (NaN or Inf) weights in its generator");
}

TEST_F(CheckpointTest, WeightsThatDoNotFitTheSettingsAreRefusedNamingTheTensor) {
  // LibTorch loads a tensor of any shape over a parameter (Tensor::set_): a checkpoint whose
  // settings say hidden 32 but whose generator has hidden 16 must not load.
  TrainConfig c = small_run(run);
  c.steps = 3;
  GeneratorSpec smaller_spec = c.generator;
  smaller_spec.hidden = 16;
  Generator smaller(smaller_spec), fitting(c.generator);
  torch::optim::Adam smaller_optimizer(smaller->parameters()), fitting_optimizer(fitting->parameters());
  CheckpointContents contents;
  contents.config = &c;
  contents.step = 3;
  contents.generator = smaller.get();
  contents.generator_optimizer = &smaller_optimizer;
  write_checkpoint(checkpoint, contents);
  expect_refused("holds a generator that does not fit its settings: 'head.0.weight' is [16, 2] Float where the "
                 "settings build [32, 2] Float");

  // The weights fit, the optimiser's running averages (of the smaller network) do not: `sample`
  // reads no optimiser, `--resume` refuses it.
  const at::Tensor z = torch::randn({8, 2});
  smaller->forward(z).sum().backward();
  smaller_optimizer.step();
  contents.generator = fitting.get();
  write_checkpoint(checkpoint, contents);
  const auto before = file_digests(run);
  EXPECT_EQ(testing::error_message([&] { Trainer::resume(run); }),
            "out_dir | '" + checkpoint + "' holds a generator_optimizer that does not fit its settings: its exp_avg is "
            "[16, 2] Float for a parameter of [32, 2] Float");
  EXPECT_EQ(file_digests(run), before);
  EXPECT_NO_THROW(SavedGenerator::load(run));

  // Settings of no known form are refused when the checkpoint is read, before any network is built.
  c.generator.sample_shape = {-1, -1};
  contents.generator_optimizer = &fitting_optimizer;
  write_checkpoint(checkpoint, contents);
  expect_refused("holds unusable settings: generator.sample_shape must be [2] (2-D points) or [C, H, W]");
}

TEST_F(CheckpointTest, WhatIsNotARegularFileIsRefusedBeforeReading) {
  const std::string fifo = folder.file("fifo.pt");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_NE(testing::error_message([&] { SavedGenerator::load(fifo); }).find("is not a regular file"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { SavedGenerator::load("/dev/zero"); }).find("is not a regular file"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { SavedGenerator::load(folder.path()); }).find("holds no checkpoint.pt"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { SavedGenerator::load(folder.file("missing.pt")); }).find("does not exist"),
            std::string::npos);
}

TEST(Networks, BuildingThemLeavesTheGlobalGeneratorAlone) {
  ScratchFolder folder;
  torch::manual_seed(1234);
  const at::Tensor expected = torch::rand({8});
  torch::manual_seed(1234);
  std::vector<at::Tensor> first_state;
  {
    Trainer trainer = Trainer::start(small_run(folder.file("a")), false);
    first_state = trainer.generator_state();
  }
  EXPECT_TRUE(torch::rand({8}).equal(expected)) << "Trainer::start moved LibTorch's global generator";
  // And the networks do not depend on what the program drew before: same seed, same weights.
  torch::rand({1000});
  const std::vector<at::Tensor> second_state = Trainer::start(small_run(folder.file("b")), false).generator_state();
  ASSERT_EQ(first_state.size(), second_state.size());
  for (size_t k = 0; k < first_state.size(); ++k) EXPECT_TRUE(first_state[k].equal(second_state[k]));
}

TEST(SavedGenerator, BatchesGiveTheOneShotSamplesBitForBit) {
  ScratchFolder folder;
  const int threads_before = at::get_num_threads();
  for (const int threads : {1, 2}) {
  at::set_num_threads(threads);
  for (const char* latent : {"gaussian", "uniform"}) {
    for (const int64_t latent_dim : {2, 3}) {
      SCOPED_TRACE(std::string(latent) + " latent of dimension " + std::to_string(latent_dim) + ", " +
                   std::to_string(threads) + " threads");
      const std::string out = folder.file(std::string(latent) + std::to_string(latent_dim) + "_" + std::to_string(threads));
      TrainConfig c = small_run(out);
      c.generator.latent = latent;
      c.generator.latent_dim = latent_dim;
      c.steps = 2;
      ASSERT_EQ(Trainer::start(c, false).run().status, TrainStatus::finished);
      SavedGenerator saved = SavedGenerator::load(out);
      for (const int64_t n : {1, 5, 16, 100, 1001}) {
        const at::Tensor whole = saved.sample(n, 9);
        for (const int64_t batch : {1, 16, 40, 48, 1000}) {
          std::vector<at::Tensor> pieces;
          saved.sample_in_batches(n, 9, batch, [&](const at::Tensor& piece) { pieces.push_back(piece); });
          EXPECT_TRUE(at::cat(pieces).equal(whole)) << "n " << n << ", batch " << batch;
        }
      }
      // The streamed .npy is io::write_npy's file of the one-shot samples, byte for byte.
      const at::Tensor whole = saved.sample(1001, 9).to(at::kDouble).contiguous();
      io::Array array;
      array.shape = {1001, 2};
      array.values.assign(whole.data_ptr<double>(), whole.data_ptr<double>() + whole.numel());
      array.dtype = "float32";
      io::write_npy(folder.file("whole.npy"), array);
      write_samples_npy(saved, folder.file("streamed.npy"), 1001, 9, 48);
      EXPECT_EQ(testing::read_bytes(folder.file("streamed.npy")), testing::read_bytes(folder.file("whole.npy")));
      EXPECT_TRUE(tmp_files(folder.path()).empty());
    }
  }
  }
  at::set_num_threads(threads_before);
}

TEST(FullDisk, ACheckpointThatDoesNotFitKeepsTheLastGoodOne) {
  testing::TmpfsMount disk(2 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string out = disk.file("run");
  ASSERT_EQ(Trainer::start(testing::large_checkpoint_run(out), false).run().status, TrainStatus::finished);
  const std::vector<uint8_t> checkpoint = testing::read_bytes(out + "/checkpoint.pt");
  ASSERT_GT(checkpoint.size(), 100000u);
  // Room for config.json and metrics.csv, not for a second checkpoint beside the first.
  ASSERT_TRUE(testing::fill_disk(disk.file(""), 48 << 10));
  {
    Trainer resumed = Trainer::resume(out, {4, std::nullopt});
    const std::string message = testing::error_message([&] { resumed.run(); });
    EXPECT_EQ(message.rfind("out_dir | cannot write '" + out + "/checkpoint.pt': No space left on device; the last "
                            "good checkpoint (step 2) is kept in " + out + "/checkpoint.pt", 0),
              0u)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
  EXPECT_EQ(testing::read_bytes(out + "/checkpoint.pt"), checkpoint);
  EXPECT_TRUE(tmp_files(out).empty());
  EXPECT_EQ(SavedGenerator::load(out).step(), 2);

  // A disk with no room at all: the resume's first write fails cleanly, the folder as it was.
  std::ofstream(disk.file("more"), std::ios::binary) << std::string(4 << 20, 'x');
  const auto before = file_digests(out);
  const std::string message = testing::error_message([&] { Trainer::resume(out, {6, std::nullopt}); });
  EXPECT_EQ(message, "out_dir | cannot write '" + out + "/config.json': No space left on device");
  EXPECT_EQ(file_digests(out), before);
}

}  // namespace
}  // namespace sinkhorn::gen
