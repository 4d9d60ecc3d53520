// A .npy file written as its data comes: the header for the whole shape first, then the values in
// pieces, so that an array larger than memory (`sinkhorn sample --n 10000000`) is saved a batch at
// a time. Meant as the one writer of .npy headers in the project (io::write_npy is to write through
// it, so that the two cannot drift apart).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sinkhorn::io {

class AtomicFile;

class NpyWriter {
 public:
  /// Starts a little-endian C-order array of `dtype` ("float32" or "float64") and `shape` (every
  /// dimension >= 0) beside `path` (io::AtomicFile); finish() puts it in place. Errors are
  /// Error(argument, "cannot write '<path>': ...") (Error(message) when argument is empty).
  NpyWriter(std::string path, const std::string& dtype, const std::vector<int64_t>& shape, std::string argument = "");
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  /// Without finish(): removes the temporary file (no partial file under `path`).
  ~NpyWriter();

  /// Appends `count` values, in C order after those appended before, converted to the dtype.
  void append(const float* values, size_t count);
  /// The same from doubles (narrowed to float32 for a float32 file, as NumPy's astype does).
  void append(const double* values, size_t count);
  /// Checks that the shape is complete, flushes to the disk and renames the file into place.
  void finish();

 private:
  template <typename Value>
  void append_values(const Value* values, size_t count);

  std::string path_, argument_;
  bool is_double_ = false;
  uint64_t expected_ = 0, written_ = 0;
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace sinkhorn::io
