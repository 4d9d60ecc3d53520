#include "solver/epsilon_schedule.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iomanip>

#include "util/check.h"

namespace sinkhorn::solver {

std::vector<double> epsilon_schedule(int p, double diameter, double blur, double scaling) {
  // Count before building: a scaling a hair below 1 (0.999999999) would otherwise make billions.
  const double steps = std::ceil(std::log(diameter / blur) / -std::log(scaling));
  SINKHORN_CHECK_ARG(!(steps > kLongestEpsilonSchedule), "scaling",
                     std::setprecision(12) << scaling << " anneals from the diameter " << diameter << " to the blur " << blur << " in " << steps
                             << " steps, more than " << kLongestEpsilonSchedule
                             << "; use a smaller scaling (0.5 to 0.95 is usual)");
  std::vector<double> epsilons;
  for (double scale = diameter; scale > blur; scale *= scaling) {
    epsilons.push_back(std::pow(scale, p));
  }
  epsilons.push_back(std::pow(blur, p));
  return epsilons;
}

BoundingBox BoundingBox::of(const at::Tensor& points) {
  // amin and amax apart: ATen's fused aminmax over the leading axis is 6x slower (torch 2.11).
  const at::Tensor flat = points.detach().reshape({-1, points.size(-1)});
  const at::Tensor bounds = at::stack({flat.amin(0), flat.amax(0)}).to(at::kCPU, at::kDouble).contiguous();
  const double* data = bounds.data_ptr<double>();
  const int64_t d = points.size(-1);
  return {std::vector<double>(data, data + d), std::vector<double>(data + d, data + 2 * d)};
}

BoundingBox BoundingBox::merged(const BoundingBox& other) const {
  BoundingBox box = *this;
  for (size_t k = 0; k < lower.size(); ++k) {
    box.lower[k] = std::min(lower[k], other.lower[k]);
    box.upper[k] = std::max(upper[k], other.upper[k]);
  }
  return box;
}

bool BoundingBox::finite() const {
  const auto all_finite = [](const std::vector<double>& values) {
    return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
  };
  return all_finite(lower) && all_finite(upper);
}

double BoundingBox::diagonal() const {
  double widest = 0.0;
  for (size_t k = 0; k < lower.size(); ++k) widest = std::max(widest, upper[k] - lower[k]);
  if (!(widest > 0)) return 0.0;
  double sum = 0.0;
  for (size_t k = 0; k < lower.size(); ++k) sum += std::pow((upper[k] - lower[k]) / widest, 2);
  return widest * std::sqrt(sum);
}

}  // namespace sinkhorn::solver
