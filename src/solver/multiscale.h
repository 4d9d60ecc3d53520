// The multiscale backend's coarse-to-fine start (Schmitzer 2019, section 4.2; GeomLoss's
// multiscale backend): at large eps the plans are wide, truncation keeps almost every block and a
// fine reduction costs N M; solved on grid clusters instead, those eps cost K^2 for K clusters.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// The grid cell when the user sets none: max(2 blur, diameter / (sqrt(D) (2 N)^(1/D))) for N
/// points per cloud. Clusters of a couple of blurs keep the truncation bounds tight (their slack
/// grows with the cluster radius over eps); the second term keeps a few points per cluster so
/// that recomputing the blocks (one pass over clusters x points) stays cheaper than the sweeps.
/// Measured at N = 20,000 and 100,000 in docs/benchmarks.md.
double default_cluster_scale(double diameter, double blur, int64_t dimension, int64_t points);

/// Points per cell, on average over the points (sum over cells of n_c^2 / N), that a halved cell
/// must still hold for refined_cluster_scale to halve it.
inline constexpr double kHalvedCellOccupancy = 64;

/// The default cell refined on the clouds x and y (B, N, D) themselves: halved while, in every
/// cloud and batch entry, the cells of half the side would still hold kHalvedCellOccupancy points
/// on average. default_cluster_scale sizes cells for points that fill their bounding box; points
/// on a surface fill few of those cells, crowded, and the truncation bound's slack (the cluster
/// radius over eps) then keeps many more pairs than smaller cells would. Measured at N = 100,000
/// (docs/benchmarks.md, "Large clouds"): on a torus, cells of 0.1 hold 387 points and visit 28% of
/// the pairs, halved (88 points) 21%; on the cube (101 points, 13 halved) and blobs (19, 3) the
/// halved cells were slower or would be, and on a torus of 30,000 points (26 halved) too.
double refined_cluster_scale(double cell, const at::Tensor& x, const at::Tensor& y);

/// Points per row cell, on average over the points, that a halved row cell must still hold.
inline constexpr double kHalvedRowCellOccupancy = 8;

/// The cell of the row clusters (the reductions' rows, whose cluster radius is the truncation
/// bound's slack; the columns are bounded one by one): `cell` halved once where, in every cloud and
/// batch entry, the halved cells would still hold kHalvedRowCellOccupancy points on average, so
/// that the kernels' row blocks stay several rows deep. Measured at N = 100,000
/// (docs/benchmarks.md, "Large clouds"): the cube's pairs visited 22% -> 17%, 22.2 -> 18.4 s; the
/// torus 21% -> 19%; the sphere the same time; the blobs (3 points per halved cell) keep theirs
/// (halved: 13% -> 10% of the pairs but 15.8 -> 27.8 s, the kernels' per-block costs).
double refined_row_scale(double cell, const at::Tensor& x, const at::Tensor& y);

/// What the coarse solve leaves for the fine loop.
struct CoarseStart {
  /// The eps left for the fine loop; all of settings.epsilons when none was coarse enough.
  std::vector<double> epsilons;
  /// Sweeps of the coarse solve.
  int sweeps = 0;
  /// For LoopSettings::alternating_plain_rate: set when the coarse solve ended OT(a, b) on
  /// alternating updates (LoopReport::alternating_plain_rate). The clustered clouds keep the fine
  /// ones' geometry, so the fine loop starts alternating too, and saves the averaged sweeps and
  /// the probe (15 sweeps at the final eps of a 5,000-point cube). The rate is the coarse plain
  /// rate carried to the final eps (fine_plain_rate). docs/benchmarks.md: 8-28% fewer sweeps on
  /// the 3-D clouds of 5,000 and 20,000 points, 7-27% at 100,000.
  std::optional<double> alternating_plain_rate;
};

/// fine_plain_rate carries a rate over at most this factor of eps (one eps-scaling step at the
/// default scaling 0.5 and p = 2): a larger jump (a user's large cluster_scale leaves a single
/// coarse eps far above the fine one) would extrapolate the rate towards 1, and so omega towards
/// its cap. An omega above the fine omega* converges at rate omega - 1 and the relaxation only
/// ever raises omega, so the hand-over must not overshoot by much.
inline constexpr double kSmallestCarriedEpsRatio = 0.25;

/// The plain contraction rate expected at fine_eps from coarse_rate, measured at coarse_eps > fine_eps:
/// 1 - rate proportional to eps (multiscale.cpp), over at most kSmallestCarriedEpsRatio. Unset
/// when coarse_rate is unset or outside (0, 1) (no information: the fine loop then chooses).
/// Measured early and on blurred clouds, the coarse rate is faster than the fine loop's asymptotic
/// one on the clouds measured (the cube of 5,000 points: 0.85 carried, ~0.95 asymptotic), so the
/// omega it gives sits below the fine omega*, where the relaxation raises it once measured.
std::optional<double> fine_plain_rate(std::optional<double> coarse_rate, double coarse_eps, double fine_eps);

/// The eps of `settings.epsilons` above the final one and at least (cell / 4)^p are solved on the
/// grid clusters of a and b (weighted centroids, summed weights; grid_clusters.h) to a marginal
/// error of 1e-3; the potentials are then extrapolated to the points by one softmin at the last
/// coarse eps, f(x_i) = lambda softmin(C(x_i, Y), log beta + G / eps) and likewise for g and the
/// symmetric problems. The fine loop then starts from `state` (LoopSettings::warm_start) at the
/// eps returned. Leaves `state` untouched and returns settings.epsilons when no eps is coarse
/// enough.
CoarseStart coarse_to_fine_start(const Cloud& a, const Cloud& b, const LoopSettings& settings, int p, double cell,
                                 DualState& state);

}  // namespace sinkhorn::solver
