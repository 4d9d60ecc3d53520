// Small files written by the tests themselves: a scratch folder, IDX and CIFAR-10 files built byte
// by byte from their format specifications (independent of the readers under test).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace sinkhorn::testing {

/// A fresh folder under /tmp, removed at the end of the test.
class ScratchFolder {
 public:
  ScratchFolder() {
    char pattern[] = "/tmp/sinkhorn-test-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~ScratchFolder() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

/// An unsigned-byte IDX file: magic 0x00000800 + rank, big-endian dimensions, then the data.
inline std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& shape, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes{0, 0, 0x08, static_cast<uint8_t>(shape.size())};
  for (uint32_t d : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(d >> shift));
  }
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

/// n MNIST-like 28 x 28 images whose pixel (i, j) of image k is (k * 31 + i * 7 + j) mod 256.
inline std::vector<uint8_t> patterned_pixels(uint32_t n, uint32_t side = 28) {
  std::vector<uint8_t> pixels;
  for (uint32_t k = 0; k < n; ++k)
    for (uint32_t i = 0; i < side; ++i)
      for (uint32_t j = 0; j < side; ++j) pixels.push_back(static_cast<uint8_t>((k * 31 + i * 7 + j) % 256));
  return pixels;
}

}  // namespace sinkhorn::testing
