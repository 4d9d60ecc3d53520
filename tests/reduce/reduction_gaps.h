// Compares a reducer's three reductions with the reference on the same inputs: the largest
// absolute gap of each, and the largest magnitude of the reference's values (the scale the gap
// is judged against). Shared by the backend tests; each states its own tolerances.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "reduce/reducer.h"

namespace sinkhorn::reduce::testing {

struct ReductionGaps {
  double softmin = 0, gradient = 0, cost = 0;                    ///< max |candidate - reference|
  double softmin_scale = 0, gradient_scale = 0, cost_scale = 0;  ///< max |reference|
};

inline ReductionGaps reduction_gaps(const Reducer& candidate, const Reducer& reference,
                                    const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) {
  ReductionGaps gaps;
  const auto measure = [](const at::Tensor& actual_value, const at::Tensor& expected_value, double& gap,
                          double& scale) {
    const at::Tensor actual = actual_value.to(at::kDouble), expected = expected_value.to(at::kDouble);
    EXPECT_EQ(actual.sizes(), expected.sizes());
    gap = (actual - expected).abs().max().item<double>();
    scale = expected.abs().max().item<double>();
  };
  measure(candidate.softmin(x, y, h, eps), reference.softmin(x, y, h, eps), gaps.softmin, gaps.softmin_scale);
  measure(candidate.softmax_cost_gradient(x, y, h, eps), reference.softmax_cost_gradient(x, y, h, eps),
          gaps.gradient, gaps.gradient_scale);
  measure(candidate.softmax_cost(x, y, h, eps), reference.softmax_cost(x, y, h, eps), gaps.cost, gaps.cost_scale);
  return gaps;
}

}  // namespace sinkhorn::reduce::testing
