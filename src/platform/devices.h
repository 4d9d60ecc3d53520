// Device questions, for every entry that takes a device (the command line's --device, a training
// configuration's "device", a resume's saved device, the Python extension's report): one grammar
// of device names, and one answer to "can this process run on it, and if not, why".
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>

namespace sinkhorn::platform {

/// The device `name` names, or nullopt when it is not "cpu", "cuda" (the current GPU) or "cuda:K"
/// with K a GPU index of at most three digits.
std::optional<c10::Device> parse_device_name(const std::string& name);

/// Whether LibTorch can run CUDA tensors in this process, loading the CUDA module first when this
/// build has one (platform/cuda_module_loader.h). Never throws.
bool gpu_available();

/// Why the CUDA `device` cannot run this process's work, or "" when it can: the module not
/// loadable (the files tried and the loader's message), no CUDA in this LibTorch or no GPU in the
/// machine, or an index past the machine's GPUs. Every entry that takes a device says it the same
/// way.
std::string device_problem(const c10::Device& device);

}  // namespace sinkhorn::platform
