#include "solver/epsilon_schedule.h"

#include <ATen/ATen.h>

#include <cmath>

namespace sinkhorn::solver {

std::vector<double> epsilon_schedule(int p, double diameter, double blur, double scaling) {
  std::vector<double> epsilons;
  for (double scale = diameter; scale > blur; scale *= scaling) {
    epsilons.push_back(std::pow(scale, p));
  }
  epsilons.push_back(std::pow(blur, p));
  return epsilons;
}

double bounding_box_diameter(const at::Tensor& x, const at::Tensor& y) {
  const int64_t d = x.size(-1);
  const at::Tensor points = at::cat({x.detach().reshape({-1, d}), y.detach().reshape({-1, d})}, 0);
  const at::Tensor extent = std::get<0>(points.max(0)) - std::get<0>(points.min(0));
  return extent.to(at::kDouble).norm().item<double>();
}

}  // namespace sinkhorn::solver
