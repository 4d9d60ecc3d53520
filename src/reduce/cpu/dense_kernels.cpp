// Highway multi-target compilation, as online_kernels.cpp: per-target code between
// HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE, the dispatch once (HWY_ONCE).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "reduce/cpu/dense_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/aligned_allocator.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "reduce/cpu/dense_kernels.h"
#include "reduce/cpu/exp2_polynomial-inl.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace sinkhorn::reduce::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Columns whose lane sums stay in the input dtype before joining the row's double sum.
constexpr int64_t kDenseTile = 256;
// Rows whose (max, sum) wait for one vectorised log.
constexpr int64_t kRowBlock = 64;
// Softmax weights below this are stored as 0 (dense_kernels.h): 2^-64 in float32, 2^-512 in float64.
template <typename T>
constexpr T kSmallestWeight = sizeof(T) == 4 ? T(5.421010862427522e-20) : T(7.458340731200207e-155);

// Rows [first, last) of the flattened (batch * n) rows.
//
// float32 works in base 2: the exponents are v_j log2(e) (log2(e) folded into h and 1/eps once
// per call), so that each term is one Exp2NonPositive; float64 keeps Highway's Exp (1 ulp), where
// a polynomial of twice the degree would save little.
template <typename T>
void dense_rows(const DenseProblem<T>& P, int64_t first, int64_t last) {
  constexpr bool kBase2 = std::is_same_v<T, float>;
  const double unit = kBase2 ? 1.4426950408889634 : 1.0;  // log2(e): exponents in base 2
  const hn::ScalableTag<T> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t m = P.m, whole = m - m % lanes, tail = m - whole;
  const auto cost_scale = hn::Set(d, static_cast<T>(unit / P.eps));
  const auto minus_infinity = hn::Set(d, -std::numeric_limits<T>::infinity());
  // The smallest normal number: 2^-126 (float32), e^-708 (float64).
  const auto smallest_exponent = hn::Set(d, static_cast<T>(kBase2 ? -126.0 : -708.0));
  // Shifted terms (row_shifts) above this are clamped: partial sums stay finite, and the sum test
  // sends such a row to the two passes anyway.
  const auto largest_shifted_exponent = hn::Set(d, static_cast<T>(64.0));
  const auto exponential = [&](auto v) {
    if constexpr (kBase2) {
      return Exp2NonPositive(d, v);
    } else {
      return hn::Exp(d, v);
    }
  };
  // h in the exponents' unit, padded with -inf to whole vectors: the last m % lanes columns go
  // through a full vector (no load past the end of a row), with C = 0 in the lanes beyond and
  // terms that the clamp makes 2^-126 there.
  const int64_t padded = whole + (tail > 0 ? lanes : 0);
  const auto h_scaled = hwy::AllocateAligned<T>(static_cast<size_t>(padded));
  HWY_ALIGN T cost_tail[hn::MaxLanes(d)];
  int64_t scaled_batch = -1;
  HWY_ALIGN T row_max[kRowBlock] = {};
  double row_sum[kRowBlock];
  double row_cost[kRowBlock];

  for (int64_t block = first; block < last; block += kRowBlock) {
    const int64_t block_end = std::min(last, block + kRowBlock);
    for (int64_t row = block; row < block_end; ++row) {
      const int64_t batch = row / P.n, r = row - block;
      const T* HWY_RESTRICT c = P.cost + row * m;
      if (batch != scaled_batch) {
        const T* HWY_RESTRICT h = P.h + batch * m;
        for (int64_t j = 0; j < m; ++j) h_scaled[j] = static_cast<T>(h[j] * unit);
        std::fill(h_scaled.get() + m, h_scaled.get() + padded, -std::numeric_limits<T>::infinity());
        scaled_batch = batch;
      }
      const T* HWY_RESTRICT h = h_scaled.get();
      if (tail > 0) {
        std::fill(cost_tail, cost_tail + lanes, T(0));
        std::copy(c + whole, c + m, cost_tail);
      }
      // One pass when the caller's shift bounds the row's log-sum-exp closely enough.
      if (P.row_shifts && P.reduction == DenseReduction::softmin) {
        const double shift = static_cast<double>(P.row_shifts[row]) * unit;
        if (std::isfinite(shift)) {
          const T rounded_shift = static_cast<T>(shift);
          const auto shift_v = hn::Set(d, rounded_shift);
          const auto shifted_term = [&](const T* HWY_RESTRICT cj, const T* HWY_RESTRICT hj) {
            const auto v = hn::Sub(hn::NegMulAdd(hn::LoadU(d, cj), cost_scale, hn::Load(d, hj)), shift_v);
            return exponential(hn::Min(hn::Max(v, smallest_exponent), largest_shifted_exponent));
          };
          double sum = 0.0;
          for (int64_t j0 = 0; j0 < whole; j0 += kDenseTile) {
            const int64_t end = std::min(whole, j0 + kDenseTile);
            auto tile_sum = hn::Zero(d);
            for (int64_t j = j0; j < end; j += lanes) tile_sum = hn::Add(tile_sum, shifted_term(c + j, h + j));
            sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, tile_sum)));
          }
          if (tail > 0) sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, shifted_term(cost_tail, h + whole))));
          if (sum >= 0x1p-60 && sum <= 0x1p60) {
            row_max[r] = rounded_shift;
            row_sum[r] = sum;
            row_cost[r] = 0.0;
            continue;
          }
        }
      }
      // Pass 1: max_j v_j, v_j = h_j - C_ij / eps (in the exponents' unit).
      auto max_v = minus_infinity;
      for (int64_t j = 0; j < whole; j += lanes) {
        max_v = hn::Max(max_v, hn::NegMulAdd(hn::LoadU(d, c + j), cost_scale, hn::Load(d, h + j)));
      }
      if (tail > 0) max_v = hn::Max(max_v, hn::NegMulAdd(hn::Load(d, cost_tail), cost_scale, hn::Load(d, h + whole)));
      row_max[r] = hn::GetLane(hn::MaxOfLanes(d, max_v));
      T* HWY_RESTRICT weights = P.reduction == DenseReduction::softmax_weights ? P.out + row * m : nullptr;
      if (row_max[r] == -std::numeric_limits<T>::infinity()) {  // every weight zero: an empty sum
        row_sum[r] = row_cost[r] = 0.0;
        if (weights) std::fill(weights, weights + m, std::numeric_limits<T>::quiet_NaN());
        continue;
      }

      // Pass 2: e_j = exp(v_j - max), summed (and C-weighted, or stored as weights).
      const auto shift = hn::Set(d, row_max[r]);
      const auto term = [&](const T* HWY_RESTRICT cj, const T* HWY_RESTRICT hj) {
        const auto v = hn::NegMulAdd(hn::LoadU(d, cj), cost_scale, hn::Load(d, hj));
        return exponential(hn::Max(hn::Sub(v, shift), smallest_exponent));
      };
      double sum = 0.0, cost_sum = 0.0;
      for (int64_t j0 = 0; j0 < whole; j0 += kDenseTile) {
        const int64_t end = std::min(whole, j0 + kDenseTile);
        auto tile_sum = hn::Zero(d), tile_cost = hn::Zero(d);
        for (int64_t j = j0; j < end; j += lanes) {
          const auto e = term(c + j, h + j);
          tile_sum = hn::Add(tile_sum, e);
          if (P.reduction == DenseReduction::softmax_cost) tile_cost = hn::MulAdd(e, hn::LoadU(d, c + j), tile_cost);
          if (weights) hn::StoreU(e, d, weights + j);
        }
        sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, tile_sum)));
        cost_sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, tile_cost)));
      }
      if (tail > 0) {
        const auto e = term(cost_tail, h + whole);
        sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, e)));
        cost_sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, hn::Mul(e, hn::Load(d, cost_tail)))));
        if (weights) {
          HWY_ALIGN T e_tail[hn::MaxLanes(d)];
          hn::Store(e, d, e_tail);
          std::copy(e_tail, e_tail + tail, weights + whole);
        }
      }
      row_sum[r] = sum;
      row_cost[r] = cost_sum;
      if (weights) {
        // Pass 3: normalise the stored row (still in L1). Weights under kSmallestWeight count as
        // zero: the matrix product that consumes them (W y for the gradient) would otherwise form
        // subnormal products and take the CPU's microcode path (measured 30-100x slower).
        const T factor = P.row_scales ? P.row_scales[row] : T(1);
        const auto scale = hn::Set(d, static_cast<T>(1.0 / sum));
        const auto factor_v = hn::Set(d, factor);
        const auto smallest_normal = hn::Set(d, kSmallestWeight<T>);
        int64_t j = 0;
        for (; j < whole; j += lanes) {
          const auto w = hn::Mul(hn::LoadU(d, weights + j), scale);
          hn::StoreU(hn::IfThenElseZero(hn::Ge(w, smallest_normal), hn::Mul(w, factor_v)), d, weights + j);
        }
        for (; j < m; ++j) {
          const T w = static_cast<T>(weights[j] / sum);
          weights[j] = w >= kSmallestWeight<T> ? w * factor : T(0);
        }
      }
    }

    // The block's results: softmin = -eps (max / unit + log sum), one vectorised log per lanes rows.
    const int64_t rows = block_end - block;
    if (P.reduction == DenseReduction::softmin) {
      HWY_ALIGN T sums[kRowBlock];
      for (int64_t r = 0; r < rows; ++r) sums[r] = static_cast<T>(row_sum[r]);
      for (int64_t r = rows; r < kRowBlock; ++r) sums[r] = T(1);
      const auto minus_eps = hn::Set(d, static_cast<T>(-P.eps));
      const auto inverse_unit = hn::Set(d, static_cast<T>(1.0 / unit));
      for (int64_t r = 0; r < rows; r += lanes) {
        const auto log_sum = hn::Log(d, hn::Load(d, sums + r));
        HWY_ALIGN T values[hn::MaxLanes(d)];
        hn::Store(hn::Mul(minus_eps, hn::MulAdd(hn::LoadU(d, row_max + r), inverse_unit, log_sum)), d, values);
        for (int64_t k = 0; k < std::min(lanes, rows - r); ++k) {
          // An empty row (max -inf, sum 0) is +inf: -eps (-inf + log 0).
          P.out[block + r + k] = row_sum[r + k] > 0 ? values[k] : std::numeric_limits<T>::infinity();
        }
      }
    } else if (P.reduction == DenseReduction::softmax_cost) {
      for (int64_t r = 0; r < rows; ++r) {
        P.out[block + r] = row_sum[r] > 0 ? static_cast<T>(row_cost[r] / row_sum[r]) : std::numeric_limits<T>::quiet_NaN();
      }
    }
  }
}

void DenseRowsFloat(const DenseProblem<float>& problem, int64_t first, int64_t last) {
  dense_rows(problem, first, last);
}
void DenseRowsDouble(const DenseProblem<double>& problem, int64_t first, int64_t last) {
  dense_rows(problem, first, last);
}

}  // namespace HWY_NAMESPACE
}  // namespace sinkhorn::reduce::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sinkhorn::reduce::cpu {

HWY_EXPORT(DenseRowsFloat);
HWY_EXPORT(DenseRowsDouble);

namespace {

// Below this many pairs one thread is done before a team has woken up (tens of microseconds):
// a training step's 200 x 200 reductions stay on the calling thread.
constexpr int64_t kSerialPairs = int64_t{1} << 14;
// From this many pairs the rows are split into several chunks per thread.
constexpr int64_t kBalancedPairs = int64_t{1} << 18;

template <typename T, typename Function>
void run_parallel(const DenseProblem<T>& problem, Function function) {
  const int64_t rows = problem.batch * problem.n;
  if (rows == 0) return;
  const int64_t threads = rows * problem.m > kSerialPairs ? std::max(1, problem.threads) : 1;
  // A few chunks per thread balance large matrices; a small one (a training batch's 200 x 200)
  // takes one chunk per thread, as each chunk pays a setup (h in the exponents' unit, padded) of
  // the order of a row's work.
  const int64_t chunks = std::min(rows, rows * problem.m >= kBalancedPairs ? threads * 8 : threads);
  [[maybe_unused]] const bool parallel = threads > 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(threads)) if (parallel)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    function(problem, rows * chunk / chunks, rows * (chunk + 1) / chunks);
  }
}

}  // namespace

void dense_reduce(const DenseProblem<float>& problem) { run_parallel(problem, HWY_DYNAMIC_DISPATCH(DenseRowsFloat)); }

void dense_reduce(const DenseProblem<double>& problem) { run_parallel(problem, HWY_DYNAMIC_DISPATCH(DenseRowsDouble)); }

}  // namespace sinkhorn::reduce::cpu
#endif  // HWY_ONCE
