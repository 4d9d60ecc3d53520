#include "platform/devices.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>

#include "platform/cuda_module_loader.h"

namespace sinkhorn::platform {
namespace {

// Loads the CUDA module where this build has one, so that LibTorch's CUDA hooks are registered
// before at::hasCUDA() is asked; "" when loaded or not built, else why not.
std::string cuda_module_problem() {
  std::string why_not;
  if (cuda_module_built()) (void)load_cuda_module(&why_not);
  return why_not;
}

}  // namespace

std::optional<c10::Device> parse_device_name(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda") return c10::Device(c10::kCUDA);
  const std::string prefix = "cuda:";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 3) return std::nullopt;
  const auto digits = name.begin() + static_cast<std::ptrdiff_t>(prefix.size());
  if (!std::all_of(digits, name.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(name.substr(prefix.size()))));
}

bool gpu_available() {
  (void)cuda_module_problem();
  return at::hasCUDA();
}

std::string device_problem(const c10::Device& device) {
  if (std::string why_not = cuda_module_problem(); !why_not.empty()) return why_not;
  if (!at::hasCUDA()) {
    return "this build's LibTorch has no CUDA support or the machine no GPU (use the cpu device, or a "
           "CUDA-enabled LibTorch, e.g. the one inside PyTorch, on a machine with a GPU)";
  }
  const int gpus = at::detail::getCUDAHooks().deviceCount();
  if (device.has_index() && device.index() >= gpus) {
    return "this machine has " + std::to_string(gpus) + " GPU" + (gpus == 1 ? "" : "s") + " (cuda:0 to cuda:" +
           std::to_string(gpus - 1) + ")";
  }
  return "";
}

}  // namespace sinkhorn::platform
