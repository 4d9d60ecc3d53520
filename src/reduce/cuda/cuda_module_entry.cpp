// The reductions' half of libsinkhorn_cuda.so (reduce/cuda/cuda_reductions.h): the kernels
// launched on LibTorch's current CUDA stream. Only the module's files and the kernels link
// LibTorch's CUDA half.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "reduce/cuda/cuda_reductions.h"

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

const CudaReductions kReductions = {
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
};

}  // namespace
}  // namespace sinkhorn::reduce::cuda

extern "C" __attribute__((visibility("default"))) const sinkhorn::reduce::cuda::CudaReductions*
sinkhorn_cuda_reductions() {
  return &sinkhorn::reduce::cuda::kReductions;
}
