#include "platform/cuda_module_loader.h"

#include <dlfcn.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>


namespace sinkhorn::platform {
namespace {

struct LoadedModule {
  void* handle = nullptr;  // dlopen's, never closed: the module lives as long as the process
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
    if (dlsym(handle, kCudaModuleVersionSymbol) == nullptr) {
      tried += (tried.empty() ? "" : ", ") + candidate + " (no " + kCudaModuleVersionSymbol +
               ": a module of another version)";
      continue;
    }
    return {handle, ""};
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

bool cuda_module_built() {
#ifdef SINKHORN_CUDA_MODULE_NAME
  return true;
#else
  return false;
#endif
}

namespace {
const LoadedModule& loaded_module() {
  static const LoadedModule loaded = load();
  return loaded;
}
}  // namespace

bool load_cuda_module(std::string* why_not) {
  const LoadedModule& loaded = loaded_module();
  if (loaded.handle == nullptr && why_not != nullptr) *why_not = loaded.why_not;
  return loaded.handle != nullptr;
}

void* cuda_module_symbol(const char* name, std::string* why_not) {
  if (!load_cuda_module(why_not)) return nullptr;
  void* symbol = dlsym(loaded_module().handle, name);
  if (symbol == nullptr && why_not != nullptr) {
    *why_not = std::string("the CUDA module has no ") + name + " (a module of another version)";
  }
  return symbol;
}

}  // namespace sinkhorn::platform
