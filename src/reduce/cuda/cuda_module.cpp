#include "reduce/cuda/cuda_module.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "util/check.h"

namespace sinkhorn::reduce::cuda {
namespace {

struct LoadedModule {
  const ModuleFunctions* functions = nullptr;
  std::string why_not;
};

#ifdef SINKHORN_CUDA_MODULE_NAME
// The folder of a path ("" for a bare file name).
std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// The folders of the file this code was linked into: the executable, or a shared object (the
// Python extension) that holds the static library. (POSIX calls, not std::filesystem: LibTorch
// exports broken copies of some of its functions, see CMakeLists.txt.)
std::vector<std::string> own_folders() {
  std::vector<std::string> folders;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folders), &info) != 0 && info.dli_fname != nullptr) {
    const std::string folder = folder_of(info.dli_fname);
    if (!folder.empty()) folders.push_back(folder);
  }
  // For the main program dladdr gives argv[0], which may be a bare name or relative to a folder
  // the process has left; the kernel's link is exact.
  std::vector<char> executable(4096);
  const ssize_t length = readlink("/proc/self/exe", executable.data(), executable.size() - 1);
  if (length > 0) folders.push_back(folder_of(std::string(executable.data(), static_cast<size_t>(length))));
  return folders;
}

bool is_file(const std::string& path) {
  struct stat status{};
  return stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode);
}

LoadedModule load() {
  std::vector<std::string> candidates;
  if (const char* named = std::getenv("SINKHORN_CUDA_MODULE"); named != nullptr && *named) {
    candidates.emplace_back(named);
  } else {
    std::vector<std::string> folders = own_folders();
    folders.push_back(SINKHORN_CUDA_MODULE_BUILD_DIR);
    if (*SINKHORN_CUDA_MODULE_INSTALL_DIR) folders.push_back(SINKHORN_CUDA_MODULE_INSTALL_DIR);
    for (std::string folder : folders) {
      // Canonical, so that one folder named twice (argv[0]'s relative path and /proc/self/exe's
      // absolute one) is tried and reported once.
      if (char* canonical = realpath(folder.c_str(), nullptr); canonical != nullptr) {
        folder = canonical;
        std::free(canonical);
      }
      const std::string candidate = folder + "/" SINKHORN_CUDA_MODULE_NAME;
      if (std::find(candidates.begin(), candidates.end(), candidate) == candidates.end()) candidates.push_back(candidate);
    }
  }
  std::string tried;
  for (const std::string& candidate : candidates) {
    if (!is_file(candidate)) {
      tried += (tried.empty() ? "" : ", ") + candidate + " (absent)";
      continue;
    }
    // RTLD_LOCAL: the module's symbols stay its own; libtorch_cuda.so, loaded as its dependency,
    // registers LibTorch's CUDA hooks from its static initialisers either way.
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* message = dlerror();
      tried += (tried.empty() ? "" : ", ") + candidate + " (" + (message ? message : "dlopen failed") + ")";
      continue;
    }
    using EntryPoint = const ModuleFunctions* (*)();
    auto entry = reinterpret_cast<EntryPoint>(dlsym(handle, kModuleEntryPoint));
    if (entry == nullptr) {
      tried += (tried.empty() ? "" : ", ") + candidate + " (no " + kModuleEntryPoint +
               ": a module of another version)";
      continue;
    }
    return {entry(), ""};
  }
  return {nullptr, "cannot load the CUDA module " SINKHORN_CUDA_MODULE_NAME ": " + tried +
                       " (set SINKHORN_CUDA_MODULE to its path)"};
}
#else
LoadedModule load() {
  return {nullptr, "this build has no CUDA kernels (CMake found no nvcc, or a LibTorch without CUDA)"};
}
#endif

}  // namespace

bool module_built() {
#ifdef SINKHORN_CUDA_MODULE_NAME
  return true;
#else
  return false;
#endif
}

const ModuleFunctions* load_module(std::string* why_not) {
  static const LoadedModule loaded = load();
  if (loaded.functions == nullptr && why_not != nullptr) *why_not = loaded.why_not;
  return loaded.functions;
}

const ModuleFunctions& module_for(const std::string& argument) {
  std::string why_not;
  const ModuleFunctions* functions = load_module(&why_not);
  SINKHORN_CHECK_ARG(functions != nullptr, argument, "needs the CUDA kernels: " << why_not);
  return *functions;
}

bool gpu_available() {
  if (module_built()) load_module();
  return at::hasCUDA();
}

std::string device_problem(const c10::Device& device) {
  std::string why_not;
  if (module_built() && load_module(&why_not) == nullptr) return why_not;
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

}  // namespace sinkhorn::reduce::cuda
