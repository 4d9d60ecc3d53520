#include "io/file_bytes.h"

#include <zlib.h>

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

// stat() follows links: a link to /dev/zero is a character device here, refused like a FIFO.
struct stat regular_file_status(const std::string& path, uint64_t max_bytes) {
  struct stat info;
  SINKHORN_CHECK(::stat(path.c_str(), &info) == 0, "cannot open '" << path << "': " << std::strerror(errno));
  SINKHORN_CHECK(!S_ISDIR(info.st_mode), "'" << path << "' is a folder, not a file");
  SINKHORN_CHECK(S_ISREG(info.st_mode), "'" << path << "' is not a regular file (a device, FIFO or socket "
                                                           "never ends or cannot be read twice)");
  SINKHORN_CHECK(static_cast<uint64_t>(info.st_size) <= max_bytes,
                 "'" << path << "' is " << info.st_size << " bytes, more than the " << max_bytes << " this reader accepts");
  return info;
}

}  // namespace

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  const struct stat info = regular_file_status(path, max_bytes);
  std::FILE* file = std::fopen(path.c_str(), "rb");
  SINKHORN_CHECK(file != nullptr, "cannot open '" << path << "': " << std::strerror(errno));
  // Read what stat promised plus one byte: a file that grows meanwhile is still bounded.
  std::string bytes(static_cast<size_t>(info.st_size) + 1, '\0');
  const size_t got = std::fread(bytes.data(), 1, bytes.size(), file);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  SINKHORN_CHECK(!failed, "cannot read '" << path << "': " << std::strerror(errno));
  SINKHORN_CHECK(got <= static_cast<size_t>(info.st_size), "'" << path << "' grew while it was read");
  bytes.resize(got);
  return bytes;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes) {
  const struct stat info = regular_file_status(path, max_bytes);
  gzFile file = gzopen(path.c_str(), "rb");
  SINKHORN_CHECK(file != nullptr, "cannot open '" << path << "': " << std::strerror(errno));
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
