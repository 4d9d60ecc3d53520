#pragma once

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// Dense ATen reductions on any device: materialises the B x N x M cost matrix, so memory is
/// O(B N M), and autograd can differentiate through every reduction (unrolled gradients).
///
/// Numeric contract: computed in the inputs' dtype, costs as reduce::cost_matrix states
/// (cost_matrix.h). The log-sum-exp is ATen's max-shifted one: no overflow for any finite input.
std::unique_ptr<Reducer> make_tensorized_reducer(int p);

}  // namespace sinkhorn::reduce
