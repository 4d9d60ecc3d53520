// Corrections of OT(a, b)'s potentials on clusters of points: the cure for Sinkhorn's slowest
// modes on clustered clouds, in any dimension.
//
// When both clouds lie in well-separated clusters (a mixture's modes) with slightly unequal
// masses, the plan must move the surplus between clusters through kernel values of e^-100 and
// less (8 Gaussian blobs in 64-D at blur 0.5: e^-230). The slowest singular vectors of the
// normalised plan are then nearly constant on clusters, and Sinkhorn crawls for hundreds or
// thousands of sweeps (that mixture, 5,000 points: 1,113 sweeps, stopped unconverged).
//
// A corrected sweep is an alternating sweep whose two halves each take the best cluster-constant
// shift as well. Its row half, from g: with S_iL = sum_{j in L} b_j exp((g_j - C_ij) / eps) for the
// target clusters L (one pass over the pairs, segmented by cluster), shifting g by eps v_L on
// cluster L and taking the exact row update f_i = -eps log sum_L e^{v_L} S_iL leaves the
// entropic dual equal to the semi-dual
//   Psi(v) = sum_L B_L v_L - sum_i a_i log sum_L e^{v_L} S_iL,   B_L = sum_{j in L} b_j,
// up to a constant: concave in v, the semi-discrete dual of transport from the points of a to the
// clusters of b. Its maximiser makes every cluster's column mass exact; v = 0 is the plain
// Sinkhorn half-sweep, so the corrected half can only raise the dual further (exact block-coordinate
// ascent over g's cluster-constant shifts and f). The column half does the same from the new f
// with source clusters K (T_jK, A_K, u). Unlike a shift of both potentials on clusters (a two-grid
// aggregation step, which leaves rows wrong where few boundary points carry the crossing mass: 40
// sweeps against 12 on a 2,000-point 64-D mixture in a float64 prototype), each half keeps its
// rows exact per point: the mixture above converges in 21 sweeps (docs/numerics.md, "Corrected
// sweeps on clusters"; docs/benchmarks.md).
//
// Numeric contract: S_iL and T_jK come from the loop's reducer kind on each cluster's points (its
// max-shifted log-sum-exp in the clouds' dtype: exact to rounding whatever the gaps between
// clusters) and are kept as logarithms in float64. Psi is maximised in float64 by Newton's method
// with a backtracking (Armijo) line search. Its Hessian is a graph Laplacian with edge weights
// W_LL' = sum_i a_i pi_iL pi_iL' (pi_i the softmax of v + log S_i over L): sums of positive terms,
// exact to rounding even where the crossings are e^-200 below the rest; the Newton systems are
// solved by Grassmann-Taksar-Heyman elimination, whose pivots are sums of the remaining edges,
// never differences, so the tiny weights that carry the crossing mass keep their relative
// accuracy. A cluster that no edge reaches (its weights underflowed) moves by kDisconnectedStep
// towards its mass and the line search takes what raises Psi. Where Newton fails (a non-finite
// value), v = 0: the plain half-sweep.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "reduce/reducer.h"
#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// Clusters wanted on the union of the two clouds of a batch entry (Lloyd's k-means).
inline constexpr int64_t kCorrectionClusters = 16;
/// Lloyd steps from the farthest-point seeds (deterministic: the first seed is point 0).
inline constexpr int kLloydSteps = 8;
/// At most this many Newton steps per semi-dual.
inline constexpr int kSemiDualNewtonSteps = 50;
/// Newton stops once the clusters' relative L1 mass error is under this (far below the fine
/// loop's tolerances; rounding in sums of 10^4 terms floors it near 1e-12).
inline constexpr double kSemiDualTolerance = 1e-9;
/// The step (in units of eps) towards its mass of a cluster that no edge of the Hessian reaches:
/// its couplings underflowed, so they lie beyond e^-745 (float64's smallest).
inline constexpr double kDisconnectedStep = 745.0;

/// Up to this many pairs (the clusters' padding included) and this many numbers in the rows
/// repeated per cluster, a segmented pass is one batched softmin over stored cost matrices (two
/// per batch entry, for batches of at most kBatchedSegmentEntries: the tensorized reducer keeps
/// four); beyond, one streaming softmin per cluster.
inline constexpr int64_t kBatchedSegmentPairs = int64_t{1} << 22;
inline constexpr int64_t kBatchedSegmentEntries = 2;
/// Lloyd's steps run on at most this many points of the union (every k-th); every point then
/// takes its nearest centre, in the clouds' dtype.
inline constexpr int64_t kLloydSample = 16384;

/// One cloud's points by cluster, as the other cloud's points (the rows) see them in a segmented
/// pass: per nonempty cluster, its points (1, n_k, D) and their indices (long, on the clouds'
/// device); for small problems also the batched layout of one softmin.
struct ClusterSegments {
  std::vector<int64_t> ids;  ///< the nonempty clusters
  std::vector<at::Tensor> points, index;
  /// Batched layout (undefined beyond kBatchedSegmentPairs): the rows repeated per cluster
  /// (L, R, D), the clusters' points padded (L, largest, D), their indices (L * largest) and the
  /// padding (L, largest).
  at::Tensor rows, padded_points, padded_index, padding;
};

/// One batch entry's clusters: labels on the union of its clouds, the points sorted by cluster.
struct EntryClusters {
  std::vector<int64_t> source_labels;  ///< cluster of each point of a (N), in [0, clusters)
  std::vector<int64_t> target_labels;  ///< cluster of each point of b (M)
  int64_t clusters = 0;
  ClusterSegments target_segments;  ///< b's clusters, for a's rows (the row half)
  ClusterSegments source_segments;  ///< a's clusters, for b's rows (the column half)
  /// The clusters' masses A_K and B_L (float64, B scaled to A's total).
  std::vector<double> source_mass, target_mass;
};

/// Groups the union of x (N, D) and y (M, D) into up to `clusters` clusters by kLloydSteps of
/// Lloyd's algorithm from farthest-point seeds; returns each point's cluster, x's first. Empty
/// clusters are dropped (labels are dense). Deterministic.
std::vector<int64_t> lloyd_clusters(const at::Tensor& x, const at::Tensor& y, int64_t clusters);

/// Maximises Psi(v) = sum_L mass_L v_L - sum_i weights_i log sum_L exp(v_L + log_sums_iL) over v
/// (float64; log_sums (N, L) float64 on the CPU, -inf where a point sees nothing of a cluster;
/// clusters of zero mass keep v_L = 0). Returns v, or nothing when it cannot be trusted (a
/// non-finite value). `error`, when given, receives the clusters' relative L1 mass error at v.
std::optional<std::vector<double>> maximise_semi_dual(const at::Tensor& log_sums, const at::Tensor& weights,
                                                      const std::vector<double>& mass, double* error = nullptr);

/// Solves Laplacian(W) x = rhs with x[ground] = 0 by Grassmann-Taksar-Heyman elimination: W (n x n,
/// row-major) symmetric with nonnegative entries (its diagonal ignored), rhs summing to zero. A
/// node no edge joins to the ground's side gets x = kDisconnectedStep * sign of its accumulated rhs.
std::vector<double> solve_laplacian(std::vector<double> weights, std::vector<double> rhs, int64_t ground);

/// What the corrected sweeps did, over the batch.
struct CorrectionReport {
  /// The largest relative L1 mass error of the clusters after either half's Newton solve.
  double cluster_error = 0.0;
  /// Halves whose semi-dual could not be trusted (they took the plain update instead).
  int plain_halves = 0;
};

/// The corrected sweeps of OT(a, b) for one solve: its clusters, made once, and a reducer of the
/// loop's kind for each cluster's points.
class ClusterCorrection {
 public:
  /// Nothing where the correction does not apply: a batch entry whose union of clouds forms a
  /// single cluster, or fewer than 2 points on either side.
  /// `loop_reducer` is the loop's: its kind runs the per-cluster sums (the batched layout where it
  /// stores matrices); with `shards`, each rank sums its own rows and the ranks gather them.
  static std::unique_ptr<ClusterCorrection> make(const Cloud& a, const Cloud& b, int p,
                                                 const reduce::Reducer& loop_reducer,
                                                 const std::optional<LoopSettings::RowShards>& shards = std::nullopt);

  /// The segmented row pass from `g` (B, M) at `eps`: returns softmin_eps(C, log b + g / eps) (B, N)
  /// in g's dtype, which the loop measures, and keeps the per-cluster sums for finish_sweep.
  at::Tensor row_pass(const at::Tensor& g, double eps);

  /// Completes a corrected sweep of `potentials` (OT(a, b), balanced) after row_pass at the same
  /// eps: the corrected row half, then the segmented column pass and the corrected column half.
  CorrectionReport finish_sweep(PotentialPair& potentials, double eps);

  /// The share of OT(a, b)'s row error that lies on a's clusters, sum_K |sum_{i in K} r_i| /
  /// sum_i |r_i| with r_i = a_i (exp((f_i - s_i) / eps) - 1) the rows' excess (s the softmin of g):
  /// near 1 when the slow modes are the clusters' (what a corrected sweep removes), the smallest
  /// over the batch entries with an error.
  double clustered_share(const at::Tensor& f, const at::Tensor& softmin, double eps) const;

  /// A number that differs between two ClusterCorrections of the same clouds whose clusters
  /// differ (exact in float64): what a sharded solve's ranks compare before they correct.
  double labels_checksum() const;

  /// Multiply-adds of one sweep's two Newton solves, for the loop's cost model (a guess of
  /// kSemiDualCostSteps steps each).
  double newton_work() const;

  const std::vector<EntryClusters>& entries() const { return entries_; }

 private:
  ClusterCorrection(const Cloud& a, const Cloud& b, std::vector<EntryClusters> entries,
                    std::unique_ptr<reduce::Reducer> reducer);
  // log S (N, L) of one entry (float64, CPU): per target cluster, log sum_{j in L} exp(h_j - C_ij / eps).
  at::Tensor segmented_log_sums(const at::Tensor& rows, const ClusterSegments& segments, const at::Tensor& h,
                                double eps, int64_t clusters, bool source_rows) const;

  const Cloud& a_;
  const Cloud& b_;
  std::vector<EntryClusters> entries_;
  std::unique_ptr<reduce::Reducer> reducer_;          // per cluster: the loop's kind
  std::unique_ptr<reduce::Reducer> batched_reducer_;  // the batched layouts: stored matrices
  std::optional<LoopSettings::RowShards> shards_;
  std::vector<at::Tensor> row_log_sums_;  // per entry, from the last row_pass
  double row_eps_ = 0.0;
};

}  // namespace sinkhorn::solver
