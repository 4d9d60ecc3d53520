#include "reduce/reference/reference_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sinkhorn::reduce::reference {
namespace {

// The exponents v_j = h_j - C(x_i, y_j) / eps of row i, and their maximum.
double row_exponents(const double* xi, const double* y, const double* h, std::int64_t m,
                     std::int64_t d, int p, double eps, std::vector<double>& v) {
  double max_v = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < m; ++j) {
    v[j] = h[j] - cost(xi, y + j * d, d, p) / eps;
    max_v = std::max(max_v, v[j]);
  }
  return max_v;
}

}  // namespace

double cost(const double* x, const double* y, std::int64_t d, int p) {
  double squared = 0.0;
  for (std::int64_t k = 0; k < d; ++k) {
    const double diff = x[k] - y[k];
    squared += diff * diff;
  }
  return p == 2 ? 0.5 * squared : std::sqrt(squared);
}

void softmin(const double* x, const double* y, const double* h, std::int64_t n, std::int64_t m,
             std::int64_t d, int p, double eps, double* out) {
  std::vector<double> v(m);
  for (std::int64_t i = 0; i < n; ++i) {
    const double max_v = row_exponents(x + i * d, y, h, m, d, p, eps, v);
    if (max_v == -std::numeric_limits<double>::infinity()) {
      out[i] = std::numeric_limits<double>::infinity();  // every weight is zero: empty sum
      continue;
    }
    double sum = 0.0;
    for (std::int64_t j = 0; j < m; ++j) sum += std::exp(v[j] - max_v);
    out[i] = -eps * (max_v + std::log(sum));
  }
}

void softmax_cost_gradient(const double* x, const double* y, const double* h, std::int64_t n,
                           std::int64_t m, std::int64_t d, int p, double eps, double* out) {
  std::vector<double> v(m);
  for (std::int64_t i = 0; i < n; ++i) {
    const double* xi = x + i * d;
    double* gi = out + i * d;
    std::fill(gi, gi + d, 0.0);
    const double max_v = row_exponents(xi, y, h, m, d, p, eps, v);
    double sum = 0.0;
    for (std::int64_t j = 0; j < m; ++j) {
      const double w = std::exp(v[j] - max_v);
      sum += w;
      const double* yj = y + j * d;
      // grad_x |x-y|^2/2 = x - y;  grad_x |x-y| = (x - y) / |x - y|, 0 at x = y.
      double scale = w;
      if (p == 1) {
        const double distance = cost(xi, yj, d, 1);
        scale = distance > 0.0 ? w / distance : 0.0;
      }
      for (std::int64_t k = 0; k < d; ++k) gi[k] += scale * (xi[k] - yj[k]);
    }
    for (std::int64_t k = 0; k < d; ++k) gi[k] /= sum;
  }
}

void softmax_cost(const double* x, const double* y, const double* h, std::int64_t n,
                  std::int64_t m, std::int64_t d, int p, double eps, double* out) {
  std::vector<double> v(m);
  for (std::int64_t i = 0; i < n; ++i) {
    const double* xi = x + i * d;
    const double max_v = row_exponents(xi, y, h, m, d, p, eps, v);
    double sum = 0.0;
    double weighted = 0.0;
    for (std::int64_t j = 0; j < m; ++j) {
      const double w = std::exp(v[j] - max_v);
      sum += w;
      weighted += w * cost(xi, y + j * d, d, p);
    }
    out[i] = weighted / sum;
  }
}

}  // namespace sinkhorn::reduce::reference
