#include "gen/data_parallel.h"

#include <vector>

#include "util/check.h"

namespace sinkhorn::gen {

std::shared_ptr<const dist::Group> DataParallel::shared_group() const {
  return group_ ? std::shared_ptr<const dist::Group>(std::shared_ptr<const dist::Group>(), group_) : nullptr;
}

at::Tensor DataParallel::share(const at::Tensor& batch) const {
  return group_ ? dist::own_block(batch, *group_) : batch;
}

bool DataParallel::on_any_rank(bool flag) const {
  if (!group_) return flag;
  std::vector<double> value{flag ? 1.0 : 0.0};
  group_->allreduce_max(value, device_);
  return value[0] != 0.0;
}

void DataParallel::sum_gradients(torch::nn::Module& module) const {
  if (!group_) return;
  std::vector<at::Tensor> gradients;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.grad().defined()) gradients.push_back(parameter.grad());
  }
  if (gradients.empty()) return;
  std::vector<at::Tensor> flat;
  for (const at::Tensor& gradient : gradients) flat.push_back(gradient.reshape({-1}));
  at::Tensor buffer = at::cat(flat);
  group_->allreduce_sum_(buffer);
  int64_t offset = 0;
  for (at::Tensor& gradient : gradients) {
    gradient.copy_(buffer.narrow(0, offset, gradient.numel()).view_as(gradient));
    offset += gradient.numel();
  }
}

void DataParallel::agree_on_setup(bool failed) const {
  const bool rank_failed = on_any_rank(failed);
  SINKHORN_CHECK(failed || !rank_failed || rank() == 0, "rank 0 could not set up the run folder (its own error says why)");
}

}  // namespace sinkhorn::gen
