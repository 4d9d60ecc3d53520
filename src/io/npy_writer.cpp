#include "io/npy_writer.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "io/atomic_file.h"
#include "util/check.h"

namespace sinkhorn::io {
namespace {

// NumPy's format 1.0 header, padded with spaces and a newline so that the data starts at a
// multiple of 64 bytes (NumPy's own alignment).
std::string npy_header(const char* descr, const std::vector<int64_t>& shape) {
  std::string dims = "(";
  for (size_t k = 0; k < shape.size(); ++k) {
    dims += std::to_string(shape[k]) + (shape.size() == 1 || k + 1 < shape.size() ? "," : "");
    if (k + 1 < shape.size()) dims += " ";
  }
  dims += ")";
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + dims + ", }";
  constexpr size_t kPrefix = 6 + 2 + 2;  // magic, version, header length
  dict.append((64 - (kPrefix + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string header("\x93NUMPY\x01\x00", 8);
  header += static_cast<char>(dict.size() & 0xff);
  header += static_cast<char>(dict.size() >> 8);
  return header + dict;
}

}  // namespace

NpyWriter::NpyWriter(std::string path, const std::string& dtype, const std::vector<int64_t>& shape, std::string argument)
    : path_(std::move(path)), argument_(std::move(argument)) {
  const auto refuse = [&](const std::string& problem) {
    const std::string message = "cannot write '" + path_ + "': " + problem;
    if (argument_.empty()) throw Error(message);
    throw Error(argument_, message);
  };
  if (dtype != "float32" && dtype != "float64") refuse("can only write float32 or float64, not " + dtype);
  is_double_ = dtype == "float64";
  expected_ = 1;
  for (const int64_t d : shape) {
    if (d < 0) refuse("a negative dimension " + std::to_string(d));
    // The byte count must fit in 64 bits: a shape past that is no file anyone can write.
    if (d > 0 && expected_ > std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(d)) {
      refuse("the shape holds more values than a file can");
    }
    expected_ *= static_cast<uint64_t>(d);
  }
  const uint16_t probe = 1;
  SINKHORN_CHECK(*reinterpret_cast<const uint8_t*>(&probe) == 1, "NpyWriter: big-endian hosts are not supported");
  const std::string header = npy_header(is_double_ ? "<f8" : "<f4", shape);
  if (header.size() > 8 + 2 + 0xffff) refuse("the shape is too long for a .npy header");
  file_ = std::make_unique<AtomicFile>(path_, argument_);
  file_->write(header.data(), header.size());
}

NpyWriter::~NpyWriter() = default;

template <typename Value>
void NpyWriter::append_values(const Value* values, size_t count) {
  SINKHORN_INTERNAL_CHECK(file_, "NpyWriter::append after finish() or a failure");
  SINKHORN_INTERNAL_CHECK(count <= expected_ - written_, "more values than the .npy's shape holds");
  const auto write = [&](const auto* data, size_t n) {
    try {
      file_->write(data, n * sizeof(*data));
    } catch (...) {
      file_.reset();  // AtomicFile removed its temporary
      throw;
    }
  };
  if (sizeof(Value) == (is_double_ ? sizeof(double) : sizeof(float))) {
    write(values, count);  // already the file's type
  } else {
    // Converted a block at a time: memory stays bounded whatever `count`.
    constexpr size_t kBlock = size_t{1} << 16;
    for (size_t done = 0; done < count; done += kBlock) {
      const size_t n = std::min(kBlock, count - done);
      if (is_double_) {
        std::vector<double> block(values + done, values + done + n);
        write(block.data(), n);
      } else {
        std::vector<float> block(n);
        for (size_t k = 0; k < n; ++k) block[k] = static_cast<float>(values[done + k]);
        write(block.data(), n);
      }
    }
  }
  written_ += count;
}

void NpyWriter::append(const float* values, size_t count) { append_values(values, count); }
void NpyWriter::append(const double* values, size_t count) { append_values(values, count); }

void NpyWriter::finish() {
  SINKHORN_INTERNAL_CHECK(file_, "NpyWriter::finish twice or after a failure");
  SINKHORN_INTERNAL_CHECK(written_ == expected_, "a .npy finished with " << written_ << " of " << expected_ << " values");
  std::unique_ptr<AtomicFile> file = std::move(file_);
  file->commit();
}

}  // namespace sinkhorn::io
