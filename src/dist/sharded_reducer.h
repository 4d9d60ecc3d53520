// The reductions of a sharded solve: every rank holds all the points (gathered once, O((N + M) D)
// numbers) and the full potentials, but reduces only its own block of rows; the blocks of the
// result are then all-gathered (O(N + M) numbers per reduction, never a cost matrix).
//
// The Sinkhorn loop runs unchanged above it, on every rank, on identical full potentials: its
// arithmetic is replicated (O(N + M) per sweep), the pair work N M is split P ways. The loop's
// decisions (convergence, annealing, over-relaxation) are taken on marginal errors all-reduced by
// the group (LoopSettings::agree_on_errors), so every rank takes the same path and runs the same
// collectives even when its thread count rounds a sum differently.
#pragma once

#include <memory>
#include <vector>

#include "dist/group.h"
#include "reduce/reducer.h"

namespace sinkhorn::dist {

/// One cloud of the solve as the ranks share it.
struct Shard {
  at::Tensor points;               ///< (B, N, D): every rank's rows, in rank order
  at::Tensor own_points;           ///< (B, n_r, D): this rank's rows (a contiguous copy)
  std::vector<int64_t> counts;     ///< rows per rank
  int64_t begin = 0;               ///< this rank's first row in `points`
};

/// `points` split by `counts` for `group`'s rank.
Shard make_shard(const at::Tensor& points, std::vector<int64_t> counts, int rank);

class ShardedReducer final : public reduce::Reducer {
 public:
  /// `local` reduces this rank's rows against all columns; `shards` are the clouds the solver
  /// passes as the first argument of a reduction (recognised by identity).
  ShardedReducer(std::unique_ptr<reduce::Reducer> local, std::shared_ptr<const Group> group, std::vector<Shard> shards);

  /// The full (B, N) softmin: this rank's rows computed here, the others all-gathered.
  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const override;
  /// The requests' rows computed here, all ranks' blocks of all of them in one all-gather.
  std::vector<at::Tensor> softmins(const std::vector<reduce::SoftminRequest>& requests) const override;
  /// (B, N, D), this rank's rows only: the other rows are 0, as their gradients belong to (and are
  /// computed on) their own ranks. Gradients flow back through the gathered points to the rank
  /// that owns each row, so nothing else reads them.
  at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                   double eps) const override;
  /// The full (B, N) transport cost per row, gathered like softmin.
  at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const override;
  /// As the local backend: under autograd the reductions go through gather_rows and
  /// sum_over_ranks_in_backward (dist/sharded_autograd.h), and the solve differentiates to the
  /// single-process gradient. The clouds' points must then come through
  /// sum_over_ranks_in_backward too (divergence_over does it).
  bool differentiable() const override { return local_->differentiable(); }
  std::string name() const override { return local_->name(); }

 private:
  const Shard& shard_of(const at::Tensor& x) const;
  // This rank's rows of a per-row reduction, gathered: differentiably when autograd records.
  // All ranks' rows of a per-row result of which rank r holds counts[r] rows.
  at::Tensor gathered(const std::vector<int64_t>& counts, const at::Tensor& rows) const;
  at::Tensor potential_input(const at::Tensor& h) const;

  std::unique_ptr<reduce::Reducer> local_;
  std::shared_ptr<const Group> group_;
  std::vector<Shard> shards_;
};

}  // namespace sinkhorn::dist
