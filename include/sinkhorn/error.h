// The exception types of the library. Callers (the command line, the Python package) tell a user's
// mistake (Error: exit status 2, ValueError) from a broken invariant (InternalError: a bug, exit 1).
#pragma once

#include <stdexcept>
#include <string>

namespace sinkhorn {

/// Bad input or options. The message names the argument and the problem; when the check knows
/// which argument it was, argument() holds the library's name for it ("x", "a", "blur",
/// "max_iterations", ...) and problem() the rest, so a front end can say it in its user's words
/// (the command line's --wx, the Python package's keyword).
class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& message) : std::invalid_argument(message), problem_(message) {}
  Error(const std::string& argument, const std::string& problem)
      : std::invalid_argument(argument + " " + problem), argument_(argument), problem_(problem) {}
  /// The library's name of the argument at fault; empty when the message alone says it.
  const std::string& argument() const { return argument_; }
  /// The message without the argument's name.
  const std::string& problem() const { return problem_; }

 private:
  std::string argument_, problem_;
};

/// An invariant of the library's own code failed: a bug to report, never the user's input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

/// A collective of a sharded solve failed: a peer process died, stalled past the group's
/// timeout, or the network between them broke. The message names the lost rank when it is known.
/// Not the caller's input and not a bug: the command line exits with status 3.
class PeerError : public std::runtime_error {
 public:
  explicit PeerError(const std::string& message) : std::runtime_error(message) {}
};

/// The front end asked a running solve to stop (Python: Ctrl-C, a pending KeyboardInterrupt);
/// see util/interrupt.h. Thrown between sweeps, never from inside a kernel.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

}  // namespace sinkhorn
