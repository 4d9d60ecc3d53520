// Small files written by the tests themselves: a scratch folder, IDX and CIFAR-10 files built byte
// by byte from their format specifications (independent of the readers under test).
#pragma once

#include <zlib.h>

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "test_support.h"

namespace sinkhorn::testing {

/// A fresh folder under /tmp, removed at the end of the test.
class ScratchFolder {
 public:
  ScratchFolder() {
    char pattern[] = "/tmp/sinkhorn-test-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~ScratchFolder() { remove_tree(path_); }
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

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

/// The file's bytes as text.
inline std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

/// Every file under `folder` (relative path -> size and CRC-32 of its bytes), to show that a
/// refused command left a run folder byte for byte as it was. `skip`: names left out (e.g. the
/// lock file of a run that was killed).
inline std::map<std::string, std::string> file_digests(const std::string& folder,
                                                       const std::vector<std::string>& skip = {}) {
  std::map<std::string, std::string> digests;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder)) {
    const std::string name = std::filesystem::relative(entry.path(), folder).string();
    bool skipped = false;
    for (const std::string& s : skip) skipped = skipped || name == s || name.rfind(s + "/", 0) == 0;
    if (skipped) continue;
    if (!entry.is_regular_file()) {
      digests[name] = "(folder or special file)";
      continue;
    }
    const std::vector<uint8_t> bytes = read_bytes(entry.path().string());
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes.data(), static_cast<uInt>(bytes.size()));
    digests[name] = std::to_string(bytes.size()) + " bytes, crc " + std::to_string(crc);
  }
  return digests;
}

/// The files under `folder` whose names end in .tmp.
inline std::vector<std::string> tmp_files(const std::string& folder) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder)) {
    const std::string name = entry.path().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) found.push_back(name);
  }
  return found;
}

/// A small tmpfs mounted on a fresh folder, to fill a disk on purpose; unmounted at the end.
/// mounted() is false when this process may not mount (not root, or no CAP_SYS_ADMIN).
class TmpfsMount {
 public:
  explicit TmpfsMount(int64_t bytes) {
    if (::geteuid() != 0) return;
    const std::string options = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", folder_.path().c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(folder_.path().c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool mounted() const { return mounted_; }
  std::string file(const std::string& name) const { return folder_.file(name); }

 private:
  ScratchFolder folder_;
  bool mounted_ = false;
};

/// Fills the file system holding `folder` with a file `filler` until `leave` bytes (about) are free.
inline bool fill_disk(const std::string& folder, int64_t leave) {
  const std::filesystem::space_info space = std::filesystem::space(folder);
  if (static_cast<int64_t>(space.available) <= leave) return true;
  std::ofstream file(folder + "/filler", std::ios::binary);
  const std::vector<char> block(4096, 'x');
  for (int64_t left = static_cast<int64_t>(space.available) - leave; left > 0; left -= 4096) {
    file.write(block.data(), static_cast<std::streamsize>(std::min<int64_t>(left, 4096)));
  }
  file.close();
  return !file.fail();
}

}  // namespace sinkhorn::testing
