#include "gen/data/image_datasets.h"

#include <cstring>
#include <vector>

#include "io/file_bytes.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

// The first of the candidate names that exists in folder, with or without ".gz".
std::string find_in_folder(const std::string& folder, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    for (const char* suffix : {"", ".gz"}) {
      const std::string path = folder + "/" + name + suffix;
      if (io::path_exists(path)) return path;
    }
  }
  return {};
}

void check_split(const std::string& split) {
  SINKHORN_CHECK_ARG(split == "train" || split == "test", "data.split", "must be 'train' or 'test', got '" << split << "'");
}

}  // namespace

at::Tensor read_idx(const std::string& path) {
  const std::vector<uint8_t> bytes = io::read_file_bytes(path);
  SINKHORN_CHECK(bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0,
                 "'" << path << "' is not an IDX file (bad magic number)");
  at::ScalarType type;
  int64_t element_size;
  switch (bytes[2]) {
    case 0x08: type = at::kByte, element_size = 1; break;
    case 0x09: type = at::kChar, element_size = 1; break;
    case 0x0B: type = at::kShort, element_size = 2; break;
    case 0x0C: type = at::kInt, element_size = 4; break;
    case 0x0D: type = at::kFloat, element_size = 4; break;
    case 0x0E: type = at::kDouble, element_size = 8; break;
    default: SINKHORN_CHECK(false, "'" << path << "' is not an IDX file (unknown type code " << int(bytes[2]) << ")");
  }
  const int64_t rank = bytes[3];
  SINKHORN_CHECK(rank >= 1, "'" << path << "' is not an IDX file (zero dimensions)");
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  SINKHORN_CHECK(bytes.size() >= header, "'" << path << "' is truncated (inside the IDX header)");
  std::vector<int64_t> shape(rank);
  // Dimensions are 32-bit: their product is checked in overflow-safe arithmetic against the bytes
  // actually there (found by make fuzz: 4294967295 x 4294967040 overflowed a signed product).
  uint64_t count = 1, data_bytes = 0;
  bool overflow = false;
  for (int64_t d = 0; d < rank; ++d) {
    const uint8_t* p = &bytes[4 + 4 * d];
    shape[d] = (int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) | (int64_t(p[2]) << 8) | int64_t(p[3]);
    overflow = overflow || __builtin_mul_overflow(count, static_cast<uint64_t>(shape[d]), &count);
  }
  overflow = overflow || __builtin_mul_overflow(count, static_cast<uint64_t>(element_size), &data_bytes);
  SINKHORN_CHECK(!overflow && data_bytes <= bytes.size() - header,
                 "'" << path << "' is truncated or corrupt: its IDX header declares "
                     << (overflow ? std::string("more values than any file holds") : std::to_string(count) + " values")
                     << ", the file has " << bytes.size() - header << " bytes of data");
  const size_t expected = header + static_cast<size_t>(data_bytes);
  SINKHORN_CHECK(bytes.size() >= expected, "'" << path << "' is truncated: the header declares " << expected
                                                << " bytes, the file has " << bytes.size());
  SINKHORN_CHECK(bytes.size() == expected, "'" << path << "' has " << bytes.size() - expected
                                                << " bytes of trailing data after the IDX array");
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type));
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  // IDX stores multi-byte values big-endian; swap each element into the machine's order.
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    for (int64_t b = 0; b < element_size; ++b) dst[i * element_size + b] = bytes[header + i * element_size + element_size - 1 - b];
  }
  return out;
}

ImageSet load_mnist(const std::string& path, const std::string& split) {
  check_split(split);
  std::string images_path = path, labels_path;
  if (io::is_directory(path)) {
    const std::string prefix = split == "train" ? "train" : "t10k";
    images_path = find_in_folder(path, {prefix + "-images-idx3-ubyte", prefix + "-images.idx3-ubyte"});
    SINKHORN_CHECK_ARG(!images_path.empty(), "data.path",
                       "'" << path << "' holds no MNIST " << split << " images (" << prefix << "-images-idx3-ubyte[.gz])");
    labels_path = find_in_folder(path, {prefix + "-labels-idx1-ubyte", prefix + "-labels.idx1-ubyte"});
  } else {
    const size_t at = images_path.rfind("images");
    if (at != std::string::npos) {
      std::string candidate = images_path;
      candidate.replace(at, 6, "labels");
      const size_t idx3 = candidate.find("idx3");
      if (idx3 != std::string::npos) candidate.replace(idx3, 4, "idx1");
      // The labels may be compressed or not, whatever the images are.
      const bool gz = candidate.size() > 3 && candidate.compare(candidate.size() - 3, 3, ".gz") == 0;
      const std::string other = gz ? candidate.substr(0, candidate.size() - 3) : candidate + ".gz";
      if (io::path_exists(candidate)) labels_path = candidate;
      else if (io::path_exists(other)) labels_path = other;
    }
  }
  ImageSet set;
  const at::Tensor images = read_idx(images_path);
  SINKHORN_CHECK(images.dim() == 3 && images.scalar_type() == at::kByte,
                 "'" << images_path << "' is not an MNIST images file (expected unsigned bytes, N x H x W)");
  set.images = images.unsqueeze(1);
  if (!labels_path.empty()) {
    const at::Tensor labels = read_idx(labels_path);
    SINKHORN_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0),
                   "'" << labels_path << "' does not match '" << images_path << "' (" << labels.numel() << " labels for "
                       << images.size(0) << " images)");
    set.labels = labels.to(at::kLong);
  }
  return set;
}

ImageSet load_cifar10(const std::string& path, const std::string& split) {
  check_split(split);
  std::vector<std::string> files;
  if (io::is_directory(path)) {
    std::string folder = path;
    if (!io::path_exists(folder + "/test_batch.bin") && !io::path_exists(folder + "/data_batch_1.bin") &&
        io::is_directory(path + "/cifar-10-batches-bin")) {
      folder = path + "/cifar-10-batches-bin";
    }
    const std::vector<std::string> names =
        split == "train" ? std::vector<std::string>{"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"}
                         : std::vector<std::string>{"test_batch"};
    for (const std::string& name : names) {
      const std::string file = find_in_folder(folder, {name + ".bin"});
      SINKHORN_CHECK_ARG(!file.empty(), "data.path", "'" << path << "' holds no CIFAR-10 file " << name << ".bin");
      files.push_back(file);
    }
  } else {
    files.push_back(path);
  }
  constexpr int64_t kRecord = 1 + 3 * 32 * 32;
  std::vector<at::Tensor> images, labels;
  for (const std::string& file : files) {
    const std::vector<uint8_t> bytes = io::read_file_bytes(file);
    SINKHORN_CHECK(!bytes.empty() && bytes.size() % kRecord == 0,
                   "'" << file << "' is not a CIFAR-10 binary batch: " << bytes.size()
                       << " bytes is not a whole number of 3073-byte records");
    const int64_t n = static_cast<int64_t>(bytes.size()) / kRecord;
    const at::Tensor records = at::from_blob(const_cast<uint8_t*>(bytes.data()), {n, kRecord}, at::kByte).clone();
    const at::Tensor label = records.select(1, 0).to(at::kLong);
    SINKHORN_CHECK(label.max().item<int64_t>() < 10,
                   "'" << file << "' is not a CIFAR-10 binary batch: a label byte is " << label.max().item<int64_t>());
    labels.push_back(label);
    images.push_back(records.narrow(1, 1, kRecord - 1).reshape({n, 3, 32, 32}));
  }
  return {at::cat(images), at::cat(labels)};
}

}  // namespace sinkhorn::gen
