// A whole file as bytes, gunzipped when it is gzip-compressed (zlib reads plain files unchanged), so
// every loader accepts the files as distributed (.gz) and as users unpack them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::io {

/// Largest file (or decompressed gzip stream) the readers accept: 4 GiB, beyond any data set they
/// serve (CIFAR-10's training batches are 180 MB) yet far under a gzip bomb's output.
constexpr uint64_t kLargestFile = uint64_t{4} << 30;

/// The bytes of a regular file, at most max_bytes of them. Refuses, naming the path, what is not
/// a regular file (a FIFO, /dev/zero or a link to it: a read that never ends; checked on the open
/// descriptor, so nothing can be swapped in between) or is larger, or changes while it is read.
/// Errors carry `argument` (the library's name of what the user passed) when it is not empty.
std::string read_regular_file(const std::string& path, uint64_t max_bytes = kLargestFile,
                              const std::string& argument = "");

/// The file's content, decompressed if it is gzip, at most max_bytes after decompression. Throws
/// sinkhorn::Error naming the path when the file is missing, not a regular file, unreadable, too
/// large, or a corrupt / truncated gzip stream.
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes = kLargestFile);

/// True if a regular file or directory exists at path.
bool path_exists(const std::string& path);
/// True if path is a directory.
bool is_directory(const std::string& path);

}  // namespace sinkhorn::io
