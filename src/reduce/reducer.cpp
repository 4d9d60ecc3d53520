#include "reduce/reducer.h"

#include "reduce/cpu/multiscale_reducer.h"
#include "reduce/cpu/online_reducer.h"
#include "reduce/cuda/cuda_reducer.h"
#include "reduce/reference/reference_reducer.h"
#include "reduce/tensorized/tensorized_reducer.h"
#include "util/check.h"

namespace sinkhorn::reduce {

Backend resolve_backend(Backend backend, const at::Tensor& x, const at::Tensor& y, bool needs_autograd) {
  return resolve_backend(backend, x.size(0), x.size(1), y.size(1), x.size(2), x.device(), needs_autograd);
}

Backend resolve_backend(Backend backend, int64_t batch, int64_t rows, int64_t columns, int64_t dimension,
                        const at::Device& device, bool needs_autograd) {
  if (backend != Backend::automatic) return backend;
  // Unrolled gradients differentiate through the reductions: only the tensorized backend can.
  if (needs_autograd) return Backend::tensorized;
  const int64_t pairs_per_entry = rows * columns;
  const int64_t pairs = batch * pairs_per_entry;
  if (device.is_cuda() && cuda_reducer_built()) {
    // On the GPU a stored cost matrix costs 4 bytes of memory traffic per pair and sweep, the
    // online kernel about D + 8 float instructions per pair: the matrix wins from D ~ 16 (both
    // near 10^12 pairs/s on an H100), as long as it fits (kCudaTensorizedMaxPairs).
    const bool stored_matrix_pays = dimension >= kCudaTensorizedMinDimension && pairs <= kCudaTensorizedMaxPairs;
    return stored_matrix_pays ? Backend::tensorized : Backend::online;
  }
  if (!device.is_cpu()) return Backend::tensorized;
  // On the CPU, small clouds take the tensorized backend: it computes each cost matrix once per
  // solve (one matrix product), and its dense kernels then cost one exp per pair and sweep, where
  // the online kernels redo the D multiply-adds (and their transposes of y) at every reduction:
  // 1.9-3x faster at N = 1,000 and 3-9x at N = 200, for D = 3 to 64, and 2.5x on MNIST batches
  // (docs/benchmarks.md). 2^22 pairs bound its cached matrices to 64 MB in float32. Large
  // low-dimensional clouds: the multiscale backend skips the pairs of negligible weight; other
  // large clouds stream through the online kernels in linear memory.
  if (dimension <= kMultiscaleMaxDimension && pairs_per_entry >= kMultiscaleMinPairs) return Backend::multiscale;
  return pairs <= kTensorizedMaxPairs ? Backend::tensorized : Backend::online;
}

std::vector<at::Tensor> Reducer::softmins(const std::vector<SoftminRequest>& requests) const {
  std::vector<at::Tensor> results;
  results.reserve(requests.size());
  for (const SoftminRequest& request : requests) {
    results.push_back(softmin(*request.x, *request.y, request.h, request.eps));
  }
  return results;
}

std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& x, const at::Tensor& y,
                                      double cluster_scale, double row_cluster_scale) {
  switch (backend) {
    case Backend::reference:
      return make_reference_reducer(p);
    case Backend::online:
      if (x.is_cuda()) return make_online_cuda_reducer(p);
      return make_online_cpu_reducer(p);
    case Backend::multiscale:
      SINKHORN_CHECK_ARG(x.device().is_cpu() && y.device().is_cpu(), "backend",
                         "multiscale runs on CPU tensors, got " << x.device());
      SINKHORN_CHECK_ARG(cluster_scale > 0, "cluster_scale", "must be a positive cell size, got " << cluster_scale);
      return make_multiscale_cpu_reducer(p, cluster_scale, row_cluster_scale);
    case Backend::tensorized:
      break;
    case Backend::automatic:
      SINKHORN_INTERNAL_CHECK(false, "make_reducer needs a resolved backend (resolve_backend)");
  }
  return make_tensorized_reducer(p);
}

}  // namespace sinkhorn::reduce
