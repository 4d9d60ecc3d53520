#include "solver/multiscale.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "reduce/grid_clusters.h"

namespace sinkhorn::solver {
namespace {

// Marginal error the coarse solve stops at: its potentials only seed the fine loop, whose first
// eps is a factor scaling^p smaller anyway.
constexpr double kCoarseTolerance = 1e-3;
constexpr int kCoarseIterations = 200;

// The coarse solve runs down to eps = (cell / kCoarseReach)^p: below the cell size the clusters
// blur the measures, but their potentials remain a far better start than the previous eps's,
// and every fine eps costs a recomputation of the kept blocks. Measured at N = 20,000 in 3-D
// (blur 0.05, cell 0.12): reach 1, 2, 4 took 7.7, 5.2 and 4.1 s; at N = 100,000, 69 s -> 47 s.
constexpr double kCoarseReach = 4.0;

// The cloud of cluster centroids and weights, one batch entry at a time, padded with weightless
// copies of the first centroid to the largest cluster count.
Cloud coarse_cloud(const Cloud& cloud, double cell) {
  const int64_t batch = cloud.points.size(0), d = cloud.points.size(2);
  std::vector<reduce::GridClusters> entries;
  int64_t largest = 0;
  for (int64_t k = 0; k < batch; ++k) {
    entries.push_back(reduce::cluster_on_grid(cloud.points[k], cloud.weights[k], cell));
    largest = std::max(largest, entries.back().size());
  }
  const at::TensorOptions options = cloud.points.options();
  at::Tensor points = at::empty({batch, largest, d}, options);
  at::Tensor weights = at::zeros({batch, largest}, cloud.weights.options());
  for (int64_t k = 0; k < batch; ++k) {
    const reduce::GridClusters& clusters = entries[k];
    const int64_t count = clusters.size();
    points[k].narrow(0, 0, count).copy_(clusters.centres);
    points[k].narrow(0, count, largest - count).copy_(clusters.centres[0].expand({largest - count, d}));
    weights[k].narrow(0, 0, count).copy_(clusters.weights);
  }
  return {points, weights, weights.log()};
}

// lambda softmin_eps(C(points, source), log w_source + potential / eps): a coarse potential
// evaluated at other points, the entropic c-transform's natural extension.
at::Tensor extend(const reduce::Reducer& reducer, const at::Tensor& points, const Cloud& source,
                  const at::Tensor& potential, double eps, double lambda) {
  return lambda * reducer.softmin(points, source.points, source.log_weights + potential / eps, eps);
}

}  // namespace

// Sinkhorn's iterations at eps are time steps of length eps of a parabolic Monge-Ampere flow
// (Berman 2020, "The Sinkhorn algorithm, parabolic optimal transport and geometric Monge-Ampere
// equations"), which converges exponentially in time: the error contracts by about exp(-c eps)
// per sweep, so 1 - rate scales with eps. On the 3-D clouds of bench/sweep_counts.py handing the
// coarse rate over unscaled cost 5% more sweeps (604 against 574 on the eight multiscale problems).
std::optional<double> fine_plain_rate(std::optional<double> coarse_rate, double coarse_eps, double fine_eps) {
  if (!coarse_rate || !(*coarse_rate > 0.0 && *coarse_rate < 1.0)) return std::nullopt;
  const double ratio = std::max(fine_eps / coarse_eps, kSmallestCarriedEpsRatio);
  return 1.0 - (1.0 - *coarse_rate) * ratio;
}

double default_cluster_scale(double diameter, double blur, int64_t dimension, int64_t points) {
  const double d = static_cast<double>(dimension);
  return std::max(2.0 * blur, diameter / (std::sqrt(d) * std::pow(2.0 * static_cast<double>(points), 1.0 / d)));
}

namespace {

// Points per cell of side `side`, on average over the points (sum over cells of n_c^2 / N).
double occupancy(const at::Tensor& points, double side) {
  const reduce::GridClusters clusters = reduce::cluster_on_grid(points, at::ones({points.size(0)}, points.options()), side);
  double squares = 0;
  for (int64_t c = 0; c < clusters.size(); ++c) {
    const double count = static_cast<double>(clusters.starts[c + 1] - clusters.starts[c]);
    squares += count * count;
  }
  return squares / static_cast<double>(std::max<int64_t>(1, points.size(0)));
}

// Whether every cloud and batch entry holds at least `least` points per cell of side `side`.
bool crowded_at(double side, const at::Tensor& x, const at::Tensor& y, double least) {
  for (const at::Tensor* cloud : {&x, &y}) {
    for (int64_t b = 0; b < cloud->size(0); ++b) {
      if (occupancy((*cloud)[b], side) < least) return false;
    }
  }
  return true;
}

}  // namespace

double refined_cluster_scale(double cell, const at::Tensor& x, const at::Tensor& y) {
  // A few halvings at most: each divides the slack by 2 and multiplies the clusters by up to 2^D.
  for (int halvings = 0; halvings < 3 && crowded_at(cell / 2, x, y, kHalvedCellOccupancy); ++halvings) cell /= 2;
  return cell;
}

double refined_row_scale(double cell, const at::Tensor& x, const at::Tensor& y) {
  return crowded_at(cell / 2, x, y, kHalvedRowCellOccupancy) ? cell / 2 : cell;
}

CoarseStart coarse_to_fine_start(const Cloud& a, const Cloud& b, const LoopSettings& settings, int p, double cell,
                                 DualState& state) {
  const std::vector<double>& epsilons = settings.epsilons;
  const double coarsest_fine = std::pow(cell / kCoarseReach, p);
  size_t coarse = 0;
  while (coarse + 1 < epsilons.size() && epsilons[coarse] >= coarsest_fine) ++coarse;
  if (coarse == 0 || settings.fixed_iterations) return {epsilons, 0, std::nullopt};

  const Cloud coarse_a = coarse_cloud(a, cell), coarse_b = coarse_cloud(b, cell);
  LoopSettings coarse_settings = settings;
  coarse_settings.epsilons.assign(epsilons.begin(), epsilons.begin() + static_cast<std::ptrdiff_t>(coarse));
  coarse_settings.tolerance = std::max(settings.tolerance, kCoarseTolerance);
  coarse_settings.max_iterations = kCoarseIterations;
  coarse_settings.warm_start = false;
  coarse_settings.alternating_plain_rate.reset();  // the coarse loop chooses its own scheme
  // A few thousand clusters: the plain online kernels, all pairs.
  const std::unique_ptr<reduce::Reducer> reducer =
      reduce::make_reducer(Backend::online, p, coarse_a.points, coarse_b.points);
  DualState coarse_state;
  const LoopReport coarse_report = sinkhorn_loop(*reducer, coarse_a, coarse_b, coarse_settings, coarse_state);

  const double eps = coarse_settings.epsilons.back();
  const double lambda = damping(eps, settings.rho);
  state.ab.f = extend(*reducer, a.points, coarse_b, coarse_state.ab.g, eps, lambda);
  state.ab.g = extend(*reducer, b.points, coarse_a, coarse_state.ab.f, eps, lambda);
  if (settings.solve_symmetric) {
    state.aa.f = state.aa.g = extend(*reducer, a.points, coarse_a, coarse_state.aa.f, eps, lambda);
    state.bb.f = state.bb.g = extend(*reducer, b.points, coarse_b, coarse_state.bb.f, eps, lambda);
  }
  return {{epsilons.begin() + static_cast<std::ptrdiff_t>(coarse), epsilons.end()},
          coarse_report.iterations,
          fine_plain_rate(coarse_report.alternating_plain_rate, eps, epsilons.back())};
}

}  // namespace sinkhorn::solver
