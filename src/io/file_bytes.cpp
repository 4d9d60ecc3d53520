#include "io/file_bytes.h"

#include <zlib.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

#include "util/check.h"

namespace sinkhorn::io {

bool path_exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

bool is_directory(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

namespace {

// Throws Error(argument, message) when argument is set, else Error(message).
[[noreturn]] void fail(const std::string& argument, const std::string& message) {
  if (argument.empty()) throw Error(message);
  throw Error(argument, message);
}

// An open descriptor of the regular file at path, at most max_bytes long. O_NONBLOCK: opening a
// FIFO must not wait for a writer; fstat on the descriptor then refuses it (stat() before open()
// would leave a window to swap a FIFO in). A link to /dev/zero is a character device here.
int open_regular_file(const std::string& path, uint64_t max_bytes, const std::string& argument, struct stat& info) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(argument, "cannot open '" + path + "': " + std::strerror(errno));
  std::string problem;
  if (::fstat(fd, &info) != 0) {
    problem = "cannot read '" + path + "': " + std::strerror(errno);
  } else if (S_ISDIR(info.st_mode)) {
    problem = "'" + path + "' is a folder, not a file";
  } else if (!S_ISREG(info.st_mode)) {
    problem = "'" + path + "' is not a regular file (a device, FIFO or socket never ends or cannot be read twice)";
  } else if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    problem = "'" + path + "' is " + std::to_string(info.st_size) + " bytes, more than the " +
              std::to_string(max_bytes) + " this reader accepts";
  }
  if (!problem.empty()) {
    ::close(fd);
    fail(argument, problem);
  }
  return fd;
}

}  // namespace

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& argument) {
  struct stat info;
  const int fd = open_regular_file(path, max_bytes, argument, info);
  // What fstat promised plus one byte: a file that grows meanwhile is noticed, and still bounded.
  std::string bytes(static_cast<size_t>(info.st_size) + 1, '\0');
  size_t done = 0;
  int error = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, std::min<size_t>(bytes.size() - done, size_t{1} << 30));
    if (got < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  if (error != 0) fail(argument, "cannot read '" + path + "': " + std::strerror(error));
  if (done != static_cast<size_t>(info.st_size)) {
    fail(argument, "'" + path + "' changed while it was read (is it being written?)");
  }
  bytes.resize(done);
  return bytes;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes) {
  struct stat info;
  const int fd = open_regular_file(path, max_bytes, "", info);
  gzFile file = gzdopen(fd, "rb");  // owns fd from here
  if (file == nullptr) {
    ::close(fd);
    fail("", "cannot open '" + path + "': out of memory");
  }
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(info.st_size));
  constexpr unsigned kChunk = 1u << 20;
  std::vector<uint8_t> chunk(kChunk);
  while (true) {
    const int got = gzread(file, chunk.data(), kChunk);
    if (got < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      SINKHORN_CHECK(false, "cannot read '" << path << "': corrupt gzip data (" << message << ")");
    }
    if (bytes.size() + static_cast<size_t>(got) > max_bytes) {
      gzclose(file);
      SINKHORN_CHECK(false, "'" << path << "' decompresses to more than " << max_bytes
                                << " bytes, more than this reader accepts");
    }
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
    if (got < static_cast<int>(kChunk)) break;
  }
  // A gzip stream cut short ends without an error from gzread on some zlib versions; gzclose_r
  // reports it (Z_BUF_ERROR) or a bad checksum (Z_DATA_ERROR).
  const int closed = gzclose_r(file);
  SINKHORN_CHECK(closed == Z_OK, "cannot read '" << path << "': "
                                     << (closed == Z_BUF_ERROR ? "the gzip stream is truncated" : "corrupt gzip data"));
  return bytes;
}

}  // namespace sinkhorn::io
