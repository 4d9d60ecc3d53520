// The multiscale CPU backend's reductions: the online kernels restricted, by kernel truncation,
// to the blocks of nearby clusters where the softmax weights are not negligible (Schmitzer 2019,
// section 4.4; GeomLoss's multiscale backend). The coarse-to-fine start that makes truncation
// pay at large eps is the solver's (solver/multiscale.h).
//
// Truncation rule, with a bound instead of GeomLoss's heuristic: points are grouped on a grid
// (grid_clusters.h); for a row cluster I (centre c, radius r) and the current h, every row x_i of I
// satisfies, for p = 2,
//   log softmax_j(h - C(x_i, .)/eps) <= h_j - C(c, y_j)/eps - s(c) + |t(c) - y_j| r / eps,
// where s(x) = log sum_j exp(h_j - C(x, y_j)/eps) and t(x) = its softmax barycentre of y: s + |x|^2/(2 eps)
// is a log-sum-exp of affine functions of x, hence convex, and lies above its tangent at c
// (for p = 1 both terms are 1/eps-Lipschitz in x: slack 2 r / eps). The kernel bound_rows sums
// this bound over each tile J of 16 columns (the columns sorted by grid cell, so a tile is a few
// neighbouring cells); blocks are dropped smallest first while the dropped
// mass stays under kBuildMass. A later h' with spread max(h' - h) - min(h' - h) <= kDrift
// multiplies that mass by at most e^kDrift (s grows by at least min(h' - h)); past that, or at a
// new eps, the blocks are recomputed. So every reduction ignores at most kTruncatedMass of each
// row's softmax weight: softmin is exact to eps * kTruncatedMass, the weighted means to that
// fraction of their spread.
#pragma once

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// Largest softmax mass of a row that a truncated reduction may ignore.
inline constexpr double kTruncatedMass = 1e-7;

/// The multiscale backend's reducer: column clusters of side `cell`, row clusters of side
/// `row_cell` (0: `cell`; solver/multiscale.h, refined_row_scale) (CPU tensors, float32 or
/// float64, any batch). Not differentiable: envelope gradients only.
std::unique_ptr<Reducer> make_multiscale_cpu_reducer(int p, double cell, double row_cell = 0);

}  // namespace sinkhorn::reduce
