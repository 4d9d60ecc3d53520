#include "gen/data/toy2d.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "sinkhorn/error.h"

namespace sinkhorn::gen {
namespace {

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TEST(Toy2d, EveryToyGivesFiniteTwoDimensionalPointsReproducibly) {
  for (const std::string& name : toy_names()) {
    at::Generator g1 = seeded(7), g2 = seeded(7), g3 = seeded(8);
    const at::Tensor a = sample_toy(name, 500, g1);
    ASSERT_EQ(a.sizes(), at::IntArrayRef({500, 2})) << name;
    EXPECT_TRUE(a.isfinite().all().item<bool>()) << name;
    EXPECT_TRUE(a.equal(sample_toy(name, 500, g2))) << name;
    EXPECT_FALSE(a.equal(sample_toy(name, 500, g3))) << name;
  }
  at::Generator g = seeded(0);
  EXPECT_THROW(sample_toy("spiral", 10, g), Error);
}

TEST(Toy2d, RingPointsLieNearRadiusTwoAndEllipseOnItsCurve) {
  at::Generator g = seeded(1);
  const at::Tensor ring = sample_toy("ring8", 20000, g);
  const at::Tensor radius = ring.norm(2, 1);
  EXPECT_NEAR(radius.mean().item<double>(), 2.0, 0.01);
  EXPECT_LT(radius.std().item<double>(), 0.06);
  // Undo the 30 degree turn; then (u/2)^2 + v^2 = 1 up to the noise.
  const at::Tensor ellipse = sample_toy("ellipse", 20000, g);
  const double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
  const at::Tensor u = c * ellipse.select(1, 0) + s * ellipse.select(1, 1);
  const at::Tensor v = -s * ellipse.select(1, 0) + c * ellipse.select(1, 1);
  EXPECT_NEAR(((u / 2).square() + v.square()).mean().item<double>(), 1.0, 0.03);
}

TEST(ModeCoverage, TheDistributionCoversItsModesAndACollapseDoesNot) {
  for (const std::string name : {"ring8", "grid25"}) {
    const ToyModes modes = toy_modes(name);
    at::Generator g = seeded(3);
    const ModeCoverage own = mode_coverage(modes, sample_toy(name, 5000, g));
    EXPECT_EQ(own.covered, own.modes) << name;
    EXPECT_GT(own.high_quality_fraction, 0.98) << name;  // 3 std holds 98.9% of a 2-D Gaussian
    // Every sample on one centre: one mode covered, all of high quality.
    const at::Tensor collapsed = modes.centres[0].expand({1000, 2});
    const ModeCoverage one = mode_coverage(modes, collapsed);
    EXPECT_EQ(one.covered, 1) << name;
    EXPECT_DOUBLE_EQ(one.high_quality_fraction, 1.0) << name;
  }
  // Points spread over the ring's box: few of high quality, so few modes reach a fifth of their share.
  at::Generator g = seeded(4);
  const at::Tensor spread = 4 * at::rand({5000, 2}, g, at::TensorOptions().dtype(at::kFloat)) - 2;
  const ModeCoverage spread_coverage = mode_coverage(toy_modes("ring8"), spread);
  EXPECT_LT(spread_coverage.high_quality_fraction, 0.1);
  EXPECT_FALSE(toy_modes("moons").centres.defined());
}

}  // namespace
}  // namespace sinkhorn::gen
