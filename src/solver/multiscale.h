// The multiscale backend's coarse-to-fine start (Schmitzer 2019, section 4.2; GeomLoss's
// multiscale backend): at large eps the plans are wide, truncation keeps almost every block and a
// fine reduction costs N M; solved on grid clusters instead, those eps cost K^2 for K clusters.
#pragma once

#include <cstdint>
#include <vector>

#include "solver/sinkhorn_loop.h"

namespace sinkhorn::solver {

/// The eps of `settings.epsilons` above the final one and at least (cell / 4)^p are solved on the
/// grid clusters of a and b (weighted centroids, summed weights; grid_clusters.h) to a marginal
/// error of 1e-3; the potentials are then extrapolated to the points by one softmin at the last
/// coarse eps, f(x_i) = lambda softmin(C(x_i, Y), log beta + G / eps) and likewise for g and the
/// symmetric problems. Returns the eps left for the fine loop (LoopSettings::warm_start) and
/// adds the coarse sweeps to `coarse_sweeps`; returns settings.epsilons unchanged, `state`
/// untouched, when no eps is coarse enough.
/// The grid cell when the user sets none: max(2 blur, diameter / (sqrt(D) (2 N)^(1/D))) for N
/// points per cloud. Clusters of a couple of blurs keep the truncation bounds tight (their slack
/// grows with the cluster radius over eps); the second term keeps a few points per cluster so
/// that recomputing the blocks (one pass over clusters x points) stays cheaper than the sweeps.
/// Measured at N = 20,000 and 100,000 in docs/benchmarks.md.
double default_cluster_scale(double diameter, double blur, int64_t dimension, int64_t points);

std::vector<double> coarse_to_fine_start(const Cloud& a, const Cloud& b, const LoopSettings& settings, int p,
                                         double cell, DualState& state, int& coarse_sweeps);

}  // namespace sinkhorn::solver
