// The built-in pair of 2-D clouds of `sinkhorn demo` and the experiments: a noisy ring of radius 1
// and an anisotropic Gaussian blob beside it, float64, reproducible (fixed seed).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

namespace sinkhorn::cli {

inline std::pair<at::Tensor, at::Tensor> builtin_clouds(int64_t n, int64_t m) {
  at::manual_seed(0);
  const at::Tensor angle = at::rand({n}, at::kDouble) * 2 * M_PI;
  const at::Tensor ring = at::stack({angle.cos(), angle.sin()}, 1) + 0.05 * at::randn({n, 2}, at::kDouble);
  const at::Tensor blob =
      at::randn({m, 2}, at::kDouble) * at::tensor({0.4, 0.2}, at::kDouble) + at::tensor({2.0, 0.5}, at::kDouble);
  return {ring, blob};
}

}  // namespace sinkhorn::cli
