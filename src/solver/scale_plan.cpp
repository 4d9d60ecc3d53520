#include "solver/scale_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/check.h"

namespace sinkhorn::solver {
namespace {

double unit_roundoff(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

// The marginal error a dtype can resolve at small eps: potentials carry an absolute error of
// about an ulp of the cost scale max C, which exp((f - softmin)/eps) turns into a relative mass
// error of about u max C / eps. Asking for less would only burn iterations.
double tolerance_floor(at::ScalarType dtype, double max_cost, double eps) {
  return 2.0 * unit_roundoff(dtype) * max_cost / eps;
}

// What a log-domain softmin resolves far above the cost scale: its exponents log w + g / eps are
// rounded to u (1 + |log w|), and 64 covers |log w| up to e^-60 per point with a margin of 2 for
// the reduction's own rounding.
constexpr double kLargeEpsilonResolution = 64;

}  // namespace

ScalePlan plan_scale(const SinkhornOptions& options, double data_diameter, at::ScalarType dtype) {
  const int p = options.p;
  ScalePlan plan;
  // A power of two, so that dividing by it and multiplying back are exact.
  if (data_diameter > 0) plan.length = std::ldexp(1.0, std::ilogb(data_diameter));
  const auto normalised = [&](double length) { return std::pow(length / plan.length, p); };
  plan.eps = normalised(options.blur);
  if (options.reach) plan.rho = normalised(*options.reach);
  plan.max_cost = normalised(data_diameter) / p;
  plan.schedule_diameter = options.diameter.value_or(data_diameter) / plan.length;

  SINKHORN_CHECK_ARG(std::isfinite(plan.eps), "blur",
                     "is " << options.blur << " for clouds " << data_diameter
                           << " across: (blur / diameter)^p overflows; use a smaller blur");
  SINKHORN_CHECK_ARG(!plan.rho || std::isfinite(*plan.rho), "reach",
                     "is " << options.reach.value_or(0) << " for clouds " << data_diameter
                           << " across: (reach / diameter)^p overflows; use a smaller reach or unset it");
  SINKHORN_CHECK_ARG(std::isfinite(plan.schedule_diameter), "diameter",
                     "is " << options.diameter.value_or(0) << " for clouds " << data_diameter
                           << " across: too large to start eps-scaling from; use a smaller diameter or unset it");
  // Clouds that are one point have no cost scale: every cost is an exact 0, and the loop
  // solves them as it is (their potentials are eps log-masses).
  plan.compute_dtype = dtype;
  plan.tolerance = options.tolerance;
  if (plan.max_cost == 0) return plan;
  const double ratio = plan.eps / plan.max_cost;
  SINKHORN_CHECK_ARG(ratio >= kSmallestRatio, "blur",
                     "gives eps = blur^p " << options.blur << "^" << p << " = " << std::pow(options.blur, p)
                                           << ", " << ratio << " times the clouds' largest cost; below "
                                           << kSmallestRatio << " times it the costs over eps overflow: use a larger blur");
  if (plan.rho && plan.max_cost > 0) {
    SINKHORN_CHECK_ARG(*plan.rho / plan.max_cost >= kSmallestRatio, "reach",
                       "gives rho = reach^p " << std::pow(*options.reach, p) << ", " << *plan.rho / plan.max_cost
                                              << " times the clouds' largest cost; below " << kSmallestRatio
                                              << " times it the marginal penalty underflows: use a larger reach");
  }
  plan.limit = ratio > kLimitRatio;
  SINKHORN_CHECK_ARG(!(plan.limit && plan.rho), "blur",
                     "gives eps = blur^p " << ratio << " times the clouds' largest cost: above " << kLimitRatio
                                           << " times it unbalanced transport (reach set) loses the potentials' digits; "
                                              "use a smaller blur or unset reach");

  const double wanted = options.tolerance / std::max(1.0, ratio);
  if (dtype == at::kFloat && ratio > 1 && wanted < kLargeEpsilonResolution * unit_roundoff(at::kFloat)) {
    plan.compute_dtype = at::kDouble;
  }
  plan.tolerance = std::max(wanted, tolerance_floor(plan.compute_dtype, plan.max_cost, plan.eps));
  return plan;
}

}  // namespace sinkhorn::solver
