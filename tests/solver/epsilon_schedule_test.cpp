#include "solver/epsilon_schedule.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace sinkhorn::solver {
namespace {

TEST(EpsilonSchedule, GeometricFromDiameterDownToBlur) {
  for (const int p : {1, 2}) {
    const double diameter = 4.0, blur = 0.01, scaling = 0.5;
    const std::vector<double> schedule = epsilon_schedule(p, diameter, blur, scaling);
    ASSERT_GE(schedule.size(), 2u);
    EXPECT_DOUBLE_EQ(schedule.front(), std::pow(diameter, p));
    EXPECT_DOUBLE_EQ(schedule.back(), std::pow(blur, p));
    for (size_t k = 1; k + 1 < schedule.size(); ++k) {
      EXPECT_NEAR(schedule[k] / schedule[k - 1], std::pow(scaling, p), 1e-12);
      EXPECT_GT(schedule[k], std::pow(blur, p));
    }
    // diameter * 0.5^k > 0.01 for k = 0..8: nine annealing steps, then blur.
    EXPECT_EQ(schedule.size(), 10u);
  }
}

TEST(EpsilonSchedule, BlurAboveDiameterIsOneStep) {
  const std::vector<double> schedule = epsilon_schedule(2, 1.0, 3.0, 0.5);
  ASSERT_EQ(schedule.size(), 1u);
  EXPECT_DOUBLE_EQ(schedule[0], 9.0);
}

TEST(BoundingBoxDiameter, DiagonalOfBothClouds) {
  const at::Tensor x = at::tensor({0.0, 0.0, 1.0, 0.5}, at::kDouble).reshape({1, 2, 2});
  const at::Tensor y = at::tensor({-2.0, 3.0}, at::kDouble).reshape({1, 1, 2});
  // Box [-2, 1] x [0, 3]: diagonal sqrt(9 + 9).
  EXPECT_NEAR(BoundingBox::of(x).merged(BoundingBox::of(y)).diagonal(), std::sqrt(18.0), 1e-12);
}

}  // namespace
}  // namespace sinkhorn::solver
