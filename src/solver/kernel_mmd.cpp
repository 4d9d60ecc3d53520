#include "solver/kernel_mmd.h"

#include <ATen/ATen.h>

#include "reduce/tensorized/tensorized_reducer.h"
#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// Bandwidths blur, 2 blur, ..., 16 blur: MMD GAN's {1, 2, 4, 8, 16} scaled by blur.
constexpr int kMixtureBandwidths = 5;

at::Tensor kernel_matrix(Loss kernel, const at::Tensor& x, const at::Tensor& y, double blur) {
  switch (kernel) {
    case Loss::energy:
      return -reduce::tensorized_cost_matrix(x, y, 1);
    case Loss::gaussian:  // |x-y|^2 / (2 blur^2) is C_2(x,y) / blur^2 with C_2 = |x-y|^2 / 2
      return (-reduce::tensorized_cost_matrix(x, y, 2) / (blur * blur)).exp();
    case Loss::laplacian:
      return (-reduce::tensorized_cost_matrix(x, y, 1) / blur).exp();
    case Loss::gaussian_mixture: {
      const at::Tensor half_squared = reduce::tensorized_cost_matrix(x, y, 2);
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
  SINKHORN_CHECK(false, "loss '" << to_string(kernel) << "' is not a kernel MMD");
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
  return 0.5 * (quadratic_form(kernel, a, x, a, x, blur) + quadratic_form(kernel, b, y, b, y, blur)) -
         quadratic_form(kernel, a, x, b, y, blur);
}

}  // namespace sinkhorn::solver
