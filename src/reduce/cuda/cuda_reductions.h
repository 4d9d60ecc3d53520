// The CUDA reductions as the module libsinkhorn_cuda.so exports them (platform/cuda_module_loader.h
// loads it): one table of functions behind one exported symbol, so that the library, linked
// against LibTorch's CPU half only, launches kernels on LibTorch's CUDA streams without linking
// its CUDA half.
#pragma once

#include <string>

#include "reduce/cuda/online_kernels.cuh"

namespace sinkhorn::reduce::cuda {

/// The reductions, as one table returned by the module's symbol kReductionsSymbol. Failures are
/// thrown as std::runtime_error with CUDA's message: both sides share the process's C++ runtime.
struct CudaReductions {
  /// online_reduce with `device` current, on LibTorch's current stream of that device (the
  /// problem's own stream field is ignored).
  void (*online_reduce_float)(CudaProblem<float> problem, int device);
  void (*online_reduce_double)(CudaProblem<double> problem, int device);
  /// dense_softmin, same stream rule.
  void (*dense_softmin_float)(DenseSoftminProblem<float> problem, int device);
  void (*dense_softmin_double)(DenseSoftminProblem<double> problem, int device);
};

/// The module's exported C symbol `const CudaReductions* sinkhorn_cuda_reductions()`. A change to
/// the table changes platform::kCudaModuleVersionSymbol, so a stale module is never misread.
inline constexpr const char* kReductionsSymbol = "sinkhorn_cuda_reductions";

/// The module's reductions, or nullptr when this build has no module or it cannot be loaded;
/// `why_not` then says why.
const CudaReductions* load_reductions(std::string* why_not = nullptr);

/// load_reductions(), refusing with a sinkhorn::Error naming `argument` (the user's word:
/// "backend", "--device") and saying why when the module is not there.
const CudaReductions& reductions_for(const std::string& argument);

}  // namespace sinkhorn::reduce::cuda
