// The NCCL half of libsinkhorn_cuda.so (dist/nccl_entry.h): c10d's NCCL backend, built where the
// wheel's nvidia-nccl package gave CMake NCCL's header.
#ifdef SINKHORN_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "dist/nccl_entry.h"

namespace sinkhorn::dist {
namespace {

#ifdef SINKHORN_WITH_NCCL
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}
#endif

}  // namespace
}  // namespace sinkhorn::dist

extern "C" __attribute__((visibility("default"))) sinkhorn::dist::MakeNcclBackend sinkhorn_cuda_nccl_backend() {
#ifdef SINKHORN_WITH_NCCL
  return &sinkhorn::dist::make_nccl_backend;
#else
  return nullptr;
#endif
}
