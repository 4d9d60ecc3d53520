#include "dist/sharded_autograd.h"

#include <torch/csrc/autograd/custom_function.h>

#include <ATen/ATen.h>

namespace sinkhorn::dist {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class GatherRows : public torch::autograd::Function<GatherRows> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& block, int64_t dim, std::vector<int64_t> counts,
                            const Group* group) {
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["begin"] = first_row(counts, group->rank());
    ctx->saved_data["rows"] = counts[group->rank()];
    return group->allgather_rows(block, dim, counts);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const int64_t dim = ctx->saved_data["dim"].toInt();
    const int64_t begin = ctx->saved_data["begin"].toInt();
    const int64_t rows = ctx->saved_data["rows"].toInt();
    return {grad_outputs[0].narrow(dim, begin, rows), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The backward pass may run after the solve returned: the node keeps the group alive.
struct GroupHolder : torch::CustomClassHolder {
  explicit GroupHolder(std::shared_ptr<const Group> g) : group(std::move(g)) {}
  std::shared_ptr<const Group> group;
};

class SumOverRanksInBackward : public torch::autograd::Function<SumOverRanksInBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& tensor, std::shared_ptr<const Group> group) {
    ctx->saved_data["group"] = c10::IValue::make_capsule(c10::make_intrusive<GroupHolder>(std::move(group)));
    return tensor.clone();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const c10::intrusive_ptr<torch::CustomClassHolder> capsule = ctx->saved_data["group"].toCapsule();
    const Group& group = *static_cast<const GroupHolder*>(capsule.get())->group;
    at::Tensor summed = grad_outputs[0].contiguous().clone();
    group.allreduce_sum_(summed);
    return {summed, at::Tensor()};
  }
};

}  // namespace

at::Tensor gather_rows(const at::Tensor& block, int64_t dim, const std::vector<int64_t>& counts, const Group& group) {
  return GatherRows::apply(block, dim, counts, &group);
}

at::Tensor sum_over_ranks_in_backward(const at::Tensor& tensor, const std::shared_ptr<const Group>& group) {
  return SumOverRanksInBackward::apply(tensor, group);
}

}  // namespace sinkhorn::dist
