// The Sinkhorn loop's arithmetic on potentials (B, N): the updates' linear combinations and the
// marginal errors.
//
// A sweep of a small problem (a training batch of a few hundred points) is a few dense
// reductions and a few dozen operations on vectors of a few hundred numbers. Through ATen each of
// those costs a dispatch, an allocation and, for a scalar operand, a cast: about 2 us, so that a
// 200-point divergence spent more in them than in its exponentials. Here, on CPU tensors outside
// autograd, each is one plain loop; elsewhere (GPU tensors, unrolled gradients) ATen's ops, which
// autograd records. Both compute the same formula in the same dtype (accumulations in double).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace sinkhorn::solver {

/// alpha u + beta v, for u and v of one shape and dtype.
at::Tensor linear_combination(double alpha, const at::Tensor& u, double beta, const at::Tensor& v);

/// alpha u (u itself when alpha is 1).
at::Tensor scaled(double alpha, const at::Tensor& u);

/// The largest over the batch entries of the relative L1 marginal error of the plan (f, g),
///   sum_i |a_i exp(min((f_i - s_i) / eps, 80)) - t_i| / sum_i a_i,
/// with s = softmin_eps(C, log b + g / eps) over the target, and target t_i = a_i (balanced) or
/// a_i exp(min(-f_i / rho, 80)) (unbalanced). The exponents are clamped because far from
/// convergence the mass may overflow; the error is then just large. NaN when any term is NaN.
/// Computed on the host when the tensors live there, else on their device with one
/// synchronisation (see marginal_errors for several at once).
double largest_marginal_error(const at::Tensor& weights, const at::Tensor& f, const at::Tensor& softmin,
                              double eps, const std::optional<double>& rho);

/// The same, per batch entry, as a (B) tensor on the tensors' device (no synchronisation).
at::Tensor marginal_error_per_entry(const at::Tensor& weights, const at::Tensor& f, const at::Tensor& softmin,
                                    double eps, const std::optional<double>& rho);

/// True when the loops on the host apply: CPU tensors of dtype float32 or float64, and autograd
/// not recording through them.
bool host_arithmetic_applies(const at::Tensor& u);

}  // namespace sinkhorn::solver
