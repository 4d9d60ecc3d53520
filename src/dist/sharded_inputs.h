// The inputs of a sharded solve: each rank passes its own block of rows of x (with a) and of y
// (with b); the ranks check their blocks, agree that they fit together, and gather the union.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "dist/group.h"
#include "sinkhorn/options.h"

namespace sinkhorn::dist {

/// The union of the ranks' clouds in the caller's layout ((N, D) or (B, N, D); weights (N) or
/// (B, N), undefined where the callers passed none). This rank's blocks are the caller's own
/// tensors, joined by a differentiable concatenation, so that gradients reach them; the other
/// ranks' blocks are constants here.
struct GatheredInputs {
  at::Tensor a, x, b, y;
  std::vector<int64_t> x_counts, y_counts;  ///< rows per rank
};

/// Every rank checks its block first (api::prepare_inputs without the total-mass checks) and the
/// ranks exchange the outcome and their shapes in one collective, so that a refused block fails
/// every rank at once instead of leaving the others waiting: the refusing rank throws its own
/// Error, the others one naming that rank. Mismatched dimensions, dtypes, batch sizes or weights
/// given on some ranks only are refused the same way on every rank.
GatheredInputs gather_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                             const SinkhornOptions& options, const Group& group);

}  // namespace sinkhorn::dist
