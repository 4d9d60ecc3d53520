#include "sinkhorn/distributed.h"

#include "api/sharded_divergence.h"
#include "dist/group.h"

namespace sinkhorn {

DivergenceResult divergence_with_details(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                                         const at::Tensor& y, const SinkhornOptions& options,
                                         const c10::intrusive_ptr<c10d::ProcessGroup>& process_group) {
  return api::divergence_over(a, x, b, y, options, dist::make_c10d_group(process_group));
}

at::Tensor divergence(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                      const SinkhornOptions& options, const c10::intrusive_ptr<c10d::ProcessGroup>& process_group) {
  return divergence_with_details(a, x, b, y, options, process_group).value;
}

}  // namespace sinkhorn
