// A small command-line parser: `--name value`, `--name=value`, flags and positionals, with a
// generated --help. Mistakes throw sinkhorn::Error naming the option.
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gen/train_config.h"

namespace sinkhorn::cli {

// Ranges shared by several commands' integer options (each option states its own range where it is
// declared; parse() enforces it before any value is narrowed or allocated).
/// --threads: beyond this, starting the threads takes longer than any solve they would speed up.
constexpr long long kMaxThreads = 1024;
/// --seed: any 63-bit value (the training settings' range, gen/train_config.h).
constexpr long long kMaxSeed = static_cast<long long>(gen::kMaxSeed);
/// Step counts (--steps, --eval-every, ...): the training settings' range, 10^9 steps.
constexpr long long kMaxSteps = gen::kMaxSteps;
/// sample --n: written in batches, so bounded by the disk, not memory: 10^9 samples.
constexpr long long kMaxSamples = 1000000000;

class ParsedArguments {
 public:
  std::optional<std::string> value(const std::string& name) const;
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positionals() const { return positionals_; }
  /// Names of the options given with a value, in alphabetical order.
  std::vector<std::string> given_options() const;
  /// The option as a finite number; throws naming --name when it is not one.
  std::optional<double> number(const std::string& name) const;
  /// An option declared with ArgumentParser::integer: parse() has already checked its range.
  std::optional<long long> integer(const std::string& name) const;

 private:
  friend class ArgumentParser;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positionals_;
  std::map<std::string, std::pair<long long, long long>> integer_ranges_;
};

class ArgumentParser {
 public:
  ArgumentParser(std::string usage, std::string summary);
  /// An option taking a value: --name VALUE_NAME.
  ArgumentParser& option(const std::string& name, const std::string& value_name, const std::string& help);
  /// An option taking an integer in [min, max]: parse() refuses anything else naming --name, before
  /// any caller narrows it (a 64-bit 4294967298 must not run as a 32-bit 2).
  ArgumentParser& integer(const std::string& name, const std::string& value_name, const std::string& help,
                          long long min, long long max);
  /// An option without a value: --name.
  ArgumentParser& flag(const std::string& name, const std::string& help);
  /// A required positional argument.
  ArgumentParser& positional(const std::string& name, const std::string& help);
  /// Parses args (without the program and command names). --help is always accepted as a flag.
  ParsedArguments parse(const std::vector<std::string>& args) const;
  std::string help() const;

 private:
  struct Entry {
    std::string name, value_name, help;
    bool is_integer = false;
    long long min = 0, max = 0;
  };
  std::string usage_, summary_;
  std::vector<Entry> options_, positionals_;
  const Entry* find(const std::string& name) const;
};

/// --device: cpu (the default, when the option is absent) or cuda / cuda:K, for every command that
/// has the option (divergence, train, sample). Refused naming --device when the name is not one of
/// these, or when this LibTorch has no CUDA support, the machine no GPU, or no GPU K.
at::Device device_from(const ParsedArguments& args);

/// --timeout SECONDS under torchrun (divergence, train): how long a collective may wait for a
/// lost or stalled rank before every other rank ends; 60 s when absent. Refused naming --timeout
/// unless in (0, 86400].
std::chrono::milliseconds timeout_from(const ParsedArguments& args);

}  // namespace sinkhorn::cli
