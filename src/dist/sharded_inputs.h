// The inputs of a sharded solve: each rank passes its own block of rows of x (with a) and of y
// (with b); the ranks check their blocks, agree that they fit together, and gather the union.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "dist/group.h"

namespace sinkhorn::dist {

/// The union of the ranks' clouds in the caller's layout ((N, D) or (B, N, D); weights (N) or
/// (B, N), undefined where the callers passed none). This rank's blocks are the caller's own
/// tensors, joined by a differentiable concatenation, so that gradients reach them; the other
/// ranks' blocks are constants here.
struct GatheredInputs {
  at::Tensor a, x, b, y;
  std::vector<int64_t> x_counts, y_counts;  ///< rows per rank
};

/// Every rank checks its block first (`check_block`, which throws sinkhorn::Error: the api's
/// input checks without the total-mass ones, which only the union has) and the
/// ranks exchange the outcome, their shapes and `settings` (one "name=value" line per option:
/// api::options_fingerprint), so that a refused block or a differing option fails every rank at
/// once instead of leaving the others waiting or mixing two problems: the refusing rank throws
/// its own Error, the others "rank R refused its inputs: <its message>"; a differing option is an
/// Error naming it, its values and the ranks. Mismatched dimensions, dtypes, batch sizes or
/// weights given on some ranks only are refused the same way on every rank.
GatheredInputs gather_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                             const std::function<void()>& check_block, const std::string& settings,
                             const Group& group);

/// Called by every rank with why it refused its own inputs (empty when it did not): when a rank
/// refused, the others throw Error("rank R refused its inputs: <its message>"); the refusing rank
/// returns and throws its own error after.
void agree_on_refusals(const Group& group, const std::string& refusal, const at::Device& device);

/// Called by every rank with its "name=value" lines: throws Error(name, "differs between the
/// ranks: ...") on every rank for the first line that differs from rank 0's.
void agree_on_settings(const Group& group, const std::string& settings, const at::Device& device);

}  // namespace sinkhorn::dist
