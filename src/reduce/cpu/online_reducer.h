#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <memory>

#include "reduce/cpu/online_kernels.h"
#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// The online CPU backend, for clouds too large for stored cost matrices: streaming SIMD + OpenMP
/// kernels (cpu/online_kernels.h) from exact differences, memory O(N + M D); for p = 2 and
/// D >= 16, row blocks of the cost matrix by one matrix product each (|x|^2/2 + |y|^2/2 - x.y on
/// the centred clouds) reduced by the dense kernels (cpu/dense_kernels.h), memory O(N + M D) plus
/// one block of at most 2^24 entries: 2x faster at D = 32 to 64 (softmin) and 18x for the
/// gradient at D = 64 (docs/benchmarks.md). float32 and float64 in their own precision (other
/// dtypes through float32); CPU tensors only. Not differentiable: envelope gradients only.
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
