// A .npy file written as its data comes: the header for the whole shape first, then the values in
// pieces, so that an array larger than memory (`sinkhorn sample --n 10000000`) is saved a batch at
// a time. The bytes are those io::write_npy writes for the same float32 array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::io {

class NpyWriter {
 public:
  /// Starts a C-order float32 array of `shape` in `<path>.tmp`; finish() renames it to `path`.
  /// Errors are sinkhorn::Error(argument, "cannot write '<path>': <OS error>").
  NpyWriter(std::string path, std::vector<int64_t> shape, std::string argument);
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  /// Without finish(): closes and removes the .tmp (no partial file under `path`).
  ~NpyWriter();

  /// Appends `count` values, in C order after those appended before.
  void append(const float* values, size_t count);
  /// Checks that the shape is complete, flushes to the disk and renames the file into place.
  void finish();

 private:
  [[noreturn]] void fail(int error);

  std::string path_, temporary_, argument_;
  uint64_t expected_ = 0, written_ = 0;
  int fd_ = -1;
};

}  // namespace sinkhorn::io
