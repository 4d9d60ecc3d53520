// What every fuzz target shares: the fuzzer's bytes as a file (the readers take paths, as users
// give them), and the rule that a reader may refuse input only with sinkhorn::Error. Anything
// else escaping (a crash, a sanitizer report, another exception, a hang, a huge allocation) is a
// finding: libFuzzer stops and saves the input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace sinkhorn::fuzz {

/// Writes the input to one file per process (in /dev/shm when it exists) named with `suffix`,
/// which the readers use to pick a format (.npy, .csv, .gz ...); returns its path.
inline std::string input_file(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::string folder = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = folder + "/sinkhorn-fuzz-" + std::to_string(::getpid()) + suffix;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();  // the harness itself failed: not a finding about the reader
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  return path;
}

}  // namespace sinkhorn::fuzz
