// Row shifts for the one-pass softmin (OnlineProblem::row_shifts, DenseProblem::row_shifts): a
// solver reduces over the same pair of clouds every sweep at one eps, with h moving a little, so
// the previous softmin bounds the next one:
//   log sum_j exp(h'_j - C_ij / eps) <= log sum_j exp(h_j - C_ij / eps) + max_j (h'_j - h_j),
// and exceeds it by at most the spread max - min of h' - h. The kernels take the terms relative to
// that bound in one pass (no row max first) and redo in two passes any row whose sum shows the
// bound was far off, so any shift is safe; a useful one needs a small spread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace sinkhorn::reduce::cpu {

/// Largest spread of h' - h (in log-mass) for which the previous softmin still gives shifts: the
/// one-pass terms then sit within e^-30 of the row's largest (the kernels' fallback starts at a
/// sum of 2^-60).
inline constexpr double kShiftSpread = 30.0;

/// Writes shifts (batch, n) = the previous softmin's log-sum-exps (-previous / eps, (batch, n))
/// plus the largest increase of h over the `m` columns of each batch entry (rows `stride` apart in
/// h_now and h_then). An entry where a weight appeared or vanished (one of h, h' is -inf, not both)
/// or whose change is spread over more than kShiftSpread gets +inf: two passes for its rows.
template <typename T>
void shifts_from_previous_softmin(const T* h_now, const T* h_then, const T* previous, int64_t batch, int64_t n,
                                  int64_t m, int64_t stride, double eps, T* shifts) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* now = h_now + b * stride;
    const T* then = h_then + b * stride;
    double lowest = std::numeric_limits<double>::infinity(), highest = -lowest;
    bool usable = true;
    for (int64_t j = 0; j < m && usable; ++j) {
      if (now[j] == then[j]) {
        if (std::isfinite(static_cast<double>(now[j]))) {
          lowest = std::min(lowest, 0.0);
          highest = std::max(highest, 0.0);
        }
        continue;
      }
      const double change = static_cast<double>(now[j]) - static_cast<double>(then[j]);
      usable = std::isfinite(change);
      lowest = std::min(lowest, change);
      highest = std::max(highest, change);
    }
    usable = usable && highest - lowest <= kShiftSpread;
    for (int64_t i = 0; i < n; ++i) {
      shifts[b * n + i] = usable ? static_cast<T>(static_cast<double>(previous[b * n + i]) / -eps + highest)
                                 : std::numeric_limits<T>::infinity();
    }
  }
}

}  // namespace sinkhorn::reduce::cpu
