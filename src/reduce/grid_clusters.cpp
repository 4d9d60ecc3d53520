#include "reduce/grid_clusters.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/check.h"

namespace sinkhorn::reduce {

GridClusters cluster_on_grid(const at::Tensor& points, const at::Tensor& weights, double cell) {
  SINKHORN_INTERNAL_CHECK(points.dim() == 2 && weights.dim() == 1 && weights.size(0) == points.size(0),
                 "cluster_on_grid: points (N, D) and weights (N) expected");
  SINKHORN_CHECK_ARG(cell > 0 && std::isfinite(cell), "cluster_scale", "must be positive and finite, got " << cell);
  // On the CPU whatever the input's device: the grid is built by host loops.
  const at::Tensor x = points.detach().to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor w = weights.detach().to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  const double* px = x.data_ptr<double>();
  const double* pw = w.data_ptr<double>();

  // Cell coordinates and their extent per axis; the key is the cell's lexicographic index.
  std::vector<double> lowest(static_cast<size_t>(d), INFINITY);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) lowest[k] = std::min(lowest[k], px[i * d + k]);
  }
  std::vector<int64_t> coordinates(static_cast<size_t>(n * d));
  std::vector<int64_t> extent(static_cast<size_t>(d), 1);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      const int64_t c = static_cast<int64_t>(std::floor((px[i * d + k] - lowest[k]) / cell));
      coordinates[i * d + k] = c;
      extent[k] = std::max(extent[k], c + 1);
    }
  }
  double cells = 1.0;
  for (int64_t k = 0; k < d; ++k) cells *= static_cast<double>(extent[k]);
  SINKHORN_CHECK_ARG(cells < 4.6e18, "cluster_scale",
                     "makes a grid of " << cells << " cells over these " << d
                          << "-dimensional points; the multiscale backend is meant for low dimensions");
  std::vector<int64_t> keys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t key = 0;
    for (int64_t k = 0; k < d; ++k) key = key * extent[k] + coordinates[i * d + k];
    keys[i] = key;
  }

  GridClusters clusters;
  clusters.order.resize(static_cast<size_t>(n));
  std::iota(clusters.order.begin(), clusters.order.end(), int64_t{0});
  std::stable_sort(clusters.order.begin(), clusters.order.end(),
                   [&](int64_t i, int64_t j) { return keys[i] < keys[j]; });
  for (int64_t k = 0; k < n; ++k) {
    if (k == 0 || keys[clusters.order[k]] != keys[clusters.order[k - 1]]) clusters.starts.push_back(k);
  }
  clusters.starts.push_back(n);

  const int64_t count = clusters.size();
  clusters.centres = at::zeros({count, d}, x.options());
  clusters.weights = at::zeros({count}, x.options());
  clusters.radii.assign(static_cast<size_t>(count), 0.0);
  clusters.low_offsets.assign(static_cast<size_t>(count * d), 0.0);
  clusters.high_offsets.assign(static_cast<size_t>(count * d), 0.0);
  double* centres = clusters.centres.data_ptr<double>();
  double* cluster_weights = clusters.weights.data_ptr<double>();
  for (int64_t c = 0; c < count; ++c) {
    const int64_t begin = clusters.starts[c], end = clusters.starts[c + 1];
    double total = 0.0;
    for (int64_t k = begin; k < end; ++k) total += pw[clusters.order[k]];
    for (int64_t k = begin; k < end; ++k) {
      const int64_t i = clusters.order[k];
      // Weighted centroid; the plain mean when the cluster carries no weight.
      const double share = total > 0 ? pw[i] / total : 1.0 / static_cast<double>(end - begin);
      for (int64_t a = 0; a < d; ++a) centres[c * d + a] += share * px[i * d + a];
    }
    cluster_weights[c] = total;
    double radius = 0.0;
    double* low = clusters.low_offsets.data() + c * d;
    double* high = clusters.high_offsets.data() + c * d;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t i = clusters.order[k];
      double squared = 0.0;
      for (int64_t a = 0; a < d; ++a) {
        const double diff = px[i * d + a] - centres[c * d + a];
        squared += diff * diff;
        low[a] = std::min(low[a], diff);
        high[a] = std::max(high[a], diff);
      }
      radius = std::max(radius, std::sqrt(squared));
    }
    // A hair outside the points: the float32 copies the kernels see round them.
    clusters.radii[c] = radius * (1 + 1e-6) + 1e-12;
    for (int64_t a = 0; a < d; ++a) {
      low[a] = low[a] * (1 + 1e-6) - 1e-12;
      high[a] = high[a] * (1 + 1e-6) + 1e-12;
    }
  }
  return clusters;
}

}  // namespace sinkhorn::reduce
