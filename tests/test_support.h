// Independent oracles and helpers shared by the tests. Nothing here calls the library: the oracle
// is a dense log-domain Sinkhorn in plain doubles whose OT value is the *primal* objective
//   <pi, C> + eps KL(pi | a x b) + rho KL(pi 1 | a) + rho KL(pi^T 1 | b)
// (generalised KL), so it checks the library's dual formulas from the other side of the duality.
#pragma once

#include <ATen/ATen.h>
#include <ftw.h>
#include <stdio.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <optional>
#include <vector>

#include "sinkhorn/error.h"

namespace sinkhorn::testing {

/// Removes a folder and everything under it (nothing when it is missing). Not
/// std::filesystem::remove_all: the PyTorch wheel exports its own copy of that function, which
/// jumps to address 0, and which copy a test binary binds to depends on the link order.
inline void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(), [](const char* entry, const struct stat*, int, struct FTW*) { return ::remove(entry); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

/// A dense cloud in doubles: n points of dimension d, row-major, with weights.
struct DenseCloud {
  std::vector<double> points;
  std::vector<double> weights;
  int64_t n = 0, d = 0;
};

inline DenseCloud to_dense(const at::Tensor& points, const at::Tensor& weights) {
  const at::Tensor p = points.detach().to(at::kDouble).contiguous();
  const at::Tensor w = weights.detach().to(at::kDouble).contiguous();
  DenseCloud cloud;
  cloud.n = p.size(0);
  cloud.d = p.size(1);
  cloud.points.assign(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  cloud.weights.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
  return cloud;
}

inline double oracle_cost(const double* x, const double* y, int64_t d, int p) {
  double squared = 0;
  for (int64_t k = 0; k < d; ++k) squared += (x[k] - y[k]) * (x[k] - y[k]);
  return p == 2 ? squared / 2 : std::sqrt(squared);
}

struct OracleSolution {
  std::vector<double> f, g;           ///< dual potentials
  std::vector<double> plan;           ///< n x m
  double transport_cost = 0;          ///< <pi, C>
  double ot = 0;                      ///< the primal objective (= OT_eps at the optimum)
};

inline double generalised_kl(double p, double q) {
  return (p > 0 ? p * std::log(p / q) : 0.0) - p + q;
}

/// OT_eps between two dense clouds by alternating log-domain Sinkhorn from zero, iterated until the
/// potentials move by less than 1e-13 (or 200,000 sweeps). Balanced when rho is unset.
inline OracleSolution oracle_sinkhorn(const DenseCloud& x, const DenseCloud& y, int p, double eps,
                                      std::optional<double> rho = std::nullopt) {
  const int64_t n = x.n, m = y.n, d = x.d;
  std::vector<double> cost(n * m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) cost[i * m + j] = oracle_cost(&x.points[i * d], &y.points[j * d], d, p);
  const double lambda = rho ? 1.0 / (1.0 + eps / *rho) : 1.0;
  OracleSolution s;
  s.f.assign(n, 0.0);
  s.g.assign(m, 0.0);
  const auto softmin = [&](bool rows, int64_t index) {
    // -eps log sum_k w_k exp((potential_k - C) / eps), with a max shift.
    const int64_t count = rows ? m : n;
    std::vector<double> v(count);
    double top = -INFINITY;
    for (int64_t k = 0; k < count; ++k) {
      const double c = rows ? cost[index * m + k] : cost[k * m + index];
      const double w = rows ? y.weights[k] : x.weights[k];
      const double potential = rows ? s.g[k] : s.f[k];
      v[k] = std::log(w) + (potential - c) / eps;
      top = std::max(top, v[k]);
    }
    double sum = 0;
    for (double value : v) sum += std::exp(value - top);
    return -eps * (top + std::log(sum));
  };
  for (int sweep = 0; sweep < 200000; ++sweep) {
    double change = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double updated = lambda * softmin(true, i);
      change = std::max(change, std::abs(updated - s.f[i]));
      s.f[i] = updated;
    }
    for (int64_t j = 0; j < m; ++j) {
      const double updated = lambda * softmin(false, j);
      change = std::max(change, std::abs(updated - s.g[j]));
      s.g[j] = updated;
    }
    if (change < 1e-13) break;
  }
  s.plan.resize(n * m);
  std::vector<double> row(n, 0.0), column(m, 0.0);
  double entropy = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      const double pi = x.weights[i] * y.weights[j] * std::exp((s.f[i] + s.g[j] - cost[i * m + j]) / eps);
      s.plan[i * m + j] = pi;
      s.transport_cost += pi * cost[i * m + j];
      entropy += generalised_kl(pi, x.weights[i] * y.weights[j]);
      row[i] += pi;
      column[j] += pi;
    }
  }
  s.ot = s.transport_cost + eps * entropy;
  if (rho) {
    for (int64_t i = 0; i < n; ++i) s.ot += *rho * generalised_kl(row[i], x.weights[i]);
    for (int64_t j = 0; j < m; ++j) s.ot += *rho * generalised_kl(column[j], y.weights[j]);
  }
  return s;
}

/// Exact OT between two uniform 1-D clouds of equal size: the monotone (sorted) matching.
inline double sorted_ot_1d(std::vector<double> x, std::vector<double> y, int p) {
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i) total += oracle_cost(&x[i], &y[i], 1, p);
  return total / static_cast<double>(x.size());
}

/// Energy distance with GeomLoss's scaling: 1/2 [2 <a, D b> - <a, D a> - <b, D b>], D = |x - y|.
inline double energy_distance(const DenseCloud& x, const DenseCloud& y) {
  const auto cross = [](const DenseCloud& u, const DenseCloud& v) {
    double total = 0;
    for (int64_t i = 0; i < u.n; ++i)
      for (int64_t j = 0; j < v.n; ++j)
        total += u.weights[i] * v.weights[j] * oracle_cost(&u.points[i * u.d], &v.points[j * v.d], u.d, 1);
    return total;
  };
  return 0.5 * (2 * cross(x, y) - cross(x, x) - cross(y, y));
}

/// Central finite difference of `f` at `t` along `direction`: (f(t + h v) - f(t - h v)) / 2h.
inline double directional_difference(const std::function<double(const at::Tensor&)>& f,
                                     const at::Tensor& t, const at::Tensor& direction, double h) {
  return (f(t + h * direction) - f(t - h * direction)) / (2 * h);
}

/// Random positive weights summing to one.
inline at::Tensor random_weights(int64_t n, at::ScalarType dtype = at::kDouble) {
  const at::Tensor w = at::rand({n}, at::kDouble) + 0.2;
  return (w / w.sum()).to(dtype);
}

inline double relative_error(double value, double expected) {
  return std::abs(value - expected) / std::max(std::abs(expected), 1e-300);
}

/// "argument | problem" of the sinkhorn::Error `action` throws, or "no error".
inline std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.argument() + " | " + error.problem();
  }
  return "no error";
}

/// Bytes as the string_view-able text the readers take.
inline std::string as_chars(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

}  // namespace sinkhorn::testing
