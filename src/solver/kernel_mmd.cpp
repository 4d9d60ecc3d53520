#include "solver/kernel_mmd.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "reduce/cost_matrix.h"
#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// Bandwidths blur, 2 blur, ..., 16 blur: MMD GAN's {1, 2, 4, 8, 16} scaled by blur.
constexpr int kMixtureBandwidths = 5;

at::Tensor kernel_matrix(Loss kernel, const at::Tensor& x, const at::Tensor& y, double blur) {
  switch (kernel) {
    case Loss::energy:
      return -reduce::cost_matrix(x, y, 1);
    case Loss::gaussian:  // |x-y|^2 / (2 blur^2) is C_2(x,y) / blur^2 with C_2 = |x-y|^2 / 2
      return (-reduce::cost_matrix(x, y, 2) / (blur * blur)).exp();
    case Loss::laplacian:
      return (-reduce::cost_matrix(x, y, 1) / blur).exp();
    case Loss::gaussian_mixture: {
      const at::Tensor half_squared = reduce::cost_matrix(x, y, 2);
      at::Tensor sum = at::zeros_like(half_squared);
      for (int k = 0; k < kMixtureBandwidths; ++k) {
        const double width = blur * static_cast<double>(1 << k);
        sum = sum + (-half_squared / (width * width)).exp();
      }
      return sum;
    }
    default:
      break;
  }
  SINKHORN_INTERNAL_CHECK(false, "loss '" << to_string(kernel) << "' is not a kernel MMD");
  return {};
}

// <u, K(p, q) v> per batch entry.
at::Tensor quadratic_form(Loss kernel, const at::Tensor& u, const at::Tensor& p, const at::Tensor& v,
                          const at::Tensor& q, double blur) {
  const at::Tensor k_v = at::bmm(kernel_matrix(kernel, p, q, blur), v.unsqueeze(2)).squeeze(2);
  return (u * k_v).sum(1);
}

}  // namespace

at::Tensor kernel_mmd(Loss kernel, const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                      const at::Tensor& y, double blur) {
  // Three dense matrices at a time (the kernel, its exponent, a temporary), the largest max(N, M)^2.
  const int64_t largest = std::max(x.size(1), y.size(1));
  reduce::check_dense_fits(x.size(0), largest, largest, x.element_size(), 3, x.device(), "loss",
                           to_string(kernel) + " (a kernel MMD, computed with dense matrices)",
                           "use a Sinkhorn loss with the online backend (linear memory), or subsample");
  return 0.5 * (quadratic_form(kernel, a, x, a, x, blur) + quadratic_form(kernel, b, y, b, y, blur)) -
         quadratic_form(kernel, a, x, b, y, blur);
}

}  // namespace sinkhorn::solver
