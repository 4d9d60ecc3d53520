// The dense cost matrix C(x_i, y_j), the one home of the formula for every layer that needs the
// whole matrix (the tensorized backend, exact OT, the kernel MMDs, the experiments), and the
// check that such a matrix fits in memory before anything is allocated.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace sinkhorn::reduce {

/// The B x N x M matrix C(x_i, y_j) for x (B, N, D), y (B, M, D): |x - y|^2 / 2 for p = 2 (by
/// |x|^2 + |y|^2 - 2 x.y, one matrix product, clamped at 0: callers centre the clouds first, the
/// absolute error being about dtype-epsilon x max|x|^2), |x - y| for p = 1 (from the differences,
/// a few ulps; its gradient is 0 at x = y). Differentiable.
at::Tensor cost_matrix(const at::Tensor& x, const at::Tensor& y, int p);

/// Memory (bytes) a process may use on the CPU: the physical memory, or the cgroup's limit (a
/// container's) when that is lower. 0 for other devices and when unknown (then nothing is
/// refused; a GPU allocator's own failure is reported as out of memory).
uint64_t usable_memory_bytes(const at::Device& device);

/// Refuses, naming `argument`, a dense computation that would hold `matrices` B x N x M matrices of
/// `element_size` bytes at once when they exceed usable_memory_bytes(device): the allocation would
/// fail minutes later, or the machine would swap. `alternative` says what to use instead.
void check_dense_fits(int64_t batch, int64_t n, int64_t m, int64_t element_size, double matrices,
                      const at::Device& device, const std::string& argument, const std::string& what,
                      const std::string& alternative);

}  // namespace sinkhorn::reduce
