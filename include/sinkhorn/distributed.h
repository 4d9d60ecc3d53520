// Sharded Sinkhorn solves over a c10d process group (PyTorch's distributed engine: Gloo on CPUs,
// NCCL on GPUs).
//
// Every rank passes its own block of rows of x (with a) and of y (with b); the ranks solve the
// problem of the union of the blocks together:
//
//   c10::intrusive_ptr<c10d::ProcessGroup> group = ...;   // e.g. torch.distributed's, or Gloo's
//   at::Tensor x = my_rows_of_x.requires_grad_();          // (n_r, D): this rank's rows
//   auto result = sinkhorn::divergence_with_details({}, x, {}, my_rows_of_y, options, group);
//   result.value.backward();                               // x.grad(): this rank's rows of the
//                                                          // gradient of the whole loss
//
// The value and the diagnostics are the same on every rank; potentials and gradients are this
// rank's rows. Undefined weights mean uniform over the union (1/N, N the total row count).
// Each rank holds every point (gathered once) and reduces its own rows against all columns; per
// sweep the ranks all-gather O(N + M) potentials and all-reduce the convergence test. Gradients
// are the envelope's (exact at convergence) or, with gradient unrolled, autograd's through the
// sharded iterations; the multiscale backend runs in one process only. The kernel MMDs and exact
// OT are computed whole on every rank.
// Every rank must call with the same options; a rank that dies or stalls makes the others throw
// sinkhorn::PeerError once the group's timeout has passed.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "sinkhorn/divergence.h"

namespace sinkhorn {

/// The loss of the union of the ranks' clouds, with this rank's potentials and diagnostics.
DivergenceResult divergence_with_details(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                                         const at::Tensor& y, const SinkhornOptions& options,
                                         const c10::intrusive_ptr<c10d::ProcessGroup>& process_group);

/// The loss alone.
at::Tensor divergence(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                      const SinkhornOptions& options, const c10::intrusive_ptr<c10d::ProcessGroup>& process_group);

}  // namespace sinkhorn
