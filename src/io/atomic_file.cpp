#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "sinkhorn/error.h"
#include "util/strings.h"

namespace sinkhorn::io {
namespace {

constexpr size_t kTagDigits = 8;

[[noreturn]] void fail_writing(const std::string& path, int error, const std::string& argument) {
  const std::string message = "cannot write '" + path + "': " + std::strerror(error);
  if (argument.empty()) throw Error(message);
  throw Error(argument, message);
}

// 8 hex digits that differ between calls and processes. Not a secret: O_EXCL, not the name, is what
// makes the temporary safe; the name only makes a collision rare.
std::string fresh_tag() {
  static std::atomic<uint64_t> counter{0};
  uint64_t value = static_cast<uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ULL ^
                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                   (counter.fetch_add(1) * 0xbf58476d1ce4e5b9ULL);
  value ^= value >> 31;
  constexpr char kHex[] = "0123456789abcdef";
  std::string tag(kTagDigits, '0');
  for (size_t k = 0; k < kTagDigits; ++k) tag[k] = kHex[(value >> (4 * k)) & 15];
  return tag;
}

}  // namespace

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

int sync_folder(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int error = ::fsync(fd) == 0 ? 0 : errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  return error;
}

std::string_view final_name_of_temporary(std::string_view name) {
  constexpr std::string_view kSuffix = ".tmp";
  if (!ends_with(name, kSuffix) || name.size() < kSuffix.size() + kTagDigits + 2) return {};
  const size_t dot = name.size() - kSuffix.size() - kTagDigits - 1;
  if (name[dot] != '.') return {};
  for (size_t k = dot + 1; k < dot + 1 + kTagDigits; ++k) {
    if (!std::isxdigit(static_cast<unsigned char>(name[k]))) return {};
  }
  return name.substr(0, dot);
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat first {}, second {};
  if (::stat(a.c_str(), &first) == 0 && ::stat(b.c_str(), &second) == 0) {
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
  }
  std::error_code ignored;
  const auto resolved = [&](const std::string& path) {
    return std::filesystem::weakly_canonical(std::filesystem::absolute(path, ignored), ignored);
  };
  return resolved(a) == resolved(b);
}

void check_replaceable(const std::string& path, const std::string& argument, bool link_allowed) {
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) != 0 || S_ISREG(existing.st_mode)) return;
  if (link_allowed && S_ISLNK(existing.st_mode)) return;
  const char* kind = S_ISLNK(existing.st_mode)  ? "a symbolic link (give the path of its target)"
                     : S_ISDIR(existing.st_mode) ? "a folder"
                     : S_ISCHR(existing.st_mode) || S_ISBLK(existing.st_mode) ? "a device"
                                                                               : "not a regular file";
  std::ostringstream message;
  message << "cannot write '" << path << "': it exists and is " << kind
          << "; an output is written under a new name and renamed over the old one, which would replace it";
  if (argument.empty()) throw Error(message.str());
  throw Error(argument, message.str());
}

AtomicFile::AtomicFile(std::string path, std::string argument) : path_(std::move(path)), argument_(std::move(argument)) {
  check_replaceable(path_, argument_, /*link_allowed=*/true);
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temporary_ = path_ + "." + fresh_tag() + ".tmp";
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) fail_writing(path_, errno, argument_);
  }
  if (fd_ < 0) fail_writing(path_, EEXIST, argument_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

void AtomicFile::fail(int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  fail_writing(path_, error, argument_);
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) throw InternalError("AtomicFile::write after commit() or a failure");
  if (const int error = write_all(fd_, data, size)) fail(error);
}

void AtomicFile::commit() {
  if (fd_ < 0) throw InternalError("AtomicFile::commit twice or after a failure");
  if (::fsync(fd_) != 0) fail(errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  int error = closed == 0 ? 0 : errno;
  if (error == 0 && ::rename(temporary_.c_str(), path_.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temporary_.c_str());
    fail_writing(path_, error, argument_);
  }
}

void write_file_atomically(const std::string& path, const void* data, size_t size, const std::string& argument) {
  AtomicFile file(path, argument);
  file.write(data, size);
  file.commit();
}

void write_file_atomically(const std::string& path, std::string_view text, const std::string& argument) {
  write_file_atomically(path, text.data(), text.size(), argument);
}

void append_to_file(const std::string& path, std::string_view text, const std::string& argument) {
  int error = 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno;
  } else {
    struct stat info;
    const off_t length = ::fstat(fd, &info) == 0 ? info.st_size : -1;
    error = write_all(fd, text.data(), text.size());
    // Best effort: if this fails too, the next resume of the run removes the part row.
    if (error != 0 && length >= 0) (void)!::ftruncate(fd, length);
    if (::close(fd) != 0 && error == 0) error = errno;
  }
  if (error != 0) fail_writing(path, error, argument);
}

}  // namespace sinkhorn::io
