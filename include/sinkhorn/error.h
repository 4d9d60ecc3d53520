// The one exception type the library throws for bad input, so callers (and the command line) can
// tell a user's mistake from an internal failure.
#pragma once

#include <stdexcept>
#include <string>

namespace sinkhorn {

/// Bad input or options: the message names the argument and the problem.
class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& message) : std::invalid_argument(message) {}
};

}  // namespace sinkhorn
