#include "reduce/reducer.h"

#include "reduce/cpu/online_reducer.h"
#include "reduce/reference/reference_reducer.h"
#include "reduce/tensorized/tensorized_reducer.h"

namespace sinkhorn::reduce {

std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& like) {
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
  // The online kernels beat dense ATen on the CPU from a handful of points on (docs/benchmarks.md).
  return like.device().is_cpu() ? make_online_cpu_reducer(p) : make_tensorized_reducer(p);
}

}  // namespace sinkhorn::reduce
