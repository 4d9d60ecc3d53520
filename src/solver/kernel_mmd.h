// Kernel MMD baselines: the eps -> infinity end of the Sinkhorn interpolation (energy distance)
// and the usual Gaussian / Laplacian kernels, with GeomLoss's scaling:
//   MMD_k(a, b) = 1/2 [ <a, K_xx a> + <b, K_yy b> - 2 <a, K_xy b> ].
#pragma once

#include <ATen/core/Tensor.h>

#include "sinkhorn/options.h"

namespace sinkhorn::solver {

/// The MMD of `kernel` (Loss::energy, gaussian or laplacian; blur is the kernel width) between
/// weighted clouds a (B, N), x (B, N, D) and b (B, M), y (B, M, D); shape (B,). Dense O(N M)
/// memory; differentiable by autograd in every input.
///   energy:    k(x, y) = -|x - y|
///   gaussian:  k(x, y) = exp(-|x - y|^2 / (2 blur^2))
///   laplacian: k(x, y) = exp(-|x - y| / blur)
at::Tensor kernel_mmd(Loss kernel, const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                      const at::Tensor& y, double blur);

}  // namespace sinkhorn::solver
