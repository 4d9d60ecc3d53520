// The two-grid correction of OT(a, b) on clusters (solver/coarse_correction.h): one correction
// makes the plan's cluster marginals exact and raises the entropic dual (both computed here in
// float64 from the potentials, independently of the library), per batch entry; a batch entry is
// corrected as it would be alone; and the loop reports corrections where Sinkhorn crawls.
#include "solver/coarse_correction.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sinkhorn/divergence.h"
#include "solver/epsilon_schedule.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

// Three tight clusters of 20 points, 1.5 apart on a line, with the masses given (uniform within).
std::pair<at::Tensor, at::Tensor> three_clusters(const std::vector<double>& masses, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> points, weights;
  for (int c = 0; c < 3; ++c) {
    points.push_back(at::tensor({1.5 * c, 0.0}, at::kDouble) + 0.05 * at::randn({20, 2}, at::kDouble));
    weights.push_back(at::full({20}, masses[c] / 20, at::kDouble));
  }
  return {at::cat(points), at::cat(weights)};
}

struct DualCheck {
  double dual = 0;                                   // <a, f> + <b, g> - eps (sum pi - 1)
  std::vector<double> row_cluster_mass = {0, 0, 0};  // the plan's mass leaving each x cluster
};

DualCheck check(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                const at::Tensor& f, const at::Tensor& g, double eps) {
  DualCheck result;
  const auto px = x.contiguous(), py = y.contiguous();
  double total = 0;
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t j = 0; j < y.size(0); ++j) {
      const double dx = px[i][0].item<double>() - py[j][0].item<double>();
      const double dy = px[i][1].item<double>() - py[j][1].item<double>();
      const double pi = a[i].item<double>() * b[j].item<double>() *
                        std::exp((f[i].item<double>() + g[j].item<double>() - 0.5 * (dx * dx + dy * dy)) / eps);
      total += pi;
      result.row_cluster_mass[i / 20] += pi;
    }
  }
  result.dual = (a * f).sum().item<double>() + (b * g).sum().item<double>() - eps * (total - 1);
  return result;
}

solver::Cloud cloud(const at::Tensor& points, const at::Tensor& weights) {
  return {points, weights, weights.log()};
}

// g of one Sinkhorn half-step from f = 0 (exact for f; the clusters' masses still off).
at::Tensor half_step(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, double eps) {
  const at::Tensor cost = 0.5 * at::cdist(y, x).pow(2);
  return -eps * at::logsumexp(a.log().unsqueeze(0) - cost / eps, 1);
}

TEST(CoarseCorrection, MakesTheClusterMarginalsExactAndRaisesTheDualPerBatchEntry) {
  const double eps = 0.01;
  std::vector<at::Tensor> xs, as, ys, bs;
  const std::vector<std::vector<double>> x_masses{{0.3, 0.3, 0.4}, {0.5, 0.2, 0.3}};
  for (int e = 0; e < 2; ++e) {
    const auto [x, a] = three_clusters(x_masses[e], 1 + e);
    const auto [y, b] = three_clusters({0.34, 0.33, 0.33}, 5 + e);
    xs.push_back(x), as.push_back(a), ys.push_back(y), bs.push_back(b);
  }
  const solver::Cloud cloud_a = cloud(at::stack(xs), at::stack(as)), cloud_b = cloud(at::stack(ys), at::stack(bs));
  const auto partition = solver::coarse_partition(cloud_a, cloud_b, 2);
  ASSERT_TRUE(partition.has_value());
  ASSERT_EQ(partition->size(), 2u);
  solver::PotentialPair potentials{at::zeros({2, 60}, at::kDouble),
                                   at::stack({half_step(xs[0], as[0], ys[0], eps), half_step(xs[1], as[1], ys[1], eps)})};
  const solver::PotentialPair start = potentials;
  const solver::CoarseCorrectionReport report = solver::correct_on_clusters(*partition, cloud_a, cloud_b, eps, potentials);
  ASSERT_TRUE(report.applied);
  EXPECT_LT(report.error_after, 1e-6);
  for (int e = 0; e < 2; ++e) {
    const DualCheck before = check(xs[e], as[e], ys[e], bs[e], start.f[e], start.g[e], eps);
    const DualCheck after = check(xs[e], as[e], ys[e], bs[e], potentials.f[e], potentials.g[e], eps);
    EXPECT_GT(after.dual, before.dual + 1e-4) << "entry " << e;
    for (int c = 0; c < 3; ++c) {
      EXPECT_GT(std::abs(before.row_cluster_mass[c] - x_masses[e][c]), 1e-3) << "entry " << e << " cluster " << c;
      EXPECT_NEAR(after.row_cluster_mass[c], x_masses[e][c], 1e-5) << "entry " << e << " cluster " << c;
    }
  }
  // Corrected again, nothing moves beyond the coarse tolerance (eps x 1e-4): the clusters'
  // marginals are already right (an entry of a batch that has converged while another crawls).
  const solver::PotentialPair corrected = potentials;
  solver::correct_on_clusters(*partition, cloud_a, cloud_b, eps, potentials);
  EXPECT_LT((potentials.f - corrected.f).abs().max().item<double>(), 1e-6);
  EXPECT_LT((potentials.g - corrected.g).abs().max().item<double>(), 1e-6);
  // The first entry alone gets the same shifts (up to rounding) as within the batch.
  const solver::Cloud alone_a = cloud(xs[0].unsqueeze(0), as[0].unsqueeze(0));
  const solver::Cloud alone_b = cloud(ys[0].unsqueeze(0), bs[0].unsqueeze(0));
  solver::PotentialPair alone{start.f.narrow(0, 0, 1), start.g.narrow(0, 0, 1)};
  solver::correct_on_clusters(*solver::coarse_partition(alone_a, alone_b, 2), alone_a, alone_b, eps, alone);
  EXPECT_LT((alone.f[0] - potentials.f[0]).abs().max().item<double>(), 1e-9);
  EXPECT_LT((alone.g[0] - potentials.g[0]).abs().max().item<double>(), 1e-9);
}

TEST(CoarseCorrection, AppliesOnlyWhereGridClustersAndTheDenseSumsFit) {
  const auto [x, a] = three_clusters({0.3, 0.3, 0.4}, 1);
  const at::Tensor x4 = at::cat({x, at::zeros({60, 2}, at::kDouble)}, 1);  // 4 dimensions
  EXPECT_FALSE(solver::coarse_partition(cloud(x4.unsqueeze(0), a.unsqueeze(0)), cloud(x4.unsqueeze(0), a.unsqueeze(0)), 2));
  const at::Tensor one_point = at::zeros({1, 60, 2}, at::kDouble);  // every point in one cell
  EXPECT_FALSE(solver::coarse_partition(cloud(one_point, a.unsqueeze(0)), cloud(one_point, a.unsqueeze(0)), 2));
}

// Two samples of the ring of 8 Gaussians (the paper's toy), modes of slightly different masses:
// Sinkhorn's slowest mode moves mass between modes. At the trainer's tolerance the loop corrects
// (the loop's report), and stops within 1e-4 of a solve to tolerance 1e-9 in fewer than half the
// plain loop's sweeps.
TEST(CoarseCorrection, TheLoopCorrectsAndStopsNearTheConvergedValueOnARingOfGaussians) {
  at::manual_seed(8);
  const auto ring = [](int64_t n) {
    const at::Tensor angle = at::randint(0, 8, {n}, at::kLong).to(at::kDouble) * (M_PI / 4);
    return (2.0 * at::stack({angle.cos(), angle.sin()}, 1) + 0.05 * at::randn({n, 2}, at::kDouble)).unsqueeze(0);
  };
  const at::Tensor x = ring(500), y = ring(500);
  const at::Tensor w = at::full({1, 500}, 1.0 / 500, at::kDouble);
  const solver::Cloud a = cloud(x, w), b = cloud(y, w);
  const auto solve = [&](double tolerance, bool corrected) {
    solver::LoopSettings settings;
    settings.epsilons = solver::epsilon_schedule(2, 6.0, 0.1, 0.5);
    settings.tolerance = tolerance;
    settings.max_iterations = 200000;
    settings.solve_symmetric = false;
    if (corrected) settings.coarse_correction_p = 2;
    const auto reducer = reduce::make_reducer(Backend::tensorized, 2, x, y);
    solver::DualState state;
    const solver::LoopReport report = solver::sinkhorn_loop(*reducer, a, b, settings, state);
    const double value = (state.ab.f * w).sum().item<double>() + (state.ab.g * w).sum().item<double>();
    return std::make_pair(report, value);
  };
  const auto [tight_report, converged] = solve(1e-9, true);
  ASSERT_TRUE(tight_report.converged);
  const auto [report, value] = solve(1e-3, true);
  EXPECT_GT(report.coarse_corrections, 0);
  EXPECT_NEAR(value, converged, 1e-4 * std::abs(converged));
  const auto [plain_report, plain_value] = solve(1e-3, false);
  EXPECT_NEAR(plain_value, converged, 1e-3 * std::abs(converged));
  EXPECT_EQ(plain_report.coarse_corrections, 0);
  EXPECT_GT(plain_report.iterations, 2 * report.iterations);
}

}  // namespace
}  // namespace sinkhorn
