// The CUDA half of the library lives in a module of its own, libsinkhorn_cuda.so: the kernels of
// online_kernels.cuh, launched on LibTorch's CUDA streams, and c10d's NCCL backend. The rest of
// the library, the command line and the Python extension link LibTorch's CPU half only and load
// the module when a CUDA tensor or a CUDA device first needs it. Linking the CUDA-enabled
// LibTorch into every binary instead loads some twenty CUDA libraries at start, GPU or not: 480 MB
// resident and 0.3 s before any work (docs/benchmarks.md, "Large clouds").
//
// Loading the module loads libtorch_cuda.so with it, which registers LibTorch's CUDA hooks: after
// load_module(), at::hasCUDA() tells whether a GPU is usable, as in a process linked against it.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <string>

#include "reduce/cuda/online_kernels.cuh"

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace sinkhorn::reduce::cuda {

/// The module's functions, as one table returned by its single exported symbol
/// (kModuleEntryPoint). Failures are thrown as std::runtime_error with CUDA's or NCCL's message:
/// both sides share the process's C++ runtime.
struct ModuleFunctions {
  /// online_reduce with `device` current, on LibTorch's current stream of that device (the
  /// problem's own stream field is ignored).
  void (*online_reduce_float)(CudaProblem<float> problem, int device);
  void (*online_reduce_double)(CudaProblem<double> problem, int device);
  /// dense_softmin, same stream rule.
  void (*dense_softmin_float)(DenseSoftminProblem<float> problem, int device);
  void (*dense_softmin_double)(DenseSoftminProblem<double> problem, int device);
  /// c10d's NCCL backend over `store` for this rank of `size`, every collective bounded by
  /// `timeout`; null where the module was built without NCCL's header.
  c10::intrusive_ptr<c10d::Backend> (*make_nccl_backend)(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                         int size, std::chrono::milliseconds timeout);
};

/// The module's exported C symbol: `const ModuleFunctions* sinkhorn_cuda_module_v2()`. The
/// version in the name changes with the table, so a stale module is refused, never misread.
inline constexpr const char* kModuleEntryPoint = "sinkhorn_cuda_module_v2";

/// True when this build made the module (CMake found nvcc and a CUDA-enabled LibTorch).
bool module_built();

/// Loads the module on first call (thread-safe, once per process) and returns its functions, or
/// nullptr when this build has none or it cannot be loaded; `why_not` then says why (the files
/// tried and the dynamic loader's message). Where it looks, first match wins: the file named by
/// the environment variable SINKHORN_CUDA_MODULE; the folder of the binary holding this library
/// (the executable, or the Python extension of a pip-installed package); the build tree; the
/// install prefix's library folder.
const ModuleFunctions* load_module(std::string* why_not = nullptr);

/// load_module(), refusing with a sinkhorn::Error naming `argument` (the user's word: "--device",
/// "backend", "device") and saying why when the module is not there.
const ModuleFunctions& module_for(const std::string& argument);

/// Whether LibTorch can run CUDA tensors in this process, loading the module first when this
/// build has one: at::hasCUDA() after load_module(). Never throws.
bool gpu_available();

/// Why the CUDA `device` cannot run this process's work, or "" when it can: the module not
/// loadable (the files tried and the loader's message), no CUDA in this LibTorch or no GPU in the
/// machine, or an index past the machine's GPUs. Every entry that takes a device (the command
/// line's --device, the trainer's device, a resume's saved device) says it the same way.
std::string device_problem(const c10::Device& device);

}  // namespace sinkhorn::reduce::cuda
