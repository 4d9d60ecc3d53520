// The corrected sweeps of OT(a, b) on clusters (solver/coarse_correction.h), each piece against an
// independent oracle: the Laplacian solve against the exact solution of a chain whose middle edge
// is 1e-200 (where a solve by differences loses it), the semi-dual's maximiser by its optimality
// (every cluster's mass exact, computed here by softmax), Lloyd's clusters by the blobs they come
// from, a corrected sweep by the entropic dual computed in float64 from an explicit cost matrix
// (at least a plain sweep's rise), a batch entry as it is alone, and the loop by its sweeps and
// its value against a tight solve.
#include "solver/coarse_correction.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "solver/epsilon_schedule.h"

namespace sinkhorn {
namespace {

solver::Cloud cloud(const at::Tensor& points, const at::Tensor& weights) { return {points, weights, weights.log()}; }

// k blobs of `per_blob` points in `dimension` D (centres N(0, I) times `spread_of_centres`, each
// blob's spread 0.1), masses uneven by `imbalance` across the blobs. Returns points (N, D), weights (N).
std::pair<at::Tensor, at::Tensor> blobs(int64_t k, int64_t per_blob, int64_t dimension, double centre_scale,
                                        double imbalance, uint64_t seed) {
  at::manual_seed(11);  // the same centres for every seed
  const at::Tensor centres = at::randn({k, dimension}, at::kDouble);
  at::manual_seed(seed);
  std::vector<at::Tensor> points, weights;
  for (int64_t c = 0; c < k; ++c) {
    points.push_back(centre_scale * centres[c] + 0.1 * at::randn({per_blob, dimension}, at::kDouble));
    weights.push_back(at::full({per_blob}, 1.0 + imbalance * (c % 2 == 0 ? 1 : -1) * (seed % 2 == 0 ? 1 : -1),
                               at::kDouble));
  }
  const at::Tensor w = at::cat(weights);
  return {at::cat(points), w / w.sum()};
}

// The entropic dual <a, f> + <b, g> - eps (sum pi - 1) in float64 from the explicit cost |x - y|^2 / 2.
double entropic_dual(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                     const at::Tensor& f, const at::Tensor& g, double eps) {
  const at::Tensor cost = 0.5 * at::cdist(x, y).pow(2);
  const at::Tensor log_plan = a.log().unsqueeze(1) + b.log().unsqueeze(0) + (f.unsqueeze(1) + g.unsqueeze(0) - cost) / eps;
  return ((a * f).sum() + (b * g).sum() - eps * (log_plan.exp().sum() - 1)).item<double>();
}

// One plain alternating sweep in float64: f = softmin(g), then g = softmin(f).
solver::PotentialPair plain_sweep(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                                  const at::Tensor& g, double eps) {
  const at::Tensor cost = 0.5 * at::cdist(x, y).pow(2);
  const at::Tensor f = -eps * at::logsumexp(b.log().unsqueeze(0) + (g.unsqueeze(0) - cost) / eps, 1);
  return {f, -eps * at::logsumexp(a.log().unsqueeze(1) + (f.unsqueeze(1) - cost) / eps, 0)};
}

TEST(SolveLaplacian, KeepsAnEdgeOf1eMinus200ThatDifferencesWouldLose) {
  // The chain 0 - 1 - 2 - 3 with edges 1, 1e-200, 1; a unit flow from node 0 to the ground 3:
  // x3 = 0, x2 = 1, x1 = 1 + 1e200, x0 = 2 + 1e200 (Ohm's law in series).
  const double tiny = 1e-200;
  std::vector<double> w(16, 0.0);
  const auto join = [&](int i, int j, double weight) { w[i * 4 + j] = w[j * 4 + i] = weight; };
  join(0, 1, 1.0), join(1, 2, tiny), join(2, 3, 1.0);
  const std::vector<double> x = solver::solve_laplacian(w, {1.0, 0.0, 0.0, -1.0}, 3);
  EXPECT_EQ(x[3], 0.0);
  EXPECT_NEAR(x[2], 1.0, 1e-12);
  EXPECT_NEAR(x[1] / (1.0 + 1.0 / tiny), 1.0, 1e-12);
  EXPECT_NEAR(x[0] / (2.0 + 1.0 / tiny), 1.0, 1e-12);
}

TEST(SolveLaplacian, MatchesADenseSolveOnARandomGraphAndStepsACutOffNodeTowardsItsMass) {
  at::manual_seed(3);
  const int64_t n = 7;
  const at::Tensor weights = at::rand({n, n}, at::kDouble);
  const at::Tensor symmetric = (weights + weights.t()).fill_diagonal_(0);
  at::Tensor rhs = at::randn({n}, at::kDouble);
  rhs = rhs - rhs.mean();
  std::vector<double> w(symmetric.data_ptr<double>(), symmetric.data_ptr<double>() + n * n);
  std::vector<double> r(rhs.data_ptr<double>(), rhs.data_ptr<double>() + n);
  const std::vector<double> x = solver::solve_laplacian(w, r, 0);
  // Oracle: the Laplacian without the ground's row and column, solved densely.
  const at::Tensor laplacian = at::diag(symmetric.sum(1)) - symmetric;
  const at::Tensor reduced = laplacian.narrow(0, 1, n - 1).narrow(1, 1, n - 1);
  const at::Tensor expected = at::linalg_solve(reduced, rhs.narrow(0, 1, n - 1).unsqueeze(1)).squeeze(1);
  for (int64_t i = 1; i < n; ++i) EXPECT_NEAR(x[i], expected[i - 1].item<double>(), 1e-10) << i;
  // Node 2 joined to nothing, with mass to gain: it moves by kDisconnectedStep, the others as before.
  std::vector<double> cut(w);
  for (int64_t j = 0; j < n; ++j) cut[2 * n + j] = cut[j * n + 2] = 0.0;
  std::vector<double> cut_rhs(r);
  cut_rhs[2] = 0.25;
  const std::vector<double> y = solver::solve_laplacian(cut, cut_rhs, 0);
  EXPECT_EQ(y[2], solver::kDisconnectedStep);
}

TEST(SemiDual, ItsMaximiserMakesEveryClusterMassExactAcrossGapsOfE300AndE800) {
  // 3 clusters; each row sees its own at 0 and the others at -gap +- spread (crossings far below
  // float64's rounding of the rows' sums); the clusters' masses differ from the rows'. At a gap of
  // 800 the crossings are 0 once exponentiated and the lightest cluster's shift lies ~790 under the
  // largest: its rows' scaled sums underflow, and Psi's evaluation must take the log domain there
  // (with the scaled sums alone the solve stops at a mass error of 7e-2).
  for (const auto& [gap, spread] : {std::pair{300.0, 20.0}, std::pair{800.0, 5.0}}) {
    SCOPED_TRACE(gap);
    at::manual_seed(5);
    const int64_t n = 300, clusters = 3;
    const at::Tensor own = at::arange(n, at::kLong) % clusters;
    at::Tensor log_sums = -gap + spread * at::randn({n, clusters}, at::kDouble);
    log_sums.scatter_(1, own.unsqueeze(1), at::zeros({n, 1}, at::kDouble));
    const at::Tensor weights = at::full({n}, 1.0 / n, at::kDouble);
    const std::vector<double> mass{0.30, 0.33, 0.37};
    double error = 1.0;
    const std::optional<std::vector<double>> v = solver::maximise_semi_dual(log_sums, weights, mass, &error);
    ASSERT_TRUE(v.has_value());
    EXPECT_LT(error, 1e-9);
    // Oracle: each row's mass spread over the clusters by the softmax of v + log S.
    const at::Tensor shifts = at::tensor(*v, at::kDouble);
    const at::Tensor received = (at::softmax(log_sums + shifts.unsqueeze(0), 1) * weights.unsqueeze(1)).sum(0);
    for (int64_t l = 0; l < clusters; ++l) EXPECT_NEAR(received[l].item<double>(), mass[l], 1e-9) << l;
    // The shifts had to cross the gap: the heaviest cluster is raised by most of it over the lightest.
    EXPECT_GT((*v)[2] - (*v)[0], 0.8 * gap);
  }
}

TEST(LloydClusters, FindsSeparatedBlobsInSixtyFourDimensionsDeterministically) {
  const auto [x, a] = blobs(4, 50, 64, 1.0, 0.0, 1);
  const auto [y, b] = blobs(4, 50, 64, 1.0, 0.0, 2);
  const std::vector<int64_t> labels = solver::lloyd_clusters(x, y, 4);
  EXPECT_EQ(labels, solver::lloyd_clusters(x, y, 4));
  // x's blob c and y's blob c share a centre: one cluster each, and four clusters in all.
  std::set<int64_t> all;
  for (int64_t c = 0; c < 4; ++c) {
    std::set<int64_t> seen;
    for (int64_t i = 0; i < 50; ++i) seen.insert(labels[c * 50 + i]), seen.insert(labels[200 + c * 50 + i]);
    EXPECT_EQ(seen.size(), 1u) << "blob " << c;
    all.insert(seen.begin(), seen.end());
  }
  EXPECT_EQ(all.size(), 4u);
}

// A corrected sweep from the same g raises the dual at least as much as a plain sweep, and its
// clusters' masses are exact after it; a batch entry is corrected as it would be alone.
TEST(ClusterCorrection, ACorrectedSweepRaisesTheDualAtLeastAsAPlainOnePerBatchEntry) {
  const double eps = 0.25;
  std::vector<at::Tensor> xs, as, ys, bs, gs;
  for (int64_t e = 0; e < 2; ++e) {
    const auto [x, a] = blobs(4, 40, 16, 1.0, 0.05, 1 + e);
    const auto [y, b] = blobs(4, 40, 16, 0.9, 0.05, 4 + e);
    xs.push_back(x), as.push_back(a), ys.push_back(y), bs.push_back(b);
    // g from a plain sweep of an earlier eps: the clusters' masses still far off at this one.
    gs.push_back(plain_sweep(x, a, y, b, at::zeros({160}, at::kDouble), 4 * eps).g);
  }
  const solver::Cloud cloud_a = cloud(at::stack(xs), at::stack(as)), cloud_b = cloud(at::stack(ys), at::stack(bs));
  const auto online = reduce::make_reducer(Backend::online, 2, cloud_a.points, cloud_b.points);
  const std::unique_ptr<solver::ClusterCorrection> correction = solver::ClusterCorrection::make(cloud_a, cloud_b, 2, *online);
  ASSERT_NE(correction, nullptr);
  solver::PotentialPair potentials{at::zeros({2, 160}, at::kDouble), at::stack(gs)};
  const at::Tensor softmin = correction->row_pass(potentials.g, eps);
  const solver::CorrectionReport report = correction->finish_sweep(potentials, eps);
  EXPECT_EQ(report.plain_halves, 0);
  EXPECT_LT(report.cluster_error, 1e-8);
  for (int64_t e = 0; e < 2; ++e) {
    const at::Tensor &x = xs[e], &a = as[e], &y = ys[e], &b = bs[e];
    const solver::PotentialPair plain = plain_sweep(x, a, y, b, gs[e], eps);
    // The row pass's softmin is the plain sweep's f.
    EXPECT_LT((softmin[e] - plain.f).abs().max().item<double>(), 1e-9);
    const double start = entropic_dual(x, a, y, b, at::zeros({160}, at::kDouble), gs[e], eps);
    const double after_plain = entropic_dual(x, a, y, b, plain.f, plain.g, eps);
    const double after_corrected = entropic_dual(x, a, y, b, potentials.f[e], potentials.g[e], eps);
    EXPECT_GT(after_plain, start);
    EXPECT_GE(after_corrected, after_plain - 1e-12) << "entry " << e;
    // The column half leaves every source cluster's row mass exact (the plan's mass leaving it).
    const at::Tensor cost = 0.5 * at::cdist(x, y).pow(2);
    const at::Tensor plan = (a.log().unsqueeze(1) + b.log().unsqueeze(0) +
                             (potentials.f[e].unsqueeze(1) + potentials.g[e].unsqueeze(0) - cost) / eps).exp();
    const std::vector<int64_t>& labels = correction->entries()[e].source_labels;
    std::vector<double> sent(static_cast<size_t>(correction->entries()[e].clusters), 0.0), owned(sent);
    for (int64_t i = 0; i < 160; ++i) {
      sent[labels[i]] += plan[i].sum().item<double>();
      owned[labels[i]] += a[i].item<double>();
    }
    for (size_t k = 0; k < sent.size(); ++k) EXPECT_NEAR(sent[k], owned[k], 1e-8) << "entry " << e << " cluster " << k;
  }
  // The first entry alone: the same potentials.
  const solver::Cloud alone_a = cloud(xs[0].unsqueeze(0), as[0].unsqueeze(0));
  const solver::Cloud alone_b = cloud(ys[0].unsqueeze(0), bs[0].unsqueeze(0));
  const std::unique_ptr<solver::ClusterCorrection> single = solver::ClusterCorrection::make(alone_a, alone_b, 2, *online);
  solver::PotentialPair alone{at::zeros({1, 160}, at::kDouble), gs[0].unsqueeze(0)};
  single->row_pass(alone.g, eps);
  single->finish_sweep(alone, eps);
  EXPECT_LT((alone.f[0] - potentials.f[0]).abs().max().item<double>(), 1e-9);
  EXPECT_LT((alone.g[0] - potentials.g[0]).abs().max().item<double>(), 1e-9);
}

TEST(ClusterCorrection, DoesNotApplyToASingleClusterOrASinglePoint) {
  const auto online = reduce::make_reducer(Backend::online, 2, at::zeros({1, 1, 3}), at::zeros({1, 1, 3}));
  const at::Tensor same = at::zeros({1, 30, 3}, at::kDouble);  // every point at one place
  const at::Tensor w = at::full({1, 30}, 1.0 / 30, at::kDouble);
  EXPECT_EQ(solver::ClusterCorrection::make(cloud(same, w), cloud(same, w), 2, *online), nullptr);
  const at::Tensor one = at::zeros({1, 1, 3}, at::kDouble);
  EXPECT_EQ(solver::ClusterCorrection::make(cloud(one, at::ones({1, 1}, at::kDouble)), cloud(same, w), 2, *online), nullptr);
}

struct LoopOutcome {
  solver::LoopReport report;
  double value;
};

LoopOutcome loop_solve(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                       double blur, double tolerance, bool corrected, Backend backend) {
  solver::LoopSettings settings;
  const double diameter = (at::cat({x, y}).amax(0) - at::cat({x, y}).amin(0)).norm().item<double>();
  settings.epsilons = solver::epsilon_schedule(2, diameter, blur, 0.5);
  settings.tolerance = tolerance;
  settings.max_iterations = 100000;
  settings.solve_symmetric = false;
  if (corrected) settings.coarse_correction_p = 2;
  const solver::Cloud ca = cloud(x.unsqueeze(0), a.unsqueeze(0)), cb = cloud(y.unsqueeze(0), b.unsqueeze(0));
  const auto reducer = reduce::make_reducer(backend, 2, ca.points, cb.points);
  solver::DualState state;
  LoopOutcome outcome{solver::sinkhorn_loop(*reducer, ca, cb, settings, state), 0.0};
  outcome.value = ((state.ab.f[0] * a).sum() + (state.ab.g[0] * b).sum()).item<double>();
  return outcome;
}

// Two samples of the ring of 8 Gaussians (the paper's toy) and two 8-blob mixtures in 16-D whose
// modes have slightly different masses: Sinkhorn's slowest modes move mass between modes. The
// loop takes corrected sweeps (its report) and stops within the tolerance's reach of a tight
// solve in a fraction of the plain loop's sweeps.
TEST(ClusterCorrection, TheLoopCrossesBetweenModesInFewSweepsOnARingAndOnBlobsIn16D) {
  at::manual_seed(8);
  const auto ring = [](int64_t n) {
    const at::Tensor angle = at::randint(0, 8, {n}, at::kLong).to(at::kDouble) * (M_PI / 4);
    return 2.0 * at::stack({angle.cos(), angle.sin()}, 1) + 0.05 * at::randn({n, 2}, at::kDouble);
  };
  const at::Tensor w = at::full({500}, 1.0 / 500, at::kDouble);
  const at::Tensor rx = ring(500), ry = ring(500);
  const auto [bx, ba] = blobs(8, 100, 16, 1.0, 0.03, 1);
  const auto [by, bb] = blobs(8, 100, 16, 0.9, 0.03, 2);
  struct Case {
    const char* name;
    at::Tensor x, a, y, b;
    double blur, tolerance;
    Backend backend;
  };
  for (const Case& c : {Case{"ring", rx, w, ry, w, 0.1, 1e-3, Backend::tensorized},
                        Case{"blobs16", bx, ba, by, bb, 0.5, 1e-4, Backend::online}}) {
    const LoopOutcome tight = loop_solve(c.x, c.a, c.y, c.b, c.blur, 1e-9, true, c.backend);
    ASSERT_TRUE(tight.report.converged) << c.name;
    const LoopOutcome corrected = loop_solve(c.x, c.a, c.y, c.b, c.blur, c.tolerance, true, c.backend);
    const LoopOutcome plain = loop_solve(c.x, c.a, c.y, c.b, c.blur, c.tolerance, false, c.backend);
    EXPECT_TRUE(corrected.report.converged) << c.name;
    EXPECT_GT(corrected.report.coarse_corrections, 0) << c.name;
    EXPECT_EQ(plain.report.coarse_corrections, 0) << c.name;
    EXPECT_NEAR(corrected.value, tight.value, 10 * c.tolerance * std::abs(tight.value)) << c.name;
    EXPECT_GT(plain.report.iterations, 3 * corrected.report.iterations) << c.name;
  }
}

// A solve that converges fast never pays for clusters (no corrected sweep, the same sweeps and
// value); a slow one on uniform clouds (whose slowest modes are smooth too) takes no more sweeps.
TEST(ClusterCorrection, TheLoopLeavesAFastSolveAloneAndNeverSlowsAUniformOne) {
  at::manual_seed(4);
  const at::Tensor x = at::rand({400, 3}, at::kDouble), y = at::rand({400, 3}, at::kDouble);
  const at::Tensor w = at::full({400}, 1.0 / 400, at::kDouble);
  const LoopOutcome fast = loop_solve(x, w, y, w, 0.5, 1e-3, true, Backend::tensorized);
  const LoopOutcome fast_plain = loop_solve(x, w, y, w, 0.5, 1e-3, false, Backend::tensorized);
  EXPECT_EQ(fast.report.coarse_corrections, 0);
  EXPECT_EQ(fast.report.iterations, fast_plain.report.iterations);
  EXPECT_EQ(fast.value, fast_plain.value);
  const LoopOutcome slow = loop_solve(x, w, y, w, 0.05, 1e-4, true, Backend::tensorized);
  const LoopOutcome slow_plain = loop_solve(x, w, y, w, 0.05, 1e-4, false, Backend::tensorized);
  const LoopOutcome tight = loop_solve(x, w, y, w, 0.05, 1e-9, false, Backend::tensorized);
  EXPECT_TRUE(slow.report.converged);
  EXPECT_LE(slow.report.iterations, slow_plain.report.iterations);
  EXPECT_NEAR(slow.value, tight.value, 1e-3 * std::abs(tight.value));
}

}  // namespace
}  // namespace sinkhorn
