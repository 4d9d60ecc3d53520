#pragma once

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// Dense ATen reductions on any device: materialises the B x N x M cost matrix, so memory is
/// O(B N M), and autograd can differentiate through every reduction (unrolled gradients).
///
/// Numeric contract: computed in the inputs' dtype. For p = 2 squared distances use the expansion
/// |x|^2 + |y|^2 - 2 x.y (one matrix product), clamped at 0; its absolute error is about
/// dtype-epsilon x max|x|^2, which is why callers centre the clouds first. For p = 1 distances
/// come from the differences (accurate to a few ulps). The log-sum-exp is ATen's max-shifted
/// one: no overflow for any finite input.
std::unique_ptr<Reducer> make_tensorized_reducer(int p);

/// The B x N x M matrix C(x_i, y_j) as the tensorized backend computes it (differentiable; the
/// gradient of |x - y| is 0 at x = y).
at::Tensor tensorized_cost_matrix(const at::Tensor& x, const at::Tensor& y, int p);

}  // namespace sinkhorn::reduce
