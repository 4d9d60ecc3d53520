// Files that appear whole or not at all. A file is written beside its final name under a fresh
// temporary name, flushed to the disk, then renamed over the final name; every system call is
// checked, so a full disk or a read-only folder becomes a sinkhorn::Error naming the file and the
// OS's reason (the temporary removed), never a crash or a half-written file under the final name.
// The temporary is created with O_EXCL | O_NOFOLLOW: a link or a file planted at a guessable name
// is never followed or truncated.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sinkhorn::io {

/// Writes all `size` bytes to the open descriptor `fd`, retrying short writes and EINTR; returns
/// 0 or the errno of the call that failed.
int write_all(int fd, const void* data, size_t size);

/// Flushes the entries of `folder` (names created, renamed or removed in it) to the disk; returns
/// 0 or the errno of the call that failed.
int sync_folder(const std::string& folder);

/// The final name of a temporary file name that AtomicFile makes ("<name>.<8 hex digits>.tmp"
/// gives "<name>"); empty for any other name.
std::string_view final_name_of_temporary(std::string_view file_name);

/// True when the paths name one file: the same device and inode where both exist (through links
/// and different spellings), the same absolute path with its links resolved otherwise.
bool same_file(const std::string& a, const std::string& b);

/// Throws Error(argument, ...) when `path` exists and is not a regular file (a device such as
/// /dev/full, a folder, a FIFO), or is a symbolic link unless `link_allowed`: renaming a new file
/// over it would replace the node or the link itself rather than write into it. AtomicFile checks
/// it with links allowed (a link planted in a run folder is replaced, never followed); a command
/// checks the outputs its user named with links refused, before any work.
void check_replaceable(const std::string& path, const std::string& argument, bool link_allowed);

/// A file written in pieces and put in place at once.
class AtomicFile {
 public:
  /// Creates the temporary "<path>.<8 hex digits>.tmp" beside `path`. Errors, here and below, are
  /// Error(argument, "cannot write '<path>': <OS error>") (Error(message) when argument is empty).
  /// A `path` that exists and is neither a regular file nor a link is refused first
  /// (check_replaceable); a link is replaced, not followed.
  AtomicFile(std::string path, std::string argument);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  /// Without commit(): closes and removes the temporary; `path` stays as it was.
  ~AtomicFile();

  /// Appends `size` bytes; on failure the temporary is removed and Error is thrown.
  void write(const void* data, size_t size);
  /// Flushes the data to the disk (so that after a power cut the name never points at unwritten
  /// blocks), closes and renames the temporary over `path`.
  void commit();
  /// The final name.
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(int error);

  std::string path_, temporary_, argument_;
  int fd_ = -1;
};

/// Writes `size` bytes to `path` atomically (AtomicFile: write, fsync, close, rename). On failure
/// `path` is left as it was and Error(argument, "cannot write '<path>': <OS error>") is thrown.
void write_file_atomically(const std::string& path, const void* data, size_t size, const std::string& argument);
/// The same for text.
void write_file_atomically(const std::string& path, std::string_view text, const std::string& argument);

/// Appends `text` to `path` (created if missing; a link is not followed). On failure cuts the file
/// back to its previous length, as far as the system lets it, so that no half line stays behind,
/// and throws Error(argument, "cannot write '<path>': <OS error>").
void append_to_file(const std::string& path, std::string_view text, const std::string& argument);

}  // namespace sinkhorn::io
