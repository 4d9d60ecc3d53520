// c10d's NCCL backend comes with the CUDA module (platform/cuda_module_loader.h), which links
// LibTorch's CUDA half: the library links its CPU half only, so it asks the module for a factory.
#pragma once

#include <c10/util/intrusive_ptr.h>

#include <chrono>

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace sinkhorn::dist {

/// c10d's NCCL backend over `store` for this rank of `size`, every collective bounded by `timeout`.
/// Failures are thrown as std::runtime_error with NCCL's message.
using MakeNcclBackend = c10::intrusive_ptr<c10d::Backend> (*)(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                              int size, std::chrono::milliseconds timeout);

/// The module's exported C symbol `MakeNcclBackend sinkhorn_cuda_nccl_backend()`: it returns null
/// where the module was built without NCCL's header. A change to the signature changes
/// platform::kCudaModuleVersionSymbol.
inline constexpr const char* kNcclBackendSymbol = "sinkhorn_cuda_nccl_backend";

/// The factory, or nullptr when this build has no CUDA module, it cannot be loaded, or it has no
/// NCCL (then CUDA tensors travel through Gloo and host memory).
MakeNcclBackend nccl_backend_factory();

}  // namespace sinkhorn::dist
