#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <memory>

#include "reduce/cpu/online_kernels.h"
#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// The online CPU backend: streaming SIMD + OpenMP kernels (cpu/online_kernels.h), memory
/// O(N + M D). float32 and float64 in their own precision (other dtypes through float32);
/// CPU tensors only. Not differentiable: envelope gradients only.
std::unique_ptr<Reducer> make_online_cpu_reducer(int p);

/// The kernels' view of contiguous tensors in their layout: x (B, N, D), y_t (B, D, M_padded)
/// (y transposed, padded columns finite), h (B, M_padded) with -inf in the padding, out (B, N)
/// or (B, N, D); m is the number of real columns. Shared by the online and multiscale reducers.
template <typename T>
cpu::OnlineProblem<T> online_problem(cpu::Reduction reduction, const at::Tensor& x, const at::Tensor& y_t,
                                     const at::Tensor& h, int64_t m, int p, double eps, at::Tensor& out) {
  cpu::OnlineProblem<T> problem;
  problem.x = x.data_ptr<T>();
  problem.y_t = y_t.data_ptr<T>();
  problem.h = h.data_ptr<T>();
  problem.batch = x.size(0);
  problem.n = x.size(1);
  problem.d = x.size(2);
  problem.m = m;
  problem.m_padded = y_t.size(2);
  problem.p = p;
  problem.eps = eps;
  problem.reduction = reduction;
  problem.out = out.data_ptr<T>();
  problem.threads = at::get_num_threads();
  return problem;
}

}  // namespace sinkhorn::reduce
