// Autograd through a sharded solve (unrolled gradients): two operations whose adjoints make the
// ranks' replicated computation differentiate to the single-process gradient.
//
// Every rank runs the same program on the same full tensors, except that each reduction computes
// only the rank's rows and all-gathers them. Let a reduction's inputs be u (points, potentials)
// and its output the gathered rows [r_1(u), ..., r_P(u)]. The true adjoint of u is
// sum_q J_q(u)^T adj(r_q), but rank r's graph only holds r_r(u). So:
//   - gather_rows (forward: all-gather; backward: this rank's rows of the incoming adjoint, which
//     every rank holds in full because everything downstream is replicated);
//   - sum_over_ranks_in_backward on the inputs of each local reduction (forward: identity;
//     backward: all-reduce sum), which adds the P partial adjoints J_q^T adj(r_q).
// The replicated operations outside the reductions (linear combinations, the loss formulas)
// differentiate identically on every rank and are counted once. Every rank's backward runs the
// same graph, so the collectives of the backward pass meet in the same order.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "dist/group.h"

namespace sinkhorn::dist {

/// All ranks' rows of `block` along `dim` (Group::allgather_rows), differentiable: the gradient
/// of the result reaches `block` as this rank's rows of it.
at::Tensor gather_rows(const at::Tensor& block, int64_t dim, const std::vector<int64_t>& counts, const Group& group);

/// `tensor` itself in the forward pass; in the backward pass its gradient is summed over the ranks
/// (the node keeps `group` alive until then).
at::Tensor sum_over_ranks_in_backward(const at::Tensor& tensor, const std::shared_ptr<const Group>& group);

}  // namespace sinkhorn::dist
