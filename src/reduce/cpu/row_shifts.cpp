#include "reduce/cpu/row_shifts.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace sinkhorn::reduce::cpu {
namespace {

// shifts[b, i] = previous[b, i] / -eps + max_j (now[b, j] - then[b, j]) over the m columns of
// each of `batch` entries, or +inf for the entry (see row_shifts).
template <typename T>
void fill_shifts(const T* now_all, const T* then_all, const T* previous, int64_t batch, int64_t n, int64_t m,
                 double eps, T* shifts) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* now = now_all + b * m;
    const T* then = then_all + b * m;
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

}  // namespace

at::Tensor row_shifts(const PreviousSoftmin& previous, const at::Tensor& h, double eps) {
  if (!previous.softmin.defined() || previous.eps != eps || !previous.h.sizes().equals(h.sizes()) ||
      previous.h.scalar_type() != h.scalar_type()) {
    return {};
  }
  at::Tensor shifts = at::empty_like(previous.softmin);
  const int64_t batch = h.dim() == 2 ? h.size(0) : 1, m = h.size(-1), n = shifts.size(-1);
  const auto fill = [&](auto zero) {
    using T = decltype(zero);
    fill_shifts(h.data_ptr<T>(), previous.h.data_ptr<T>(), previous.softmin.data_ptr<T>(), batch, n, m, eps,
                shifts.data_ptr<T>());
  };
  h.scalar_type() == at::kFloat ? fill(0.0f) : fill(0.0);
  return shifts;
}

}  // namespace sinkhorn::reduce::cpu
