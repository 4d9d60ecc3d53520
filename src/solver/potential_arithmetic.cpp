#include "solver/potential_arithmetic.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// Exponents above this are clamped in the marginal errors (e^80 is far past any mass worth
// telling apart, and finite in float32).
constexpr double kLargestExponent = 80.0;

bool records_gradient(const at::Tensor& t) { return at::GradMode::is_enabled() && t.requires_grad(); }

// The host loops read raw memory: contiguous CPU tensors, float32 or float64, ...
bool host_readable(const at::Tensor& u) {
  return u.device().is_cpu() && (u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble) &&
         u.is_contiguous();
}

// ... the others of the first one's dtype and size.
bool host_readable_beside(const at::Tensor& first, const at::Tensor& other) {
  return other.device().is_cpu() && other.scalar_type() == first.scalar_type() && other.sizes() == first.sizes() &&
         other.is_contiguous();
}

bool same_layout(const at::Tensor& first, const at::Tensor& other) {
  return host_readable_beside(first, other) && !records_gradient(other);
}

template <typename T>
at::Tensor combine_on_host(double alpha, const at::Tensor& u, double beta, const at::Tensor& v) {
  at::Tensor out = at::empty_like(u);
  const T* u_data = u.data_ptr<T>();
  const T* v_data = v.defined() ? v.data_ptr<T>() : nullptr;
  T* out_data = out.data_ptr<T>();
  const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
  const int64_t count = u.numel();
  if (v_data) {
    for (int64_t i = 0; i < count; ++i) out_data[i] = a * u_data[i] + b * v_data[i];
  } else {
    for (int64_t i = 0; i < count; ++i) out_data[i] = a * u_data[i];
  }
  return out;
}

at::Tensor combine(double alpha, const at::Tensor& u, double beta, const at::Tensor& v) {
  return u.scalar_type() == at::kDouble ? combine_on_host<double>(alpha, u, beta, v)
                                        : combine_on_host<float>(alpha, u, beta, v);
}

// alpha u + beta v as one autograd node (unrolled gradients on the CPU): ATen would record two
// scalar products (each casting its scalar to a tensor) and a sum, and replay three nodes
// backward, for every one of the loop's hundreds of updates. Backward is alpha g and beta g, by
// the same host loop, or by ATen's ops under create_graph so that higher derivatives flow.
class RecordedCombination : public torch::autograd::Function<RecordedCombination> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, double alpha, const at::Tensor& u, double beta,
                            const at::Tensor& v) {
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["beta"] = beta;
    return combine(alpha, u, beta, v);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const double alpha = ctx->saved_data["alpha"].toDouble(), beta = ctx->saved_data["beta"].toDouble();
    const at::Tensor grad = grad_outputs[0];
    const bool differentiable = at::GradMode::is_enabled();
    const auto times = [&](double factor) {
      if (differentiable) return grad * factor;
      return combine(factor, grad.contiguous(), 0.0, at::Tensor());
    };
    // needs_input_grad counts the tensor arguments only: u is 0, v is 1.
    return {at::Tensor(), ctx->needs_input_grad(0) ? times(alpha) : at::Tensor(), at::Tensor(),
            ctx->needs_input_grad(1) ? times(beta) : at::Tensor()};
  }
};

// Autograd records alpha u + beta v on CPU tensors the host loop takes.
bool recording_on_host(const at::Tensor& u, const at::Tensor& v) {
  return v.defined() && (records_gradient(u) || records_gradient(v)) && host_readable(u) &&
         host_readable_beside(u, v);
}

template <typename T>
double largest_error_on_host(const at::Tensor& weights, const at::Tensor& f, const at::Tensor& softmin, double eps,
                             const std::optional<double>& rho) {
  const T* a = weights.data_ptr<T>();
  const T* f_data = f.data_ptr<T>();
  const T* s = softmin.data_ptr<T>();
  const int64_t batch = f.size(0), n = f.size(1);
  double largest = 0.0;
  for (int64_t entry = 0; entry < batch; ++entry) {
    double error = 0.0, mass = 0.0;
    for (int64_t i = entry * n; i < (entry + 1) * n; ++i) {
      // As ATen does it: the exponent and the products in the dtype, the sums in double.
      const T exponent = std::min(static_cast<T>((f_data[i] - s[i]) / static_cast<T>(eps)), static_cast<T>(kLargestExponent));
      const T row_mass = a[i] * std::exp(exponent);
      const T target =
          rho ? a[i] * std::exp(std::min(static_cast<T>(-f_data[i] / static_cast<T>(*rho)), static_cast<T>(kLargestExponent)))
              : a[i];
      error += std::abs(static_cast<double>(row_mass - target));
      mass += static_cast<double>(a[i]);
    }
    const double relative = error / mass;
    if (std::isnan(relative)) return relative;
    largest = std::max(largest, relative);
  }
  return largest;
}

}  // namespace

bool host_arithmetic_applies(const at::Tensor& u) { return host_readable(u) && !records_gradient(u); }

at::Tensor linear_combination(double alpha, const at::Tensor& u, double beta, const at::Tensor& v) {
  if (host_arithmetic_applies(u) && same_layout(u, v)) return combine(alpha, u, beta, v);
  if (recording_on_host(u, v)) return RecordedCombination::apply(alpha, u, beta, v);
  // One fused kernel (ATen's add with a scale) where a coefficient is 1, as in the loop's
  // h = log w + g / eps: a sweep on the GPU is a handful of launches, each ~5 us.
  if (alpha == 1.0) return at::add(u, v, beta);
  if (beta == 1.0) return at::add(v, u, alpha);
  return at::add(alpha * u, v, beta);
}

at::Tensor scaled(double alpha, const at::Tensor& u) {
  if (alpha == 1.0) return u;
  if (host_arithmetic_applies(u)) return combine(alpha, u, 0.0, at::Tensor());
  return alpha * u;
}

at::Tensor marginal_error_per_entry(const at::Tensor& weights, const at::Tensor& f, const at::Tensor& softmin,
                                    double eps, const std::optional<double>& rho) {
  c10::NoGradGuard no_grad;
  const at::Tensor potential = f.detach();
  const at::Tensor mass =
      weights * ((potential - softmin.detach()) / eps).clamp_max(kLargestExponent).exp();
  const at::Tensor target = rho ? weights * (-potential / *rho).clamp_max(kLargestExponent).exp() : weights;
  return (mass - target).abs().sum(1) / weights.sum(1);
}

double largest_marginal_error(const at::Tensor& weights, const at::Tensor& f, const at::Tensor& softmin, double eps,
                              const std::optional<double>& rho) {
  const at::Tensor potential = f.detach(), s = softmin.detach(), a = weights.detach();
  if (host_arithmetic_applies(potential) && same_layout(potential, s) && same_layout(potential, a)) {
    return potential.scalar_type() == at::kDouble ? largest_error_on_host<double>(a, potential, s, eps, rho)
                                                  : largest_error_on_host<float>(a, potential, s, eps, rho);
  }
  return marginal_error_per_entry(a, potential, s, eps, rho).amax().item<double>();  // amax keeps NaN
}

}  // namespace sinkhorn::solver
