#include "arguments.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "platform/devices.h"
#include "util/check.h"

namespace sinkhorn::cli {

std::vector<std::string> ParsedArguments::given_options() const {
  std::vector<std::string> names;
  for (const auto& entry : values_) names.push_back(entry.first);
  return names;
}

std::optional<std::string> ParsedArguments::value(const std::string& name) const {
  const auto found = values_.find(name);
  if (found == values_.end()) return std::nullopt;
  return found->second;
}

std::optional<double> ParsedArguments::number(const std::string& name) const {
  const std::optional<std::string> text = value(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  const double parsed = std::strtod(text->c_str(), &end);
  SINKHORN_CHECK(!text->empty() && *end == '\0' && std::isfinite(parsed),
                 "--" << name << ": expected a number, got '" << *text << "'");
  return parsed;
}

namespace {

// The text as a base-10 integer in [min, max]; every failure names --name.
long long parse_integer(const std::string& name, const std::string& text, long long min, long long max) {
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(text.c_str(), &end, 10);
  SINKHORN_CHECK(!text.empty() && *end == '\0', "--" << name << ": expected an integer, got '" << text << "'");
  SINKHORN_CHECK(errno != ERANGE && parsed >= min && parsed <= max,
                 "--" << name << " must be between " << min << " and " << max << ", got " << text);
  return parsed;
}

}  // namespace

std::optional<long long> ParsedArguments::integer(const std::string& name) const {
  const std::optional<std::string> text = value(name);
  if (!text) return std::nullopt;
  const auto range = integer_ranges_.find(name);
  SINKHORN_INTERNAL_CHECK(range != integer_ranges_.end(), "--" << name << " was not declared as an integer option");
  return parse_integer(name, *text, range->second.first, range->second.second);
}

ArgumentParser::ArgumentParser(std::string usage, std::string summary)
    : usage_(std::move(usage)), summary_(std::move(summary)) {
  flag("help", "show this help and exit");
}

ArgumentParser& ArgumentParser::option(const std::string& name, const std::string& value_name,
                                       const std::string& help) {
  options_.push_back({name, value_name, help});
  return *this;
}

ArgumentParser& ArgumentParser::integer(const std::string& name, const std::string& value_name,
                                        const std::string& help, long long min, long long max) {
  options_.push_back({name, value_name, help, true, min, max});
  return *this;
}

ArgumentParser& ArgumentParser::flag(const std::string& name, const std::string& help) {
  options_.push_back({name, "", help});
  return *this;
}

ArgumentParser& ArgumentParser::positional(const std::string& name, const std::string& help) {
  positionals_.push_back({name, "", help});
  return *this;
}

const ArgumentParser::Entry* ArgumentParser::find(const std::string& name) const {
  for (const Entry& entry : options_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

ParsedArguments ArgumentParser::parse(const std::vector<std::string>& args) const {
  ParsedArguments parsed;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& arg = args[k];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      parsed.positionals_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    const size_t equals = name.find('=');
    if (equals != std::string::npos) {
      inline_value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const Entry* entry = find(name);
    SINKHORN_CHECK(entry != nullptr, "unknown option --" << name << " (see --help)");
    if (entry->value_name.empty()) {
      SINKHORN_CHECK(!inline_value, "--" << name << " takes no value");
      parsed.flags_.insert(name);
      continue;
    }
    if (!inline_value) {
      SINKHORN_CHECK(k + 1 < args.size(), "--" << name << " needs a value (" << entry->value_name << ")");
      inline_value = args[++k];
    }
    if (entry->is_integer) {
      parse_integer(name, *inline_value, entry->min, entry->max);
      parsed.integer_ranges_[name] = {entry->min, entry->max};
    }
    parsed.values_[name] = *inline_value;
  }
  if (!parsed.flag("help")) {
    SINKHORN_CHECK(parsed.positionals_.size() == positionals_.size(),
                   "expected " << positionals_.size() << " positional argument(s), got "
                               << parsed.positionals_.size() << "\nusage: " << usage_);
  }
  return parsed;
}

std::string ArgumentParser::help() const {
  std::ostringstream out;
  out << "usage: " << usage_ << "\n\n" << summary_ << "\n";
  if (!positionals_.empty()) {
    out << "\narguments:\n";
    for (const Entry& entry : positionals_) out << "  " << entry.name << "\n      " << entry.help << "\n";
  }
  out << "\noptions:\n";
  for (const Entry& entry : options_) {
    out << "  --" << entry.name << (entry.value_name.empty() ? "" : " " + entry.value_name) << "\n      "
        << entry.help << "\n";
  }
  return out.str();
}

at::Device device_from(const ParsedArguments& args) {
  const std::string name = args.value("device").value_or("cpu");
  const std::optional<at::Device> device = platform::parse_device_name(name);
  SINKHORN_CHECK(device, "--device: expected cpu, cuda or cuda:K, got '" << name << "'");
  if (device->is_cpu()) return *device;
  const std::string problem = platform::device_problem(*device);
  SINKHORN_CHECK(problem.empty(), "--device " << name << ": " << problem);
  return *device;
}

std::chrono::milliseconds timeout_from(const ParsedArguments& args) {
  const double seconds = args.number("timeout").value_or(60.0);
  SINKHORN_CHECK(seconds > 0 && seconds <= 86400, "--timeout must be in (0, 86400] seconds, got " << seconds);
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
}

}  // namespace sinkhorn::cli
