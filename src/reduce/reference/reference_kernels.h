// Reference reductions: plain double-precision loops, written for clarity, not speed. They are the
// oracle every faster kernel is tested against.
//
// Numeric contract: inputs and outputs in double; the log-sum-exp is two-pass (max, then sum of
// exp(v - max)), so it never overflows and its relative error is a few ulps of double for any
// finite h and eps > 0. Costs are computed from the exact differences x_i - y_j.
// Layout: x is n x d, y is m x d, row-major; h has m entries; p is 1 (|x-y|) or 2 (|x-y|^2 / 2).
#pragma once

#include <cstdint>

namespace sinkhorn::reduce::reference {

/// C(x, y) for one pair of d-dimensional points.
double cost(const double* x, const double* y, std::int64_t d, int p);

/// out[i] = -eps * log sum_j exp(h[j] - C(x_i, y_j) / eps), i < n.
void softmin(const double* x, const double* y, const double* h, std::int64_t n, std::int64_t m,
             std::int64_t d, int p, double eps, double* out);

/// out[i*d + k] = sum_j w_ij d/dx_k C(x_i, y_j), with w_ij = softmax_j(h[j] - C(x_i, y_j) / eps).
void softmax_cost_gradient(const double* x, const double* y, const double* h, std::int64_t n,
                           std::int64_t m, std::int64_t d, int p, double eps, double* out);

/// out[i] = sum_j w_ij C(x_i, y_j), with the same weights.
void softmax_cost(const double* x, const double* y, const double* h, std::int64_t n,
                  std::int64_t m, std::int64_t d, int p, double eps, double* out);

}  // namespace sinkhorn::reduce::reference
