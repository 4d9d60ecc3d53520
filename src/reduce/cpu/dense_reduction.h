// The dense CPU kernels (dense_kernels.h) on tensors: the one adapter the tensorized and online
// reducers (and the tests) call.
#pragma once

#include <ATen/core/Tensor.h>

#include "reduce/cpu/dense_kernels.h"

namespace sinkhorn::reduce {

/// Runs `reduction` over the stored costs `cost` (B, N, M) with h (B, M) into `out`: (B, N), or
/// (B, N, M) for softmax_weights. All contiguous CPU tensors of one dtype, float32 or float64
/// (checked); at::get_num_threads() threads. `row_shifts` (B, N), softmin only, optional: the
/// one-pass kernel's shifts (cpu/row_shifts.h). `row_scales` (B, N), softmax weights only, optional:
/// each row's factor (DenseProblem::row_scales).
void dense_reduce_into(cpu::DenseReduction reduction, const at::Tensor& cost, const at::Tensor& h, double eps,
                       const at::Tensor& out, const at::Tensor& row_shifts = {}, const at::Tensor& row_scales = {});

}  // namespace sinkhorn::reduce
