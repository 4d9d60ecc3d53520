#include "solver/acceleration.h"

#include <cmath>

#include "util/check.h"

namespace sinkhorn::solver {

double windowed_rate(const std::vector<double>& errors) {
  const size_t n = errors.size();
  SINKHORN_INTERNAL_CHECK(n > kRateWindow, "windowed_rate needs more than " << kRateWindow << " errors, got " << n);
  return std::pow(errors[n - 1] / errors[n - 1 - kRateWindow], 1.0 / kRateWindow);
}

}  // namespace sinkhorn::solver
