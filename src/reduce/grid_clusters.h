// Clusters of a point cloud on a regular grid: the multiscale backend's coarse clouds and the
// blocks of its kernel truncation (Schmitzer 2019, "Stabilized sparse scaling algorithms for
// entropy regularized transport problems", sections 4.4 and 4.5; GeomLoss's grid_cluster).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace sinkhorn::reduce {

/// One cloud's points grouped by grid cell, cells in lexicographic order of their coordinates.
struct GridClusters {
  /// order[k] is the original index of the k-th point in cluster order (N).
  std::vector<int64_t> order;
  /// Cluster c holds the points order[starts[c]] .. order[starts[c + 1] - 1] (clusters + 1 entries).
  std::vector<int64_t> starts;
  /// (clusters, D) float64: the weighted centroid of each cluster (its plain mean when its weight is 0).
  at::Tensor centres;
  /// (clusters) float64: the total weight of each cluster.
  at::Tensor weights;
  /// Largest distance from a cluster's centre to one of its points (clusters entries).
  std::vector<double> radii;
  /// (clusters, D) row-major: per axis, the smallest (<= 0) and largest (>= 0) offset x_i - centre
  /// of a cluster's points. The box they span holds the points far more tightly than the ball of
  /// radius radii[c] when a cluster has few points (the truncation bound's slack, multiscale_reducer.h).
  std::vector<double> low_offsets, high_offsets;

  int64_t size() const { return static_cast<int64_t>(starts.size()) - 1; }
};

/// Groups `points` (N, D), weighted by `weights` (N), by the cells of side `cell` of a grid
/// anchored at the points' minimum corner. Throws sinkhorn::Error when the grid would have more
/// than 2^62 cells (far too many dimensions for a grid).
GridClusters cluster_on_grid(const at::Tensor& points, const at::Tensor& weights, double cell);

}  // namespace sinkhorn::reduce
