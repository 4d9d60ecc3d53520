// The command line's words for the library's argument names. The library's errors carry the name
// of the argument at fault (sinkhorn::Error::argument(): "a", "max_iterations", "data.path"); this
// one table turns it into what the user typed (--wx, --max-iterations, --data-path).
#pragma once

#include <string>

#include "sinkhorn/error.h"

namespace sinkhorn::cli {

/// The flag (or positional) a library argument name stands for on the command line: "--wx" for
/// "a", "X" for "x", "--lr" for "learning_rate"; any other name as --name with '-' for '_'.
std::string flag_for(const std::string& argument);

/// The error's message in the command line's words: its argument as flag_for() names it, then the
/// problem; messages without an argument unchanged.
std::string message_for(const Error& error);

}  // namespace sinkhorn::cli
