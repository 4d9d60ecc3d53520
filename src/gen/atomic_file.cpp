#include "gen/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/check.h"

namespace sinkhorn::gen {

int write_all(int fd, const void* data, size_t size) {
  const char* next = static_cast<const char*>(data);
  while (size > 0) {
    // One call writes at most about 2 GiB on Linux: ask for 1 GiB at a time.
    const ssize_t written = ::write(fd, next, std::min<size_t>(size, size_t{1} << 30));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (written == 0) return EIO;  // no progress and no error: do not spin
    next += written;
    size -= static_cast<size_t>(written);
  }
  return 0;
}

void write_file_atomically(const std::string& path, const void* data, size_t size, const std::string& argument) {
  const std::string temporary = path + ".tmp";
  int error = 0;
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno;
  } else {
    error = write_all(fd, data, size);
    // fsync before rename: after a power cut the new name must not point at unwritten blocks.
    if (error == 0 && ::fsync(fd) != 0) error = errno;
    if (::close(fd) != 0 && error == 0) error = errno;
    if (error == 0 && ::rename(temporary.c_str(), path.c_str()) != 0) error = errno;
    if (error != 0) ::unlink(temporary.c_str());
  }
  SINKHORN_CHECK_ARG(error == 0, argument, "cannot write '" << path << "': " << std::strerror(error));
}

void write_file_atomically(const std::string& path, const std::string& text, const std::string& argument) {
  write_file_atomically(path, text.data(), text.size(), argument);
}

void append_to_file(const std::string& path, const std::string& text, const std::string& argument) {
  int error = 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno;
  } else {
    struct stat info;
    const off_t length = ::fstat(fd, &info) == 0 ? info.st_size : -1;
    error = write_all(fd, text.data(), text.size());
    if (error != 0 && length >= 0) (void)!::ftruncate(fd, length);  // best effort: drop the partial line
    if (::close(fd) != 0 && error == 0) error = errno;
  }
  SINKHORN_CHECK_ARG(error == 0, argument, "cannot write '" << path << "': " << std::strerror(error));
}

std::vector<char> read_regular_file(const std::string& path, int64_t max_bytes, const std::string& argument) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  SINKHORN_CHECK_ARG(fd >= 0, argument, "cannot open '" << path << "': " << std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    SINKHORN_CHECK_ARG(false, argument, "cannot read '" << path << "': " << std::strerror(error));
  }
  if (!S_ISREG(info.st_mode) || info.st_size > max_bytes) {
    ::close(fd);
    SINKHORN_CHECK_ARG(S_ISREG(info.st_mode), argument, "'" << path << "' is not a regular file");
    SINKHORN_CHECK_ARG(false, argument,
                       "'" << path << "' is too large (" << info.st_size << " bytes; the limit is " << max_bytes << ")");
  }
  std::vector<char> bytes(static_cast<size_t>(info.st_size));
  size_t done = 0;
  int error = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, std::min<size_t>(bytes.size() - done, size_t{1} << 30));
    if (got < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    if (got == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  SINKHORN_CHECK_ARG(error == 0, argument, "cannot read '" << path << "': " << std::strerror(error));
  SINKHORN_CHECK_ARG(done == bytes.size(), argument, "'" << path << "' changed while it was read (it is being written?)");
  return bytes;
}

}  // namespace sinkhorn::gen
