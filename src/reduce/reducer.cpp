#include "reduce/reducer.h"

#include "reduce/cpu/online_reducer.h"
#include "reduce/reference/reference_reducer.h"
#include "reduce/tensorized/tensorized_reducer.h"

namespace sinkhorn::reduce {

std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& x, const at::Tensor& y) {
  switch (backend) {
    case Backend::reference:
      return make_reference_reducer(p);
    case Backend::online:
      return make_online_cpu_reducer(p);
    case Backend::tensorized:
      return make_tensorized_reducer(p);
    case Backend::automatic:
      break;
  }
  if (!x.device().is_cpu()) return make_tensorized_reducer(p);
  // On the CPU the online kernels win (docs/benchmarks.md), except for small clouds in high
  // dimension: there the tensorized backend computes each cost matrix once per solve with one
  // matrix product, where the online kernels redo N M D multiply-adds every sweep (MNIST batches:
  // 2.5x faster at D = 784). 2^22 pairs bound its cached matrices to 64 MB in float32.
  const int64_t pairs = x.size(0) * x.size(1) * y.size(1);
  const bool small_and_high_dimensional = x.size(2) >= kTensorizedMinDimension && pairs <= (int64_t{1} << 22);
  return small_and_high_dimensional ? make_tensorized_reducer(p) : make_online_cpu_reducer(p);
}

}  // namespace sinkhorn::reduce
