#include "solver/acceleration.h"

#include <cmath>

namespace sinkhorn::solver {

double windowed_rate(const std::vector<double>& errors) {
  const size_t n = errors.size();
  return std::pow(errors[n - 1] / errors[n - 1 - kRateWindow], 1.0 / kRateWindow);
}

}  // namespace sinkhorn::solver
