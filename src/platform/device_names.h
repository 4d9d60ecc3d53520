// The one grammar of device names, for every entry that takes one (the command line's --device,
// a training configuration's "device", a resume's saved device): "cpu", "cuda" (the current GPU)
// or "cuda:K" with K a GPU index of at most three digits.
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>

namespace sinkhorn::platform {

/// The device `name` names, or nullopt when it is not "cpu", "cuda" or "cuda:K".
std::optional<c10::Device> parse_device_name(const std::string& name);

}  // namespace sinkhorn::platform
