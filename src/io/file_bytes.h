// A whole file as bytes, gunzipped when it is gzip-compressed (zlib reads plain files unchanged), so
// every loader accepts the files as distributed (.gz) and as users unpack them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::io {

/// The file's content, decompressed if it is gzip. Throws sinkhorn::Error naming the path when
/// the file is missing, unreadable or a corrupt / truncated gzip stream.
std::vector<uint8_t> read_file_bytes(const std::string& path);

/// True if a regular file or directory exists at path.
bool path_exists(const std::string& path);
/// True if path is a directory.
bool is_directory(const std::string& path);

}  // namespace sinkhorn::io
