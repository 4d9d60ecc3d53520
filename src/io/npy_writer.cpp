#include "io/npy_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/check.h"

namespace sinkhorn::io {
namespace {

// Writes everything, retrying short writes and EINTR; 0 or the failing call's errno.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, std::min<size_t>(size, size_t{1} << 30));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (written == 0) return EIO;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return 0;
}

// NumPy's format 1.0 header for a little-endian float32 C-order array, padded with spaces and a
// newline so that the data starts at a multiple of 64 bytes (as io::write_npy pads it).
std::string npy_header(const std::vector<int64_t>& shape) {
  std::string dims = "(";
  for (size_t k = 0; k < shape.size(); ++k) {
    dims += std::to_string(shape[k]) + (shape.size() == 1 || k + 1 < shape.size() ? "," : "");
    if (k + 1 < shape.size()) dims += " ";
  }
  dims += ")";
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + dims + ", }";
  constexpr size_t kPrefix = 6 + 2 + 2;  // magic, version, header length
  dict.append((64 - (kPrefix + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string header("\x93NUMPY\x01\x00", 8);
  header += static_cast<char>(dict.size() & 0xff);
  header += static_cast<char>(dict.size() >> 8);
  return header + dict;
}

}  // namespace

NpyWriter::NpyWriter(std::string path, std::vector<int64_t> shape, std::string argument)
    : path_(std::move(path)), temporary_(path_ + ".tmp"), argument_(std::move(argument)) {
  expected_ = 1;
  for (const int64_t d : shape) {
    SINKHORN_CHECK_ARG(d >= 0, argument_, "cannot write '" << path_ << "': a negative dimension " << d);
    expected_ *= static_cast<uint64_t>(d);
  }
  const uint16_t probe = 1;
  SINKHORN_CHECK(*reinterpret_cast<const uint8_t*>(&probe) == 1, "NpyWriter: big-endian hosts are not supported");
  const std::string header = npy_header(shape);
  SINKHORN_INTERNAL_CHECK(header.size() <= 8 + 2 + 0xffff, "a .npy header past format 1.0's limit");
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(errno);
  if (const int error = write_all(fd_, header.data(), header.size())) fail(error);
}

NpyWriter::~NpyWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

void NpyWriter::fail(int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  throw Error(argument_, "cannot write '" + path_ + "': " + std::strerror(error));
}

void NpyWriter::append(const float* values, size_t count) {
  SINKHORN_INTERNAL_CHECK(fd_ >= 0, "NpyWriter::append after finish() or a failure");
  SINKHORN_INTERNAL_CHECK(count <= expected_ - written_, "more values than the .npy's shape holds");
  if (const int error = write_all(fd_, reinterpret_cast<const char*>(values), count * sizeof(float))) fail(error);
  written_ += count;
}

void NpyWriter::finish() {
  SINKHORN_INTERNAL_CHECK(fd_ >= 0, "NpyWriter::finish twice or after a failure");
  SINKHORN_INTERNAL_CHECK(written_ == expected_, "a .npy finished with " << written_ << " of " << expected_ << " values");
  if (::fsync(fd_) != 0) fail(errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  int error = closed == 0 ? 0 : errno;
  if (error == 0 && ::rename(temporary_.c_str(), path_.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temporary_.c_str());
    throw Error(argument_, "cannot write '" + path_ + "': " + std::strerror(error));
  }
}

}  // namespace sinkhorn::io
