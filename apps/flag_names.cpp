#include "flag_names.h"

#include <algorithm>
#include <map>

namespace sinkhorn::cli {

std::string flag_for(const std::string& argument) {
  // Only the names whose flag is not "--" + the name with '-' for '_' (and its last component
  // for the nested training settings, data.path -> --data-path below).
  static const std::map<std::string, std::string> irregular{
      {"x", "X"},
      {"y", "Y"},
      {"a", "--wx"},
      {"b", "--wy"},
      {"learning_rate", "--lr"},
      {"critic_learning_rate", "--critic-lr"},
      {"schedule", "--lr-schedule"},
      {"out_dir", "--out"},
      {"data.name", "--data"},
      {"data.path", "--data-path"},
      {"data.split", "--split"},
      {"data.heldout", "--heldout"},
      {"generator.architecture", "--generator"},
      {"generator.latent_dim", "--latent-dim"},
      {"generator.latent", "--latent"},
      {"generator.hidden", "--hidden"},
      {"generator.activation", "--activation"},
      {"generator.width", "--width"},
      {"critic.architecture", "--critic"},
      {"critic.feature_dim", "--feature-dim"},
      {"critic.width", "--critic-width"},
  };
  const auto found = irregular.find(argument);
  if (found != irregular.end()) return found->second;
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
