// The tensorized backend against the double-precision reference, over awkward sizes, both costs,
// both dtypes and batches.
#include "reduce/cost_matrix.h"
#include "reduce/tensorized/tensorized_reducer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>

#include "reduce/reduction_gaps.h"
#include "reduce/reference/reference_reducer.h"

namespace sinkhorn::reduce {
namespace {

struct Case {
  int p;
  at::ScalarType dtype;
};

class TensorizedVsReference : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(TensorizedVsReference, AllReductionsAgree) {
  const auto [p, single] = GetParam();
  const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
  // float32: the expansion |x|^2 + |y|^2 - 2x.y costs a few ulps of |x|^2 (centred data here).
  const double tolerance = single ? 2e-5 : 1e-11;
  at::manual_seed(7);
  const auto tensorized = make_tensorized_reducer(p);
  const auto reference = make_reference_reducer(p);
  for (const int64_t batch : {1, 3}) {
    for (const int64_t n : {1, 2, 7, 17}) {
      for (const int64_t m : {1, 7, 16}) {
        for (const int64_t d : {1, 3, 8, 17}) {
          const at::Tensor x = at::randn({batch, n, d}, at::kDouble).to(dtype);
          const at::Tensor y = at::randn({batch, m, d}, at::kDouble).to(dtype);
          const at::Tensor h = at::randn({batch, m}, at::kDouble).to(dtype);
          for (const double eps : {0.05, 1.0}) {
            SCOPED_TRACE(::testing::Message() << "B=" << batch << " N=" << n << " M=" << m << " D=" << d
                                              << " eps=" << eps);
            const testing::ReductionGaps gaps = testing::reduction_gaps(*tensorized, *reference, x, y, h, eps);
            // softmin values are of the size of the costs: compare against that scale.
            EXPECT_LE(gaps.softmin, tolerance * (1 + gaps.softmin_scale) * (1 + 0.1 / eps * (single ? 1 : 0)));
            EXPECT_LE(gaps.gradient, (single ? 1e-3 : 1e-9) * (1 + gaps.gradient_scale));
            EXPECT_LE(gaps.cost, (single ? 1e-3 : 1e-9) * (1 + gaps.cost_scale));
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CostsAndDtypes, TensorizedVsReference,
                         ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
                         [](const auto& info) {
                           return "p" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_float32" : "_float64");
                         });

TEST(TensorizedCostMatrix, EuclideanCostHasFiniteGradientAtCoincidentPoints) {
  const at::Tensor x = at::randn({1, 4, 3}, at::kDouble).requires_grad_(true);
  const at::Tensor cost = cost_matrix(x, x, 1);
  cost.sum().backward();
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_EQ(at::diagonal(cost[0]).abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace sinkhorn::reduce
