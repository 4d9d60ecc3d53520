#include "solver/exact_ot.h"

#include <ATen/ATen.h>
#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>

#include <cmath>
#include <vector>

#include "reduce/cost_matrix.h"
#include "util/check.h"

namespace sinkhorn::solver {
namespace {

// Masses as integers summing exactly to kTotalMass: the simplex moves whole units of flow.
constexpr int64_t kTotalMass = int64_t{1} << 50;

std::vector<int64_t> integer_masses(const at::Tensor& weights) {
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const double* p = w.data_ptr<double>();
  const int64_t n = w.numel();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += p[i];
  std::vector<int64_t> masses(static_cast<size_t>(n));
  int64_t total = 0, largest = 0;
  for (int64_t i = 0; i < n; ++i) {
    masses[i] = std::llround(p[i] / sum * static_cast<double>(kTotalMass));
    total += masses[i];
    if (masses[i] > masses[largest]) largest = i;
  }
  masses[largest] += kTotalMass - total;  // rounding leftovers, a few units, onto the largest mass
  return masses;
}

}  // namespace

ExactTransport exact_transport(const at::Tensor& cost, const at::Tensor& a, const at::Tensor& b) {
  const int64_t n = cost.size(0), m = cost.size(1);
  SINKHORN_INTERNAL_CHECK(a.numel() == n && b.numel() == m, "exact_transport: weights do not match the cost matrix");
  const std::vector<int64_t> supply_a = integer_masses(a), supply_b = integer_masses(b);
  const double mass = a.to(at::kDouble).sum().item<double>();

  lemon::SmartDigraph graph;
  graph.reserveNode(static_cast<int>(n + m));
  graph.reserveArc(static_cast<int>(n * m));
  std::vector<lemon::SmartDigraph::Node> sources, targets;
  for (int64_t i = 0; i < n; ++i) sources.push_back(graph.addNode());
  for (int64_t j = 0; j < m; ++j) targets.push_back(graph.addNode());
  lemon::SmartDigraph::ArcMap<double> arc_cost(graph);
  lemon::SmartDigraph::NodeMap<int64_t> supply(graph);
  const at::Tensor c = cost.to(at::kDouble).contiguous();
  const double* cp = c.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    supply[sources[i]] = supply_a[i];
    for (int64_t j = 0; j < m; ++j) arc_cost[graph.addArc(sources[i], targets[j])] = cp[i * m + j];
  }
  for (int64_t j = 0; j < m; ++j) supply[targets[j]] = -supply_b[j];

  lemon::NetworkSimplex<lemon::SmartDigraph, int64_t, double> simplex(graph);
  simplex.costMap(arc_cost).supplyMap(supply);
  const auto status = simplex.run();
  SINKHORN_INTERNAL_CHECK(status == decltype(simplex)::OPTIMAL, "exact_transport: the network simplex found no optimal plan");

  ExactTransport result;
  result.plan = at::zeros({n, m}, at::kDouble);
  result.f = at::empty({n}, at::kDouble);
  result.g = at::empty({m}, at::kDouble);
  double* plan = result.plan.data_ptr<double>();
  const double unit = mass / static_cast<double>(kTotalMass);
  for (lemon::SmartDigraph::ArcIt arc(graph); arc != lemon::INVALID; ++arc) {
    const int64_t flow = simplex.flow(arc);
    if (flow == 0) continue;
    const int64_t i = graph.id(graph.source(arc)), j = graph.id(graph.target(arc)) - n;
    plan[i * m + j] = static_cast<double>(flow) * unit;
  }
  // LEMON's potentials pi satisfy cost(uv) + pi(u) - pi(v) >= 0 on every arc u -> v, with
  // equality where flow runs: f_i = -pi(x_i), g_j = pi(y_j) is the dual pair of our convention.
  for (int64_t i = 0; i < n; ++i) result.f[i] = -simplex.potential(sources[i]);
  for (int64_t j = 0; j < m; ++j) result.g[j] = simplex.potential(targets[j]);
  result.cost = simplex.totalCost<double>() * unit;
  return result;
}

at::Tensor exact_ot_loss(const at::Tensor& a_in, const at::Tensor& x_in, const at::Tensor& b_in, const at::Tensor& y_in,
                         int p) {
  constexpr int64_t kLargestProblem = int64_t{25} << 20;  // pairs: a network simplex's practical limit
  const int64_t batch = x_in.size(0), n = x_in.size(1), m = y_in.size(1);
  SINKHORN_CHECK_ARG(n * m <= kLargestProblem, "loss",
                     "ot: " << n << " x " << m << " points is beyond the exact solver's practical size ("
                            << kLargestProblem << " pairs); use a Sinkhorn loss with a small blur");
  // Centred like the Sinkhorn path: the p = 2 cost expansion loses digits far from the origin.
  const at::Tensor centre = 0.5 * (x_in.detach().mean(1, true) + y_in.detach().mean(1, true));
  const at::Tensor x = (x_in - centre).to(at::kDouble), y = (y_in - centre).to(at::kDouble);
  const at::Tensor a = a_in.to(at::kDouble), b = b_in.to(at::kDouble);
  std::vector<at::Tensor> values;
  for (int64_t k = 0; k < batch; ++k) {
    const at::Tensor cost = reduce::cost_matrix(x[k].unsqueeze(0), y[k].unsqueeze(0), p).squeeze(0);
    const solver::ExactTransport transport = solver::exact_transport(cost.detach(), a[k].detach(), b[k].detach());
    values.push_back((transport.plan * cost).sum() + ((a[k] - a[k].detach()) * transport.f).sum() +
                     ((b[k] - b[k].detach()) * transport.g).sum());
  }
  return at::stack(values);
}

}  // namespace sinkhorn::solver
