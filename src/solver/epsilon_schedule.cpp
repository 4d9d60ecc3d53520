#include "solver/epsilon_schedule.h"

#include <ATen/ATen.h>

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

double bounding_box_diameter(const at::Tensor& x, const at::Tensor& y) {
  const int64_t d = x.size(-1);
  const at::Tensor points = at::cat({x.detach().reshape({-1, d}), y.detach().reshape({-1, d})}, 0).to(at::kDouble);
  // In doubles, scaled by the widest extent: coordinates near 1e154 (or float32's 3e38) would
  // overflow |extent|^2 and make the diameter infinite.
  const at::Tensor extent = std::get<0>(points.max(0)) - std::get<0>(points.min(0));
  const double widest = extent.max().item<double>();
  if (!(widest > 0)) return 0.0;
  return widest * (extent / widest).norm().item<double>();
}

}  // namespace sinkhorn::solver
