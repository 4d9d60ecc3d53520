// eps-scaling (annealing): Sinkhorn converges in O(diameter^p / eps) iterations from a cold start,
// but a handful per scale when each eps starts from the potentials of the previous, larger one
// (Kosowsky-Yuille; Schmitzer 2019; Feydy 2020, section 3.3).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace sinkhorn::solver {

/// The most annealing steps a schedule may take (10,000 at scaling 0.5 span a ratio of 2^10000):
/// a longer one means a scaling too close to 1, refused rather than run for hours.
constexpr double kLongestEpsilonSchedule = 10000;

/// eps_k = (diameter * scaling^k)^p for every k with diameter * scaling^k > blur, then blur^p.
/// A blur at or above the diameter gives the single value blur^p. Throws sinkhorn::Error naming
/// scaling when the schedule would be longer than kLongestEpsilonSchedule.
std::vector<double> epsilon_schedule(int p, double diameter, double blur, double scaling);

/// The coordinate-wise bounds of a cloud over all its points and batch entries, in doubles on the
/// host: one pass over the points (min and max are exact in any dtype), which also tells whether
/// every coordinate is finite (NaN and infinities reach the bounds).
struct BoundingBox {
  std::vector<double> lower, upper;  ///< (D)
  /// The box of a cloud (B, N, D) or (N, D).
  static BoundingBox of(const at::Tensor& points);
  /// The smallest box holding both.
  BoundingBox merged(const BoundingBox& other) const;
  /// False when some coordinate of the cloud is NaN or infinite.
  bool finite() const;
  /// Length of the diagonal, the largest distance between two points up to a factor sqrt(D);
  /// computed relative to the widest side, so coordinates near 1e154 (or float32's 3e38) do not
  /// overflow its square. 0 for a single point.
  double diagonal() const;
};

}  // namespace sinkhorn::solver
