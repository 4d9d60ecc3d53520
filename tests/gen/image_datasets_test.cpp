#include "gen/data/image_datasets.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "gen/gen_test_support.h"
#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

using testing::idx_bytes;
using testing::patterned_pixels;
using testing::ScratchFolder;
using testing::write_bytes;
using testing::write_gzip;

void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(ReadIdx, RawAndGzipFilesGiveTheBytesInTheirShape) {
  ScratchFolder folder;
  const std::vector<uint8_t> pixels = patterned_pixels(3, 4);
  write_bytes(folder.file("raw.idx"), idx_bytes({3, 4, 4}, pixels));
  write_gzip(folder.file("packed.idx.gz"), idx_bytes({3, 4, 4}, pixels));
  for (const std::string name : {"raw.idx", "packed.idx.gz"}) {
    const at::Tensor t = read_idx(folder.file(name));
    ASSERT_EQ(t.sizes(), at::IntArrayRef({3, 4, 4})) << name;
    ASSERT_EQ(t.scalar_type(), at::kByte);
    // Image 2, row 3, column 1: (2 * 31 + 3 * 7 + 1) mod 256 = 84.
    EXPECT_EQ(t[2][3][1].item<int>(), 84) << name;
    EXPECT_EQ(at::from_blob(const_cast<uint8_t*>(pixels.data()), {3, 4, 4}, at::kByte).equal(t), true) << name;
  }
}

TEST(ReadIdx, MultiByteTypesAreBigEndian) {
  ScratchFolder folder;
  // Type 0x0C (int32), rank 1, two values: 0x01020304 and -2.
  write_bytes(folder.file("ints.idx"), {0, 0, 0x0C, 1, 0, 0, 0, 2, 1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFE});
  const at::Tensor t = read_idx(folder.file("ints.idx"));
  ASSERT_EQ(t.scalar_type(), at::kInt);
  EXPECT_EQ(t[0].item<int>(), 0x01020304);
  EXPECT_EQ(t[1].item<int>(), -2);
}

TEST(ReadIdx, CorruptFilesFailNamingTheFileAndTheProblem) {
  ScratchFolder folder;
  std::vector<uint8_t> good = idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<uint8_t> bad_magic = good;
  bad_magic[0] = 7;
  write_bytes(folder.file("magic.idx"), bad_magic);
  expect_error([&] { read_idx(folder.file("magic.idx")); }, "magic.idx' is not an IDX file");
  std::vector<uint8_t> bad_type = good;
  bad_type[2] = 0x42;
  write_bytes(folder.file("type.idx"), bad_type);
  expect_error([&] { read_idx(folder.file("type.idx")); }, "unknown type code");
  write_bytes(folder.file("short.idx"), std::vector<uint8_t>(good.begin(), good.end() - 1));
  expect_error([&] { read_idx(folder.file("short.idx")); }, "is truncated");
  write_bytes(folder.file("header.idx"), std::vector<uint8_t>(good.begin(), good.begin() + 6));
  expect_error([&] { read_idx(folder.file("header.idx")); }, "inside the IDX header");
  std::vector<uint8_t> longer = good;
  longer.push_back(9);
  write_bytes(folder.file("long.idx"), longer);
  expect_error([&] { read_idx(folder.file("long.idx")); }, "trailing data");
  expect_error([&] { read_idx(folder.file("missing.idx")); }, "cannot open");
  // A gzip stream cut in half.
  write_gzip(folder.file("cut.gz"), idx_bytes({64, 64}, std::vector<uint8_t>(64 * 64, 3)));
  std::ifstream in(folder.file("cut.gz"), std::ios::binary);
  std::vector<uint8_t> compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(folder.file("cut.gz"), std::vector<uint8_t>(compressed.begin(), compressed.begin() + compressed.size() / 2));
  expect_error([&] { read_idx(folder.file("cut.gz")); }, "cut.gz");
}

TEST(LoadMnist, FolderWithDistributedNamesGivesImagesAndLabels) {
  ScratchFolder folder;
  write_gzip(folder.file("t10k-images-idx3-ubyte.gz"), idx_bytes({5, 28, 28}, patterned_pixels(5)));
  write_bytes(folder.file("t10k-labels-idx1-ubyte"), idx_bytes({5}, {7, 2, 1, 0, 4}));
  const ImageSet set = load_mnist(folder.path(), "test");
  ASSERT_EQ(set.images.sizes(), at::IntArrayRef({5, 1, 28, 28}));
  EXPECT_EQ(set.images[4][0][2][3].item<int>(), (4 * 31 + 2 * 7 + 3) % 256);
  ASSERT_TRUE(set.labels.defined());
  EXPECT_EQ(set.labels[0].item<int64_t>(), 7);
  // The images file given directly finds its labels beside it.
  EXPECT_TRUE(load_mnist(folder.file("t10k-images-idx3-ubyte.gz")).labels.defined());
  expect_error([&] { load_mnist(folder.path(), "train"); }, "holds no MNIST train images");
  expect_error([&] { load_mnist(folder.path(), "validation"); }, "data.split must be 'train' or 'test'");
  write_bytes(folder.file("t10k-labels-idx1-ubyte"), idx_bytes({4}, {7, 2, 1, 0}));
  expect_error([&] { load_mnist(folder.path(), "test"); }, "4 labels for 5 images");
  write_bytes(folder.file("flat-images-idx3-ubyte"), idx_bytes({10}, std::vector<uint8_t>(10, 1)));
  expect_error([&] { load_mnist(folder.file("flat-images-idx3-ubyte")); }, "is not an MNIST images file");
}

TEST(LoadMnist, RealTestSplitHasTheKnownLabelCounts) {
  struct stat info;
  if (::stat(SINKHORN_MNIST_DIR, &info) != 0) GTEST_SKIP() << "no MNIST copy at " << SINKHORN_MNIST_DIR;
  const ImageSet set = load_mnist(SINKHORN_MNIST_DIR, "test");
  ASSERT_EQ(set.images.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  // The MNIST test split's published class sizes (LeCun et al.).
  const std::vector<int64_t> expected{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
  const at::Tensor counts = at::bincount(set.labels, {}, 10);
  for (int64_t digit = 0; digit < 10; ++digit) EXPECT_EQ(counts[digit].item<int64_t>(), expected[digit]) << digit;
  EXPECT_EQ(set.images.max().item<int>(), 255);
  EXPECT_EQ(set.images.min().item<int>(), 0);
  // Digits are ink on a blank page: the border pixels are (nearly) all zero.
  EXPECT_LT(set.images.select(3, 0).to(at::kFloat).mean().item<float>(), 0.5f);
}

std::vector<uint8_t> cifar_record(uint8_t label, uint8_t red, uint8_t green, uint8_t blue) {
  std::vector<uint8_t> record{label};
  for (uint8_t value : {red, green, blue}) record.insert(record.end(), 1024, value);
  return record;
}

TEST(LoadCifar10, RecordsAreLabelThenPlanes) {
  ScratchFolder folder;
  std::vector<uint8_t> bytes = cifar_record(3, 10, 20, 30);
  const std::vector<uint8_t> second = cifar_record(9, 200, 100, 0);
  bytes.insert(bytes.end(), second.begin(), second.end());
  ::mkdir(folder.file("cifar-10-batches-bin").c_str(), 0755);
  write_bytes(folder.file("cifar-10-batches-bin/test_batch.bin"), bytes);
  const ImageSet set = load_cifar10(folder.path(), "test");  // finds the distributed subfolder
  ASSERT_EQ(set.images.sizes(), at::IntArrayRef({2, 3, 32, 32}));
  EXPECT_EQ(set.labels[0].item<int64_t>(), 3);
  EXPECT_EQ(set.labels[1].item<int64_t>(), 9);
  EXPECT_EQ(set.images[0][1][31][0].item<int>(), 20);
  EXPECT_EQ(set.images[1][0][5][5].item<int>(), 200);
  expect_error([&] { load_cifar10(folder.path(), "train"); }, "data_batch_1.bin");
  write_bytes(folder.file("cut.bin"), std::vector<uint8_t>(bytes.begin(), bytes.end() - 5));
  expect_error([&] { load_cifar10(folder.file("cut.bin")); }, "whole number of 3073-byte records");
  write_bytes(folder.file("label.bin"), cifar_record(12, 0, 0, 0));
  expect_error([&] { load_cifar10(folder.file("label.bin")); }, "a label byte is 12");
}

}  // namespace
}  // namespace sinkhorn::gen
