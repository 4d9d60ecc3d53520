// The entry point of libsinkhorn_cuda.so (reduce/cuda/cuda_module.h): the kernels launched on
// LibTorch's current CUDA stream, and c10d's NCCL backend. Only this file and the kernels link
// LibTorch's CUDA half.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#ifdef SINKHORN_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "reduce/cuda/cuda_module.h"

namespace sinkhorn::reduce::cuda {
namespace {

// Runs `launch(problem)` with `device` current and the problem on that device's current stream:
// the stream the caller's ATen operations before and after are queued on, so no synchronisation
// is needed between them.
template <typename Problem, typename Launch>
void on_current_stream(Problem problem, int device, Launch launch) {
  const auto index = static_cast<c10::DeviceIndex>(device);
  const c10::cuda::CUDAGuard guard(index);
  problem.stream = c10::cuda::getCurrentCUDAStream(index).stream();
  launch(problem);
}

#ifdef SINKHORN_WITH_NCCL
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}
#endif

const ModuleFunctions kFunctions = {
    [](CudaProblem<float> problem, int device) {
      on_current_stream(problem, device, [](const CudaProblem<float>& p) { online_reduce(p); });
    },
    [](CudaProblem<double> problem, int device) {
      on_current_stream(problem, device, [](const CudaProblem<double>& p) { online_reduce(p); });
    },
    [](DenseSoftminProblem<float> problem, int device) {
      on_current_stream(problem, device, [](const DenseSoftminProblem<float>& p) { dense_softmin(p); });
    },
    [](DenseSoftminProblem<double> problem, int device) {
      on_current_stream(problem, device, [](const DenseSoftminProblem<double>& p) { dense_softmin(p); });
    },
#ifdef SINKHORN_WITH_NCCL
    &make_nccl_backend,
#else
    nullptr,
#endif
};

}  // namespace
}  // namespace sinkhorn::reduce::cuda

extern "C" __attribute__((visibility("default"))) const sinkhorn::reduce::cuda::ModuleFunctions*
sinkhorn_cuda_module_v2() {
  return &sinkhorn::reduce::cuda::kFunctions;
}
