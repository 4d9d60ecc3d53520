#include "platform/device_names.h"

#include <algorithm>

namespace sinkhorn::platform {

std::optional<c10::Device> parse_device_name(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda") return c10::Device(c10::kCUDA);
  const std::string prefix = "cuda:";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 3) return std::nullopt;
  const auto digits = name.begin() + static_cast<std::ptrdiff_t>(prefix.size());
  if (!std::all_of(digits, name.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(name.substr(prefix.size()))));
}

}  // namespace sinkhorn::platform
