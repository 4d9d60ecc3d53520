// Files that appear whole or not at all. A file is written beside its final name as <path>.tmp,
// flushed to the disk, then renamed over <path>; every system call is checked, so a full disk or a
// read-only folder becomes a sinkhorn::Error naming the argument and the OS's reason (with the .tmp
// removed), never a crash or a half-written file under the final name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::gen {

/// Writes `size` bytes to `path` atomically (write, fsync, close, rename). On failure removes the
/// .tmp, leaves any previous `path` as it was and throws Error(argument, "cannot write '<path>':
/// <OS error>").
void write_file_atomically(const std::string& path, const void* data, size_t size, const std::string& argument);
/// The same for text.
void write_file_atomically(const std::string& path, const std::string& text, const std::string& argument);

/// Appends `text` to `path` (created if missing). On failure cuts the file back to its previous
/// length, so that no half line stays behind, and throws Error(argument, "cannot write ...").
void append_to_file(const std::string& path, const std::string& text, const std::string& argument);

/// The whole of the regular file `path`, refusing anything else (a folder, a device, a pipe) and
/// files over `max_bytes` before reading them. Throws Error(argument, "'<path>' ...").
std::vector<char> read_regular_file(const std::string& path, int64_t max_bytes, const std::string& argument);

/// Writes all of data to the open file descriptor, retrying short writes and EINTR; returns 0 or
/// the errno of the failed call.
int write_all(int fd, const void* data, size_t size);

}  // namespace sinkhorn::gen
