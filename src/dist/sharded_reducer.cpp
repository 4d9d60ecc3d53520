#include "dist/sharded_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "dist/sharded_autograd.h"
#include "util/check.h"

namespace sinkhorn::dist {

Shard make_shard(const at::Tensor& points, std::vector<int64_t> counts, int rank) {
  Shard shard;
  shard.points = points;
  shard.counts = std::move(counts);
  shard.begin = first_row(shard.counts, rank);
  shard.own_points = points.narrow(1, shard.begin, shard.counts[rank]).contiguous();
  return shard;
}

ShardedReducer::ShardedReducer(std::unique_ptr<reduce::Reducer> local, std::shared_ptr<const Group> group,
                               std::vector<Shard> shards)
    : local_(std::move(local)), group_(std::move(group)), shards_(std::move(shards)) {}

namespace {
bool recording(const at::Tensor& tensor) { return at::GradMode::is_enabled() && tensor.requires_grad(); }
}  // namespace

at::Tensor ShardedReducer::gathered(const std::vector<int64_t>& counts, const at::Tensor& rows) const {
  if (recording(rows)) return gather_rows(rows, 1, counts, *group_);
  return group_->allgather_rows(rows, 1, counts);
}

// The potentials enter this rank's reduction only: their adjoint is the ranks' sum.
at::Tensor ShardedReducer::potential_input(const at::Tensor& h) const {
  return recording(h) ? sum_over_ranks_in_backward(h, group_) : h;
}

const Shard& ShardedReducer::shard_of(const at::Tensor& x) const {
  for (const Shard& shard : shards_) {
    if (shard.points.unsafeGetTensorImpl() == x.unsafeGetTensorImpl()) return shard;
  }
  SINKHORN_INTERNAL_CHECK(false, "a sharded reduction over a cloud the solve did not register");
}

at::Tensor ShardedReducer::softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const {
  const Shard& shard = shard_of(x);
  return gathered(shard.counts, local_->softmin(shard.own_points, y, potential_input(h), eps));
}

std::vector<at::Tensor> ShardedReducer::softmins(const std::vector<reduce::SoftminRequest>& requests) const {
  if (requests.size() <= 1) return Reducer::softmins(requests);
  // This rank's rows of every request side by side, (B, sum_k n_k); gathered once, rank after
  // rank; then each request's full (B, N_k) is its block from every rank.
  std::vector<const Shard*> shards;
  std::vector<at::Tensor> local;
  for (const reduce::SoftminRequest& request : requests) {
    shards.push_back(&shard_of(*request.x));
    local.push_back(local_->softmin(shards.back()->own_points, *request.y, potential_input(request.h), request.eps));
  }
  const int ranks = group_->size();
  std::vector<int64_t> counts(ranks, 0);
  for (const Shard* shard : shards) {
    for (int r = 0; r < ranks; ++r) counts[r] += shard->counts[r];
  }
  const at::Tensor all = gathered(counts, at::cat(local, 1));
  std::vector<at::Tensor> results;
  for (size_t k = 0; k < requests.size(); ++k) {
    std::vector<at::Tensor> blocks;
    int64_t rank_offset = 0;
    for (int r = 0; r < ranks; ++r) {
      int64_t within = 0;
      for (size_t j = 0; j < k; ++j) within += shards[j]->counts[r];
      blocks.push_back(all.narrow(1, rank_offset + within, shards[k]->counts[r]));
      rank_offset += counts[r];
    }
    results.push_back(at::cat(blocks, 1));
  }
  return results;
}

at::Tensor ShardedReducer::softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                        double eps) const {
  const Shard& shard = shard_of(x);
  return gathered(shard.counts, local_->softmax_cost(shard.own_points, y, potential_input(h), eps));
}

at::Tensor ShardedReducer::softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                                 double eps) const {
  const Shard& shard = shard_of(x);
  at::Tensor gradient = at::zeros_like(x);
  gradient.narrow(1, shard.begin, shard.own_points.size(1))
      .copy_(local_->softmax_cost_gradient(shard.own_points, y, h, eps));
  return gradient;
}

}  // namespace sinkhorn::dist
