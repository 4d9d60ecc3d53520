// The reduction layer's interface: the only operations the Sinkhorn solver needs over N x M pairs.
// Every reduction is batched over B independent problems and streams (or materialises, for the
// tensorized backend) the matrix of pair terms h_j - C(x_i, y_j) / eps.
//
// Shapes: x (B, N, D), y (B, M, D), h (B, M); all one floating dtype and one device.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "sinkhorn/options.h"

namespace sinkhorn::reduce {

class Reducer {
 public:
  virtual ~Reducer() = default;

  /// softmin_eps(C, h)_i = -eps * log sum_j exp(h_j - C(x_i, y_j) / eps), shape (B, N).
  virtual at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                             double eps) const = 0;

  /// sum_j w_ij grad_x C(x_i, y_j) with w_ij = softmax_j(h_j - C(x_i, y_j) / eps), shape (B, N, D).
  /// grad_x of |x - y| is taken as 0 at x = y (the minimal-norm subgradient).
  virtual at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y,
                                           const at::Tensor& h, double eps) const = 0;

  /// sum_j w_ij C(x_i, y_j) with the same weights, shape (B, N): the transport cost per row.
  virtual at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                  double eps) const = 0;

  /// True when autograd can differentiate through the reductions (needed by unrolled gradients).
  virtual bool differentiable() const = 0;

  /// The backend's name, as the command line spells it.
  virtual std::string name() const = 0;
};

/// The backend that runs `backend` for cost exponent p (1 or 2) on clouds x (B, N, D) and
/// y (B, M, D). Backend::automatic picks the fastest one available: tensorized off the CPU; on
/// the CPU online, but tensorized for small clouds (B N M <= 2^22) with D >= kTensorizedMinDimension.
/// Callers that need autograd through the reductions ask for tensorized.
std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& x, const at::Tensor& y);

/// From this dimension on, a cached cost matrix beats recomputing distances every sweep
/// (measured crossover between D = 32 and 64 on AVX-512; docs/benchmarks.md).
inline constexpr int64_t kTensorizedMinDimension = 48;

}  // namespace sinkhorn::reduce
