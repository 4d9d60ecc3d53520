#include "reduce/cpu/dense_reduction.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "util/check.h"

namespace sinkhorn::reduce {

void dense_reduce_into(cpu::DenseReduction reduction, const at::Tensor& cost, const at::Tensor& h, double eps,
                       const at::Tensor& out) {
  const at::ScalarType dtype = cost.scalar_type();
  SINKHORN_INTERNAL_CHECK(cost.dim() == 3 && h.dim() == 2 && cost.device().is_cpu() &&
                              (dtype == at::kFloat || dtype == at::kDouble) && h.scalar_type() == dtype &&
                              out.scalar_type() == dtype && cost.is_contiguous() && h.is_contiguous() &&
                              out.is_contiguous(),
                          "dense_reduce_into needs contiguous CPU float tensors of one dtype");
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
    cpu::dense_reduce(problem);
  };
  if (dtype == at::kDouble) {
    run(0.0);
  } else {
    run(0.0f);
  }
}

}  // namespace sinkhorn::reduce
