// How a Sinkhorn solve sits against the scale of its clouds, decided before it runs
// (docs/numerics.md, "Scale and precision").
//
// Every Sinkhorn loss scales as length^p: S(c x, c y; c blur) = c^p S(x, y; blur). So the solve
// runs on clouds divided by a power of two near their diameter (exact in floating point) and
// only the ratio r = eps / max C, max C = diameter^p / p, decides how it runs:
// - The stopping tolerance. A relative marginal error delta moves the value by about
//   eps * delta (the potentials' constant drifts by eps * delta: a symmetric problem's constant
//   is not free). Above the cost scale (r > 1) the loop therefore asks for delta <= tolerance / r,
//   so that the value stays within about tolerance * max C, as it does for r <= 1.
// - The dtype. A log-domain softmin rounds to about eps * u * (1 + |log w|) (u: the dtype's unit
//   roundoff, w: the weights), so a float32 solve far above the cost scale cannot reach
//   tolerance / r: such solves run in float64 and return in float32.
// - The limit. For r > kLimitRatio even float64 potentials carry few digits, while the eps ->
//   infinity expansion OT_eps(a, b) = <a x b, C> / m - m eps log m - O(max C^2 / eps)
//   (m: the total mass) is exact to max C / r (epsilon_limit.h): those solves return the limit.
#pragma once

#include <ATen/core/ScalarType.h>

#include <optional>

#include "sinkhorn/options.h"

namespace sinkhorn::solver {

/// eps / max C above which a solve returns the eps -> infinity limit: there the limit is within
/// max C / (2 r) <= 5e-8 max C of OT_eps, and a float64 Sinkhorn solve would round to about
/// r u64 (1 + |log w|) max C ~ 2e-8 max C: the two errors cross near r = 1 / sqrt(2 u64 * 10).
constexpr double kLimitRatio = 1e7;
/// eps / max C (and rho / max C) below which a solve is refused: C / eps would overflow float32
/// after the softmin's shift.
constexpr double kSmallestRatio = 1e-30;

struct ScalePlan {
  /// The solve runs on (x - centre) / length: a power of two, the clouds' diameter rounded (1
  /// when the clouds are one point). Values come back times length^p, exactly.
  double length = 1;
  /// The normalised problem: eps = (blur / length)^p, rho = (reach / length)^p, its largest cost
  /// (diameter / length)^p / p, and the diameter eps-scaling starts from.
  double eps = 0;
  std::optional<double> rho;
  double max_cost = 0;
  double schedule_diameter = 0;
  /// The marginal error the loop stops at: tolerance / max(1, eps / max C), raised to what the
  /// compute dtype resolves (2 u max C / eps, docs/numerics.md "Tolerance floor").
  double tolerance = 0;
  /// The dtype the iterations run in: float64 for float32 inputs whose tolerance above needs it.
  at::ScalarType compute_dtype = at::kFloat;
  /// eps > kLimitRatio max C > 0: the value is the eps -> infinity limit (balanced only). Clouds
  /// that are one point (max C = 0) are solved as they are: their costs are exact zeros.
  bool limit = false;
};

/// The plan of a solve of `options` between clouds of bounding-box diagonal `data_diameter`
/// given in `dtype` (float32 or float64). Throws sinkhorn::Error naming blur or reach when
/// eps or rho is below kSmallestRatio max C, and naming blur when an unbalanced problem's eps
/// lies beyond kLimitRatio max C (its limit is not implemented).
ScalePlan plan_scale(const SinkhornOptions& options, double data_diameter, at::ScalarType dtype);

}  // namespace sinkhorn::solver
