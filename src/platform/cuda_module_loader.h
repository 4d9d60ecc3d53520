// The CUDA half of the library lives in a module of its own, libsinkhorn_cuda.so: the reductions
// of reduce/cuda (reduce/cuda/cuda_reductions.h), launched on LibTorch's CUDA streams, and c10d's
// NCCL backend for dist (dist/nccl_entry.h). The rest of the library, the command line and the
// Python extension link LibTorch's CPU half only and load the module when a CUDA tensor or a CUDA
// device first needs it. Linking the CUDA-enabled LibTorch into every binary instead loads some
// twenty CUDA libraries at start, GPU or not: 480 MB resident and 0.3 s before any work
// (docs/benchmarks.md, "Large clouds").
//
// This loader knows files and symbols only: each layer above declares the type of the symbol it
// exports from the module and casts what it gets here. Loading the module loads libtorch_cuda.so
// with it, which registers LibTorch's CUDA hooks: after it, at::hasCUDA() tells whether a GPU is
// usable, as in a process linked against it (platform/devices.h asks that question).
#pragma once

#include <string>

namespace sinkhorn::platform {

/// True when this build made the module (CMake found nvcc and a CUDA-enabled LibTorch).
bool cuda_module_built();

/// The module marks its version with this exported symbol, whose name changes whenever a table of
/// symbols it exports does: a file without it is a module of another version and is passed over,
/// never misread.
inline constexpr const char* kCudaModuleVersionSymbol = "sinkhorn_cuda_module_v3";

/// Loads the module on the first call (thread-safe, once per process); false when this build has
/// none or no file could be loaded, and then `why_not` says why: the files tried and the dynamic
/// loader's message for each. Where it looks, first match wins: the file named by the environment
/// variable SINKHORN_CUDA_MODULE; the folder of the binary holding this library (the executable, or
/// the Python extension of a pip-installed package); the build tree; the install prefix's library
/// folder.
bool load_cuda_module(std::string* why_not = nullptr);

/// The loaded module's exported C symbol `name` (loading it first), or nullptr with `why_not` set
/// when the module cannot be loaded or lacks `name`.
void* cuda_module_symbol(const char* name, std::string* why_not = nullptr);

}  // namespace sinkhorn::platform
