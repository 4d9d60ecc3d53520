#include "io/file_bytes.h"

#include <zlib.h>

#include <cerrno>
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

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  struct stat info;
  SINKHORN_CHECK(::stat(path.c_str(), &info) == 0, "cannot open '" << path << "': " << std::strerror(errno));
  SINKHORN_CHECK(S_ISREG(info.st_mode), "'" << path << "' is not a regular file");
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
