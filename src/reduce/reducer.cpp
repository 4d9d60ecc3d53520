#include "reduce/reducer.h"

#include "reduce/reference/reference_reducer.h"
#include "reduce/tensorized/tensorized_reducer.h"

namespace sinkhorn::reduce {

std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& /*like*/) {
  switch (backend) {
    case Backend::reference:
      return make_reference_reducer(p);
    case Backend::automatic:
    case Backend::tensorized:
      return make_tensorized_reducer(p);
  }
  return make_tensorized_reducer(p);
}

}  // namespace sinkhorn::reduce
