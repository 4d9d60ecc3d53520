// The one implementation behind the public entries, in one process or sharded over a group.
#pragma once

#include <memory>

#include "dist/group.h"
#include "sinkhorn/divergence.h"

namespace sinkhorn::api {

/// divergence_with_details over the union of the ranks' clouds when `group` is set (each rank
/// passes its own rows; sinkhorn/distributed.h), else in this process alone. The value and the
/// diagnostics are the same on every rank; the potentials and the gradients are this rank's rows.
/// Unrolled gradients keep the group alive until their backward pass has run.
DivergenceResult divergence_over(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                                 const SinkhornOptions& options, const std::shared_ptr<const dist::Group>& group);

}  // namespace sinkhorn::api
