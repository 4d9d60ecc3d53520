// A small command-line parser: `--name value`, `--name=value`, flags and positionals, with a
// generated --help. Mistakes throw sinkhorn::Error naming the option.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sinkhorn::cli {

class ParsedArguments {
 public:
  std::optional<std::string> value(const std::string& name) const;
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positionals() const { return positionals_; }
  /// Names of the options given with a value, in alphabetical order.
  std::vector<std::string> given_options() const;
  /// The option as a finite number; throws naming --name when it is not one.
  std::optional<double> number(const std::string& name) const;
  /// The option as an integer; throws naming --name when it is not one.
  std::optional<long long> integer(const std::string& name) const;

 private:
  friend class ArgumentParser;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positionals_;
};

class ArgumentParser {
 public:
  ArgumentParser(std::string usage, std::string summary);
  /// An option taking a value: --name VALUE_NAME.
  ArgumentParser& option(const std::string& name, const std::string& value_name, const std::string& help);
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
  };
  std::string usage_, summary_;
  std::vector<Entry> options_, positionals_;
  const Entry* find(const std::string& name) const;
};

}  // namespace sinkhorn::cli
