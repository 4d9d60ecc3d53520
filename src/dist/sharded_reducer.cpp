#include "dist/sharded_reducer.h"

#include <ATen/ATen.h>

#include "util/check.h"

namespace sinkhorn::dist {

Shard make_shard(const at::Tensor& points, std::vector<int64_t> counts, int rank) {
  Shard shard;
  shard.points = points;
  shard.counts = std::move(counts);
  for (int r = 0; r < rank; ++r) shard.begin += shard.counts[r];
  shard.own_points = points.narrow(1, shard.begin, shard.counts[rank]).contiguous();
  return shard;
}

ShardedReducer::ShardedReducer(std::unique_ptr<reduce::Reducer> local, const Group& group, std::vector<Shard> shards)
    : local_(std::move(local)), group_(group), shards_(std::move(shards)) {}

const Shard& ShardedReducer::shard_of(const at::Tensor& x) const {
  for (const Shard& shard : shards_) {
    if (shard.points.unsafeGetTensorImpl() == x.unsafeGetTensorImpl()) return shard;
  }
  SINKHORN_INTERNAL_CHECK(false, "a sharded reduction over a cloud the solve did not register");
}

at::Tensor ShardedReducer::softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const {
  const Shard& shard = shard_of(x);
  return group_.allgather_rows(local_->softmin(shard.own_points, y, h, eps), 1, shard.counts);
}

at::Tensor ShardedReducer::softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                        double eps) const {
  const Shard& shard = shard_of(x);
  return group_.allgather_rows(local_->softmax_cost(shard.own_points, y, h, eps), 1, shard.counts);
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
