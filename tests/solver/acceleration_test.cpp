// The loop's acceleration decisions on synthetic marginal-error sequences, where the right answer
// is known: Young's optimal omega for a measured plain rate, falling back on divergence, and the
// scheme selector's choice between averaged and alternating updates.
#include "solver/acceleration.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sinkhorn::solver {
namespace {

// Feeds `sweeps` errors falling geometrically at `rate` per sweep from `start` (or from the last
// error fed); returns the last error.
template <typename Accelerator>
double feed(Accelerator& accelerator, double start, double rate, int sweeps) {
  double error = start;
  for (int k = 0; k < sweeps; ++k) {
    accelerator.observe(error);
    error *= rate;
  }
  return error;
}

TEST(Acceleration, WindowedRateIsTheMeanContraction) {
  std::vector<double> errors;
  for (int k = 0; k < 12; ++k) errors.push_back(std::pow(0.8, k));
  EXPECT_NEAR(windowed_rate(errors), 0.8, 1e-12);
  errors.back() = errors[errors.size() - 2];  // a stall at the end lowers the mean contraction
  EXPECT_NEAR(windowed_rate(errors), std::pow(0.8, 4.0 / 5.0), 1e-12);
}

TEST(Relaxation, YoungsOmegaForASlowPlainRate) {
  // omega* = 2 / (1 + sqrt(1 - mu^2)): 1.519 for mu^2 = 0.9, capped at 1.98.
  EXPECT_NEAR(Relaxation::optimal_omega(0.9), 2.0 / (1.0 + std::sqrt(0.1)), 1e-12);
  EXPECT_DOUBLE_EQ(Relaxation::optimal_omega(0.999999), 1.98);
  Relaxation relaxation;
  // Plain sweeps at rate 0.9 in the linear regime (errors below 5e-2): measured, then relaxed.
  const double error = feed(relaxation, 1e-2, 0.9, 16);
  EXPECT_NEAR(relaxation.omega(), Relaxation::optimal_omega(0.9), 1e-9);
  // Relaxed sweeps contracting at omega* - 1, as Young predicts: the estimate of mu^2 is 0.9 again,
  // no larger omega is worth it, and omega stays.
  feed(relaxation, error, relaxation.omega() - 1.0, 60);
  EXPECT_NEAR(relaxation.omega(), Relaxation::optimal_omega(0.9), 1e-9);
}

TEST(Relaxation, StaysPlainWhenFastOrFarFromTheOptimum) {
  Relaxation fast;
  feed(fast, 1e-2, 0.3, 40);  // plain Sinkhorn already contracts fast: nothing to gain
  EXPECT_EQ(fast.omega(), 1.0);
  Relaxation far;
  feed(far, 10.0, 0.995, 40);  // errors above 5e-2: the linear theory does not hold yet
  EXPECT_EQ(far.omega(), 1.0);
  Relaxation undefined;
  for (int k = 0; k < 40; ++k) undefined.observe(0.0);  // 0/0 rates carry no information
  EXPECT_EQ(undefined.omega(), 1.0);
}

TEST(Relaxation, FallsBackToPlainSweepsWhenRelaxedErrorsDiverge) {
  Relaxation relaxation;
  double error = feed(relaxation, 1e-2, 0.95, 16);
  const double relaxed = relaxation.omega();
  ASSERT_GT(relaxed, 1.5);
  // Under omega the error grows by 10x per sweep: past 100x its level at the change, plain again.
  for (int k = 0; k < 4 && relaxation.omega() > 1.0; ++k) relaxation.observe(error *= 10.0);
  EXPECT_EQ(relaxation.omega(), 1.0);
  // Later tries stay below half the failed excess: omega <= 1 + (relaxed - 1) / 2.
  feed(relaxation, 1e-2, 0.95, 40);
  EXPECT_GT(relaxation.omega(), 1.0);
  EXPECT_LE(relaxation.omega(), 1.0 + (relaxed - 1.0) / 2.0 + 1e-12);
}

TEST(SchemeSelector, KeepsAveragedUpdatesWhileTheyAreFast) {
  SchemeSelector scheme;
  EXPECT_TRUE(scheme.averaged());
  feed(scheme, 1e-2, 0.2, 64);
  EXPECT_TRUE(scheme.averaged());
  EXPECT_EQ(scheme.omega(), 1.0);
}

TEST(SchemeSelector, SwitchesToRelaxedAlternatingWhenItsPredictionWins) {
  SchemeSelector scheme;
  // Averaged sweeps crawl at 0.97: the selector probes plain alternating sweeps...
  double error = feed(scheme, 1e-2, 0.97, 8);
  EXPECT_FALSE(scheme.averaged());
  EXPECT_EQ(scheme.omega(), 1.0);
  // ...which contract at 0.9, predicting omega* - 1 = 0.52 relaxed: it switches and relaxes.
  feed(scheme, error, 0.9, 8);
  EXPECT_FALSE(scheme.averaged());
  EXPECT_NEAR(scheme.omega(), Relaxation::optimal_omega(0.9), 1e-9);
}

TEST(SchemeSelector, ReturnsToAveragedWhenTheProbeIsSlower) {
  SchemeSelector scheme;
  double error = feed(scheme, 1e-2, 0.6, 8);  // slow enough to probe (>= 0.5)
  ASSERT_FALSE(scheme.averaged());
  feed(scheme, error, 0.999, 8);  // plain alternating is far slower, even relaxed (0.92)
  EXPECT_TRUE(scheme.averaged());
}

TEST(SchemeSelector, ReportsTheRateItChoseAlternatingUpdatesOn) {
  SchemeSelector scheme;
  double error = feed(scheme, 1e-2, 0.97, 8);
  EXPECT_FALSE(scheme.alternating_plain_rate());  // probing is not choosing
  feed(scheme, error, 0.9, 8);
  ASSERT_TRUE(scheme.alternating_plain_rate());
  EXPECT_NEAR(*scheme.alternating_plain_rate(), 0.9, 1e-9);
  SchemeSelector averaged;
  feed(averaged, 1e-2, 0.2, 64);
  EXPECT_FALSE(averaged.alternating_plain_rate());
}

TEST(SchemeSelector, StartsAlternatingAndRelaxesOnceTheErrorIsInTheLinearRegime) {
  SchemeSelector scheme;
  scheme.start_alternating(0.9);
  EXPECT_FALSE(scheme.averaged());
  // A warm start's first errors are far from the optimum (above 5e-2): plain sweeps meanwhile.
  double error = feed(scheme, 20.0, 0.3, 4);
  EXPECT_FALSE(scheme.averaged());
  EXPECT_EQ(scheme.omega(), 1.0);
  // The first error under 5e-2 relaxes at once with Young's omega for the rate given.
  scheme.observe(error = 4e-2);
  EXPECT_NEAR(scheme.omega(), Relaxation::optimal_omega(0.9), 1e-9);
  // From there the relaxation re-measures as usual: relaxed sweeps crawling at 0.95 (slower than
  // omega* - 1 = 0.52 predicts) reveal a slower plain rate, and omega grows.
  feed(scheme, error * 0.95, 0.95, 25);
  EXPECT_GT(scheme.omega(), Relaxation::optimal_omega(0.9) + 0.05);
  EXPECT_FALSE(scheme.averaged());
}

TEST(Relaxation, AGivenPlainRateThatIsFastIsIgnored) {
  Relaxation relaxation;
  relaxation.start_from_plain_rate_when_linear(0.3);  // plain already fast: no relaxation from it
  feed(relaxation, 1e-2, 0.3, 3);
  EXPECT_EQ(relaxation.omega(), 1.0);
  // The relaxation then measures the rate itself: plain sweeps at 0.9 lead to Young's omega.
  feed(relaxation, 1e-2, 0.9, 16);
  EXPECT_NEAR(relaxation.omega(), Relaxation::optimal_omega(0.9), 1e-9);
}

}  // namespace
}  // namespace sinkhorn::solver
