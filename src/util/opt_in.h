// Code paths that have not run on their hardware yet are opt-in (never the default): each is
// switched on by one environment variable set to "1", which scripts/gpu/check.sh sets for its run.
#pragma once

#include <cstdlib>
#include <cstring>

namespace sinkhorn::util {

/// True when the environment variable `name` is exactly "1".
inline bool opted_in(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::strcmp(value, "1") == 0;
}

}  // namespace sinkhorn::util
