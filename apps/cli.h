// The `sinkhorn` command: one binary, subcommands. Each command takes its arguments (after the
// command name) and two streams, and returns the process exit code: 0 success, 2 bad input or
// usage (the message names the argument), 1 an unexpected failure; train also returns 3 when it
// stopped on a non-finite loss, and 130 (SIGINT, Ctrl-C) or 143 (SIGTERM) when a signal stopped it
// after saving a checkpoint. Out of memory is reported on one line with status 1.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace sinkhorn::cli {

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int divergence_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int demo_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int sample_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int experiment_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// Sets LibTorch's intra-op thread count (and OpenMP's): --threads, else every core.
void set_threads(long long requested);

class ArgumentParser;
class ParsedArguments;
/// Every command's start: parses its arguments, prints the help and returns nothing on --help,
/// and sets the thread count from --threads.
std::optional<ParsedArguments> parse_command(const ArgumentParser& parser, const std::vector<std::string>& arguments,
                                             std::ostream& out);

}  // namespace sinkhorn::cli
