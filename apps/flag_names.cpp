#include "flag_names.h"

#include <algorithm>
#include <map>

#include "api/option_table.h"
#include "gen/train_options.h"

namespace sinkhorn::cli {

std::string flag_for(const std::string& argument) {
  // The settings' flags come from their tables; the arrays are named by position or short flags.
  static const std::map<std::string, std::string> arrays{{"x", "X"}, {"y", "Y"}, {"a", "--wx"}, {"b", "--wy"}};
  if (const auto found = arrays.find(argument); found != arrays.end()) return found->second;
  if (const gen::TrainOptionSpec* spec = gen::find_train_option(argument); spec != nullptr && *spec->flag) {
    return std::string("--") + spec->flag;
  }
  if (const api::OptionSpec* spec = api::find_option(argument); spec != nullptr) return std::string("--") + spec->flag;
  std::string flag = "--" + argument;
  std::replace(flag.begin(), flag.end(), '_', '-');
  std::replace(flag.begin(), flag.end(), '.', '-');
  return flag;
}

std::string message_for(const Error& error) {
  if (error.argument().empty()) return error.what();
  return flag_for(error.argument()) + " " + error.problem();
}

}  // namespace sinkhorn::cli
