#include "reduce/cpu/dense_reduction.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "util/check.h"

namespace sinkhorn::reduce {

void dense_reduce_into(cpu::DenseReduction reduction, const at::Tensor& cost, const at::Tensor& h, double eps,
                       const at::Tensor& out, const at::Tensor& row_shifts, const at::Tensor& row_scales) {
  const at::ScalarType dtype = cost.scalar_type();
  SINKHORN_INTERNAL_CHECK(cost.dim() == 3 && h.dim() == 2 && cost.device().is_cpu() &&
                              (dtype == at::kFloat || dtype == at::kDouble) && h.scalar_type() == dtype &&
                              out.scalar_type() == dtype && cost.is_contiguous() && h.is_contiguous() &&
                              out.is_contiguous(),
                          "dense_reduce_into needs contiguous CPU float tensors of one dtype");
  SINKHORN_INTERNAL_CHECK(!row_shifts.defined() || (reduction == cpu::DenseReduction::softmin &&
                                                    row_shifts.scalar_type() == dtype && row_shifts.is_contiguous() &&
                                                    row_shifts.numel() == cost.size(0) * cost.size(1)),
                          "dense_reduce_into: row shifts are (B, N) of the costs' dtype, for softmin");
  SINKHORN_INTERNAL_CHECK(!row_scales.defined() || (reduction == cpu::DenseReduction::softmax_weights &&
                                                    row_scales.scalar_type() == dtype && row_scales.is_contiguous() &&
                                                    row_scales.numel() == cost.size(0) * cost.size(1)),
                          "dense_reduce_into: row scales are (B, N) of the costs' dtype, for softmax weights");
  const auto run = [&](auto zero) {
    using T = decltype(zero);
    cpu::DenseProblem<T> problem;
    problem.cost = cost.data_ptr<T>();
    problem.h = h.data_ptr<T>();
    problem.batch = cost.size(0);
    problem.n = cost.size(1);
    problem.m = cost.size(2);
    problem.eps = eps;
    problem.reduction = reduction;
    problem.out = out.data_ptr<T>();
    problem.threads = at::get_num_threads();
    if (row_shifts.defined()) problem.row_shifts = row_shifts.data_ptr<T>();
    if (row_scales.defined()) problem.row_scales = row_scales.data_ptr<T>();
    cpu::dense_reduce(problem);
  };
  if (dtype == at::kDouble) {
    run(0.0);
  } else {
    run(0.0f);
  }
}

}  // namespace sinkhorn::reduce
