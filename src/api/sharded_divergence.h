// The one implementation behind the public entries, in one process or sharded over a group.
#pragma once

#include <memory>
#include <vector>

#include "dist/group.h"
#include "sinkhorn/divergence.h"

namespace sinkhorn::api {

/// divergence_with_details over the union of the ranks' clouds when `group` is set (each rank
/// passes its own rows; sinkhorn/distributed.h), else in this process alone. The value and the
/// diagnostics are the same on every rank; the potentials and the gradients are this rank's rows.
/// Unrolled gradients keep the group alive until their backward pass has run.
DivergenceResult divergence_over(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                                 const SinkhornOptions& options, const std::shared_ptr<const dist::Group>& group);

/// Data-parallel training's third plan (gen/data_parallel.h): every rank holds the whole clouds
/// (the caller gathered them) and solves its share of the debiased divergence's independent
/// problems, OT(a, b) on rank 0, OT(a, a) and OT(b, b) on rank 1 (on ranks 1 and 2 from three
/// ranks on); one all-gather of the potentials and the solve's report follows, and each rank
/// computes the envelope gradients of the rows it owns only (the others' rows are 0 there: the
/// caller's gather hands each rank its own rows in the backward pass).
struct ProblemSplit {
  std::shared_ptr<const dist::Group> group;
  std::vector<int64_t> x_counts, y_counts;  ///< rows of x and of y each rank owns, in rank order
};

/// The rank that solves problem k of OT(a, b), OT(a, a), OT(b, b) among `ranks` ranks.
inline int problem_owner(int k, int ranks) { return k < ranks - 1 ? k : ranks - 1; }

/// divergence_with_details of whole clouds, held alike by every rank of `split.group`, solved
/// with the problems split over the ranks where the solve allows it (the debiased losses, envelope
/// gradients, any backend but multiscale); otherwise every rank solves it whole. The value and
/// the diagnostics are the same on every rank (iterations: the slowest rank's).
DivergenceResult divergence_split(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                                  const SinkhornOptions& options, const ProblemSplit& split);

}  // namespace sinkhorn::api
