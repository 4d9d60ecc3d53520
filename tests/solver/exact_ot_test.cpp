// Exact OT by network simplex against hand-checkable oracles (assignments by brute force, 1-D
// sorting), its dual certificate, its gradients, and the Sinkhorn losses converging to it.
#include "solver/exact_ot.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <numeric>

#include "reduce/cost_matrix.h"
#include "sinkhorn/divergence.h"
#include "sinkhorn/error.h"
#include "test_support.h"

namespace sinkhorn {
namespace {

SinkhornOptions exact(int p = 2) {
  SinkhornOptions options;
  options.loss = Loss::ot;
  options.p = p;
  return options;
}

// Uniform weights, N = M: OT is the best assignment (Birkhoff), found here over all N! permutations.
double best_assignment(const at::Tensor& cost) {
  const int64_t n = cost.size(0);
  std::vector<int64_t> permutation(n);
  std::iota(permutation.begin(), permutation.end(), 0);
  double best = INFINITY;
  do {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += cost[i][permutation[i]].item<double>();
    best = std::min(best, total / static_cast<double>(n));
  } while (std::next_permutation(permutation.begin(), permutation.end()));
  return best;
}

TEST(ExactOt, UniformCloudsGiveTheBestAssignment) {
  at::manual_seed(5);
  for (const int p : {1, 2}) {
    const at::Tensor x = at::randn({7, 3}, at::kDouble), y = at::randn({7, 3}, at::kDouble);
    const at::Tensor cost = reduce::cost_matrix(x.unsqueeze(0), y.unsqueeze(0), p).squeeze(0);
    EXPECT_NEAR(divergence(x, y, exact(p)).item<double>(), best_assignment(cost), 1e-12) << "p = " << p;
    // A permuted copy of a cloud is at distance 0.
    EXPECT_NEAR(divergence(x, x.index_select(0, at::randperm(7, at::kLong)), exact(p)).item<double>(), 0.0, 1e-14);
  }
}

TEST(ExactOt, OneDimensionalCloudsGiveTheSortedMatching) {
  at::manual_seed(6);
  for (const int p : {1, 2}) {
    const at::Tensor x = at::randn({300, 1}, at::kDouble), y = 2 * at::rand({300, 1}, at::kDouble);
    std::vector<double> xs(x.data_ptr<double>(), x.data_ptr<double>() + 300);
    std::vector<double> ys(y.data_ptr<double>(), y.data_ptr<double>() + 300);
    EXPECT_NEAR(divergence(x, y, exact(p)).item<double>(), testing::sorted_ot_1d(xs, ys, p), 1e-12) << "p = " << p;
  }
}

TEST(ExactOt, PlanAndPotentialsCertifyOptimality) {
  at::manual_seed(7);
  const at::Tensor x = at::randn({40, 2}, at::kDouble), y = at::randn({55, 2}, at::kDouble) + 1;
  const at::Tensor a = testing::random_weights(40), b = testing::random_weights(55);
  const at::Tensor cost = reduce::cost_matrix(x.unsqueeze(0), y.unsqueeze(0), 2).squeeze(0);
  const solver::ExactTransport t = solver::exact_transport(cost, a, b);
  EXPECT_LT((t.plan.sum(1) - a).abs().max().item<double>(), 1e-14);
  EXPECT_LT((t.plan.sum(0) - b).abs().max().item<double>(), 1e-14);
  EXPECT_GE(t.plan.min().item<double>(), 0.0);
  // Dual feasibility f_i + g_j <= C_ij, and complementary slackness on the plan's support.
  const at::Tensor slack = cost - t.f.unsqueeze(1) - t.g.unsqueeze(0);
  EXPECT_GT(slack.min().item<double>(), -1e-12);
  EXPECT_LT((slack * (t.plan > 0)).abs().max().item<double>(), 1e-12);
  // Strong duality: primal = dual = reported cost; a basic plan has at most N + M - 1 entries.
  EXPECT_NEAR((t.plan * cost).sum().item<double>(), t.cost, 1e-12);
  EXPECT_NEAR((a * t.f).sum().item<double>() + (b * t.g).sum().item<double>(), t.cost, 1e-12);
  EXPECT_LE((t.plan > 0).sum().item<int64_t>(), 40 + 55 - 1);
}

TEST(ExactOt, GradientsMatchFiniteDifferences) {
  at::manual_seed(8);
  const at::Tensor x = at::randn({12, 2}, at::kDouble), y = at::randn({15, 2}, at::kDouble);
  const at::Tensor a = testing::random_weights(12), b = testing::random_weights(15);
  const at::Tensor xg = x.clone().requires_grad_(true), ag = a.clone().requires_grad_(true);
  torch::autograd::backward({divergence(ag, xg, b, y, exact())});
  // Generic points: the optimal plan is unique and locally constant, OT is smooth in x and linear in a.
  const at::Tensor direction = at::randn({12, 2}, at::kDouble);
  const double fd = testing::directional_difference(
      [&](const at::Tensor& t) { return divergence(a, t, b, y, exact()).item<double>(); }, x, direction, 1e-6);
  EXPECT_NEAR((xg.grad() * direction).sum().item<double>(), fd, 1e-7);
  at::Tensor delta = at::randn({12}, at::kDouble);
  delta -= delta.mean();  // stay on the simplex: only zero-sum directions are defined
  const double fd_a = testing::directional_difference(
      [&](const at::Tensor& t) { return divergence(t, x, b, y, exact()).item<double>(); }, a, delta, 1e-7);
  EXPECT_NEAR((ag.grad() * delta).sum().item<double>(), fd_a, 1e-6);
}

TEST(ExactOt, SinkhornLossesApproachItAsBlurShrinks) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({60, 2}, at::kDouble), y = at::randn({70, 2}, at::kDouble) * 0.5 + 1;
  const double ot = divergence(x, y, exact()).item<double>();
  double previous_gap = INFINITY;
  for (const double blur : {0.3, 0.1, 0.03}) {
    SinkhornOptions options;
    options.blur = blur;
    options.tolerance = 1e-6;
    const double gap = std::abs(divergence(x, y, options).item<double>() - ot);
    EXPECT_LT(gap, previous_gap) << "blur " << blur;
    previous_gap = gap;
  }
  EXPECT_LT(previous_gap / ot, 0.01);
}

TEST(ExactOt, BadInputIsRefusedWithAClearMessage) {
  const at::Tensor x = at::randn({5, 2}, at::kDouble), y = at::randn({6, 2}, at::kDouble);
  SinkhornOptions unbalanced = exact();
  unbalanced.reach = 1.0;
  EXPECT_THROW(divergence(x, y, unbalanced), Error);
  EXPECT_THROW(divergence(at::full({5}, 0.2, at::kDouble), x, at::full({6}, 0.5, at::kDouble), y, exact()), Error);
  EXPECT_EQ(parse_loss("ot"), Loss::ot);
  try {
    divergence(at::zeros({6000, 1}), at::zeros({6000, 1}), exact());
    FAIL() << "a 6000 x 6000 exact problem should be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("loss ot"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace sinkhorn
