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
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::file_digests;
using testing::ScratchFolder;
using testing::small_run;
using testing::tmp_files;

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.argument() + " | " + error.problem();
  }
  return "no error";
}

std::string as_chars(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

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
    const std::string sampled = message_of([&] { SavedGenerator::load(run); });
    EXPECT_EQ(sampled.rfind("checkpoint | '" + checkpoint + "' ", 0), 0u) << sampled;
    EXPECT_NE(sampled.find(fragment), std::string::npos) << sampled;
    const std::string resumed = message_of([&] { Trainer::resume(run); });
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
  EXPECT_EQ(message_of([&] { Trainer::resume(run); }),
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
  EXPECT_NE(message_of([&] { SavedGenerator::load(fifo); }).find("is not a regular file"), std::string::npos);
  EXPECT_NE(message_of([&] { SavedGenerator::load("/dev/zero"); }).find("is not a regular file"), std::string::npos);
  EXPECT_NE(message_of([&] { SavedGenerator::load(folder.path()); }).find("holds no checkpoint.pt"), std::string::npos);
  EXPECT_NE(message_of([&] { SavedGenerator::load(folder.file("missing.pt")); }).find("does not exist"),
            std::string::npos);
}

TEST(ZipParser, ReadsZip64Records) {
  // One stored entry "a" holding "hello", with a zip64 end-of-central-directory record and
  // locator, as LibTorch writes for archives past 4 GiB; built from APPNOTE.TXT by hand.
  std::vector<uint8_t> zip;
  auto put = [&](uint64_t value, int size) {
    for (int k = 0; k < size; ++k) zip.push_back(static_cast<uint8_t>(value >> (8 * k)));
  };
  const std::string data = "hello";
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), 5));
  put(0x04034b50, 4), put(45, 2), put(0, 2), put(0, 2), put(0, 4), put(crc, 4), put(5, 4), put(5, 4), put(1, 2),
      put(0, 2);
  zip.push_back('a');
  zip.insert(zip.end(), data.begin(), data.end());
  const uint64_t directory = zip.size();
  // Central record whose sizes and offset live in its zip64 extra field.
  put(0x02014b50, 4), put(45, 2), put(45, 2), put(0, 2), put(0, 2), put(0, 4), put(crc, 4), put(0xffffffff, 4),
      put(0xffffffff, 4), put(1, 2), put(28, 2), put(0, 2), put(0, 2), put(0, 2), put(0, 4), put(0xffffffff, 4);
  zip.push_back('a');
  put(1, 2), put(24, 2), put(5, 8), put(5, 8), put(0, 8);
  const uint64_t directory_size = zip.size() - directory, record = zip.size();
  put(0x06064b50, 4), put(44, 8), put(45, 2), put(45, 2), put(0, 4), put(0, 4), put(1, 8), put(1, 8),
      put(directory_size, 8), put(directory, 8);
  put(0x07064b50, 4), put(0, 4), put(record, 8), put(1, 4);
  put(0x06054b50, 4), put(0, 2), put(0, 2), put(0xffff, 2), put(0xffff, 2), put(0xffffffff, 4), put(0xffffffff, 4),
      put(0, 2);
  const std::vector<ZipEntry> entries = zip_entries(as_chars(zip), "z.zip", "checkpoint");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "a");
  EXPECT_EQ(entries[0].data_offset, 31u);
  EXPECT_EQ(entries[0].compressed_size, 5u);
  EXPECT_NO_THROW(verify_zip(as_chars(zip), "z.zip", "checkpoint"));
  zip[33] = 'L';
  EXPECT_NE(message_of([&] { verify_zip(as_chars(zip), "z.zip", "checkpoint"); }).find("entry 'a' fails its CRC-32"),
            std::string::npos);
}

// A zip archive written field by field (APPNOTE.TXT 4.3), to make the malformed ones.
class HandZip {
 public:
  struct Entry {
    std::string name;
    uint64_t offset = 0, compressed = 0, uncompressed = 0;
    uint32_t crc = 0;
    uint16_t method = 0;
  };
  /// A local header and `data` (stored, or deflated raw bytes with `uncompressed` inflated size).
  Entry local(const std::string& name, const std::string& data, uint16_t method = 0, uint64_t uncompressed = 0,
              uint32_t crc = 0) {
    Entry entry{name, bytes.size(), data.size(), method == 0 ? data.size() : uncompressed, crc, method};
    if (method == 0) entry.crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    put(0x04034b50, 4), put(20, 2), put(0, 2), put(method, 2), put(0, 4), put(entry.crc, 4), put(entry.compressed, 4),
        put(entry.uncompressed, 4), put(name.size(), 2), put(0, 2);
    bytes += name + data;
    return entry;
  }
  /// A central directory of `entries`; returns where it starts.
  uint64_t directory(const std::vector<Entry>& entries) {
    const uint64_t start = bytes.size();
    for (const Entry& e : entries) {
      put(0x02014b50, 4), put(20, 2), put(20, 2), put(0, 2), put(e.method, 2), put(0, 4), put(e.crc, 4),
          put(e.compressed, 4), put(e.uncompressed, 4), put(e.name.size(), 2), put(0, 2), put(0, 2), put(0, 2),
          put(0, 2), put(0, 4), put(e.offset, 4);
      bytes += e.name;
    }
    return start;
  }
  /// The central directory of `entries` and the end record, with `comment` after it.
  void finish(const std::vector<Entry>& entries, const std::string& comment = "") {
    const uint64_t start = directory(entries);
    end_record(entries.size(), bytes.size() - start, start, comment.size());
    bytes += comment;
  }
  void end_record(uint64_t count, uint64_t size, uint64_t offset, uint64_t comment_length) {
    put(0x06054b50, 4), put(0, 2), put(0, 2), put(count, 2), put(count, 2), put(size, 4), put(offset, 4),
        put(comment_length, 2);
  }
  void put(uint64_t value, int size) {
    for (int k = 0; k < size; ++k) bytes.push_back(static_cast<char>(value >> (8 * k)));
  }
  std::string bytes;
};

std::string zip_problem(const std::string& bytes) {
  return message_of([&] { verify_zip(bytes, "z.zip", "checkpoint"); });
}

TEST(ZipParser, AHandMadeArchivePassesItsChecks) {
  HandZip zip;
  const HandZip::Entry a = zip.local("a", "hello"), b = zip.local("b", std::string(1000, 'x'));
  zip.finish({a, b});
  EXPECT_EQ(zip_problem(zip.bytes), "no error");
}

TEST(ZipParser, OverlappingEntriesAreRefused) {
  // Entry b's local header and data lie inside entry a's data: a checker that followed every
  // record would read a's bytes again for b (and a million records could point at one entry).
  HandZip inner;
  inner.local("b", std::string(1000, 'y'));
  HandZip zip;
  HandZip::Entry a = zip.local("a", inner.bytes);
  HandZip::Entry b{"b", a.offset + 30 + 1, 1000, 1000, 0, 0};
  b.crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(std::string(1000, 'y').data()), 1000));
  zip.finish({a, b});
  EXPECT_NE(zip_problem(zip.bytes).find("corrupt or not a checkpoint: the data of entry 'a' runs into entry 'b'"),
            std::string::npos)
      << zip_problem(zip.bytes);
}

TEST(ZipParser, DuplicateNamesAreRefused) {
  HandZip zip;
  const HandZip::Entry first = zip.local("a", "one"), second = zip.local("a", "two");
  zip.finish({first, second});
  EXPECT_NE(zip_problem(zip.bytes).find("two entries are named 'a'"), std::string::npos) << zip_problem(zip.bytes);
  // The same record twice is a duplicate too (and an overlap).
  HandZip again;
  const HandZip::Entry only = again.local("a", "one");
  again.finish({only, only});
  EXPECT_NE(zip_problem(again.bytes).find("two entries are named 'a'"), std::string::npos) << zip_problem(again.bytes);
}

TEST(ZipParser, DeflatedEntriesClaimingHugeSizesAreRefusedBeforeInflating) {
  // 100 bytes of deflate claiming 4 GiB, then 50 MiB (within the per-entry cap, past deflate's
  // 1032:1 ratio).
  for (const uint64_t claimed : {uint64_t{0xfffffffe}, uint64_t{50} << 20}) {
    HandZip zip;
    zip.finish({zip.local("a", std::string(100, '\x01'), 8, claimed)});
    EXPECT_NE(zip_problem(zip.bytes).find("entry 'a' claims to inflate to " + std::to_string(claimed) + " bytes"),
              std::string::npos)
        << zip_problem(zip.bytes);
  }
}

TEST(ZipParser, TheEndRecordMustEndTheFileWithoutAComment) {
  HandZip good;
  good.finish({good.local("a", "hello")});
  EXPECT_EQ(zip_problem(good.bytes), "no error");
  // A comment: LibTorch writes none, and a reader that searched back for the end record could be
  // shown another directory than LibTorch's own reader.
  HandZip commented;
  commented.finish({commented.local("a", "hello")}, "a comment");
  EXPECT_NE(zip_problem(commented.bytes).find("no zip end-of-central-directory record at its end"), std::string::npos)
      << zip_problem(commented.bytes);
  // A forged end record in the comment, pointing at a forged directory (a wrong CRC). LibTorch's
  // reader takes the last end-record signature with 22 bytes after it; ours, the file's last 22
  // bytes: either the forged record is the one checked, or the file is refused.
  for (const std::string tail : {"", "X"}) {
    SCOPED_TRACE("comment: a forged end record" + tail);
    HandZip zip;
    const HandZip::Entry a = zip.local("a", "hello");
    HandZip::Entry wrong = a;
    wrong.crc ^= 1;
    const uint64_t forged = zip.directory({wrong});
    const uint64_t forged_size = zip.bytes.size() - forged;
    const uint64_t real = zip.directory({a});
    zip.end_record(1, zip.bytes.size() - real, real, 22 + tail.size());
    zip.end_record(1, forged_size, forged, 0);
    zip.bytes += tail;
    EXPECT_NE(zip_problem(zip.bytes).find(tail.empty() ? "its central directory does not end where its end record begins"
                                                       : "no zip end-of-central-directory record at its end"),
              std::string::npos)
        << zip_problem(zip.bytes);
  }
  // An end record announcing a comment the file does not hold.
  HandZip announced;
  const HandZip::Entry a = announced.local("a", "hello");
  const uint64_t directory = announced.directory({a});
  announced.end_record(1, announced.bytes.size() - directory, directory, 5);
  EXPECT_NE(zip_problem(announced.bytes).find("its zip end record announces a comment"), std::string::npos)
      << zip_problem(announced.bytes);
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
    const std::string message = message_of([&] { resumed.run(); });
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
  const std::string message = message_of([&] { Trainer::resume(out, {6, std::nullopt}); });
  EXPECT_EQ(message, "out_dir | cannot write '" + out + "/config.json': No space left on device");
  EXPECT_EQ(file_digests(out), before);
}

}  // namespace
}  // namespace sinkhorn::gen
