// Two-grid correction of OT(a, b)'s potentials on clusters of points: the cure for Sinkhorn's
// slowest mode on clustered clouds.
//
// When both clouds lie in well-separated clusters (the modes of a toy mixture) with slightly
// unequal masses, the plan must move the surplus between clusters through kernel values of e^-100
// and less. The slowest singular vector of the normalised plan is then constant on clusters (mass
// moving between them) and Sinkhorn crawls for hundreds or thousands of sweeps (two samples of the
// ring of 8 Gaussians, 500 points, blur 0.1: 1,120 sweeps, and it stopped 1.3% below the value).
// That mode lives on the clusters, so it is cheap to solve there: restricted to potentials shifted
// by one constant per cluster,
//   f_i + eps u_K(i),  g_j + eps v_L(j),
// the entropic dual, concave in (u, v), is the dual of a K x L entropic transport problem between
// the clusters' masses A_K = sum_{i in K} a_i, B_L = sum_{j in L} b_j whose kernel is the current
// plan summed over cluster pairs, P_KL = sum_{i in K, j in L} a_i b_j exp((f_i + g_j - C_ij) / eps).
// Solving it is an exact block-coordinate ascent step of the dual (it can only raise it) that
// moves the inter-cluster mass at once; the fine sweeps then fix the rest (the aggregation
// two-grid scheme, here on the dual of entropic OT).
//
// Numeric contract: the entries that carry the slow mode are e^-100 and less below their row's
// largest, under float32's range. So each point i of a gets its own log-sum-exp over each target
// cluster L (one batched softmin in the clouds' dtype, max-shifted per (i, L): exact to rounding
// whatever the gaps between clusters), and the sums over i in K are taken in float64 in the log
// domain. The coarse problem is solved in float64 by Sinkhorn in the scaling domain (K L
// multiply-adds per half sweep), over-relaxed (Relaxation), to kCoarseTolerance, absorbing its
// scalings into the kernel whenever they leave [1e-100, 1e100]. One correction costs about one
// sweep of the fine problem plus the coarse solve (~0.25 ms at 500 points and 48 clusters).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "reduce/reducer.h"
#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// Coarse problems are solved until their relative L1 marginal error is under this.
inline constexpr double kCoarseTolerance = 1e-7;
/// At most this many coarse sweeps per correction.
inline constexpr int kCoarseSweepsAllowed = 5000;
/// Clusters per cloud wanted (the coarse problem is at most this squared).
inline constexpr int64_t kCoarseClusters = 48;
/// The correction visits every pair once, as a tensorized sweep does: only up to this many pairs
/// per batch entry (beyond, the multiscale backend's coarse-to-fine start plays that part), and
/// its padded batch of target clusters at most 4 times this.
inline constexpr int64_t kCoarsePairsAllowed = int64_t{1} << 20;

/// One batch entry's clusters: grid cells (reduce::cluster_on_grid) of one side chosen so that
/// neither cloud has more than kCoarseClusters, and what every correction reuses.
struct EntryPartition {
  std::vector<int64_t> source_labels;  ///< cluster of each point of a (N)
  std::vector<int64_t> target_labels;  ///< cluster of each point of b (M)
  int64_t source_clusters = 0;
  int64_t target_clusters = 0;
  /// (L, largest cluster) indices into b's points, a cluster per row, padded with index 0.
  at::Tensor target_index;
  /// (L, largest cluster): true on the padding.
  at::Tensor target_padding;
  /// a's points repeated per target cluster (L, N, D) and b's points by cluster (L, largest, D):
  /// one batched softmin gives every point of a its log-sum-exp over each target cluster.
  at::Tensor source_points, target_points;
  /// A tensorized reducer of their own: its cost matrix is built once per solve, and it never
  /// evicts the loop's own from the loop's reducer.
  std::shared_ptr<const reduce::Reducer> reducer;
};

/// The partition of every batch entry of OT(a, b), or nothing where the correction does not apply:
/// more than 3 dimensions (grid cells), more than kCoarsePairsAllowed pairs (or 4 times that once
/// padded), points not on the CPU, or an entry with a single cluster on either side.
std::optional<std::vector<EntryPartition>> coarse_partition(const Cloud& a, const Cloud& b, int p);

/// What one correction did, over the batch.
struct CoarseCorrectionReport {
  int coarse_sweeps = 0;  ///< the most any entry took
  /// The largest relative L1 error of the clusters' row marginals, before and after.
  double error_before = 0.0;
  double error_after = 0.0;
  /// False when nothing was changed: an entry whose coarse solve failed (a non-finite scaling, or
  /// no better than where it started) keeps its potentials, the others are corrected.
  bool applied = false;
};

/// Shifts `potentials` of OT(a, b) (balanced) by eps times the solution (u, v) of each batch
/// entry's coarse problem above.
CoarseCorrectionReport correct_on_clusters(const std::vector<EntryPartition>& partition, const Cloud& a,
                                           const Cloud& b, double eps, PotentialPair& potentials);

}  // namespace sinkhorn::solver
