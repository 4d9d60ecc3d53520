// Highway multi-target compilation: this file is compiled once per SIMD target by
// foreach_target.h; everything between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE is per
// target, the HWY_ONCE part once.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "reduce/cpu/online_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/aligned_allocator.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "reduce/cpu/exp2_polynomial-inl.h"
#include "reduce/cpu/online_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace sinkhorn::reduce::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Columns per tile: the tile's exponents and costs stay in L1 between the two passes.
constexpr int64_t kTile = 256;

// Row i of batch entry b over the column ranges [ranges[2r], ranges[2r + 1]), r < range_count.
// v and c are tile buffers of kTile entries, acc has d entries.
//
// float32 works in base 2, as the dense kernels: the exponents are v_j log2(e) (log2(e) folded
// into h and 1/eps), so each term is one Exp2NonPositive, about half the work of Highway's Exp;
// float64 keeps Exp (1 ulp).
//
// kDim > 0 is the dimension known at compile time (1 to 4, the multiscale backend's and most
// low-dimensional clouds'): the distance loop unrolls and x_i's coordinates stay broadcast in
// registers; kDim = 0 reads it from the problem.
template <typename T, int kDim>
void reduce_row(const OnlineProblem<T>& P, int64_t b, int64_t i, const int64_t* ranges,
                int64_t range_count, T* HWY_RESTRICT v, T* HWY_RESTRICT c, double* HWY_RESTRICT acc) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dim = kDim > 0 ? kDim : P.d, stride = P.m_padded;
  const T* HWY_RESTRICT xi = P.x + (b * P.n + i) * dim;
  const T* HWY_RESTRICT yt = P.y_t + b * dim * stride;
  const T* HWY_RESTRICT h = P.h + b * stride;
  constexpr bool kBase2 = std::is_same_v<T, float>;
  const double unit = kBase2 ? 1.4426950408889634 : 1.0;  // log2(e): exponents in base 2
  const auto inv_eps = hn::Set(d, static_cast<T>(unit / P.eps));
  const auto h_unit = hn::Set(d, static_cast<T>(unit));
  const auto half = hn::Set(d, static_cast<T>(0.5));
  // p = 2: the exponent is h_j - |x_i - y_j|^2 (1 / 2 eps), one FMA from the squared distance.
  const auto distance_scale = P.p == 2 ? hn::Mul(inv_eps, half) : inv_eps;
  const bool gradient = P.reduction == Reduction::softmax_cost_gradient;
  // The costs themselves, for the pass-2 sums that weigh them (softmin needs only exponents).
  const bool keep_costs = P.reduction == Reduction::softmax_cost || (gradient && P.p == 1);
  V x_broadcast[kDim > 0 ? kDim : 1];
  for (int64_t k = 0; k < (kDim > 0 ? kDim : 0); ++k) x_broadcast[k] = hn::Set(d, xi[k]);
  // Exponent of the smallest normal number: 2^-126 (float32, base 2), e^-708 (float64).
  const auto smallest_exponent = hn::Set(d, static_cast<T>(kBase2 ? -126.0 : -708.0));
  const auto smallest_weight = hn::Set(d, static_cast<T>(sizeof(T) == 4 ? 5.421010862427522e-20 : 7.458340731200207e-155));

  // |x_i - y_j|^2 over the lanes of columns j, j + 1, ..., from the exact differences.
  const auto squared_distance = [&](int64_t j) {
    auto squared = hn::Zero(d);
    for (int64_t k = 0; k < dim; ++k) {
      const auto xk = kDim > 0 ? x_broadcast[kDim > 0 ? k : 0] : hn::Set(d, xi[k]);
      const auto diff = hn::Sub(xk, hn::LoadU(d, yt + k * stride + j));
      squared = hn::MulAdd(diff, diff, squared);
    }
    return squared;
  };

  // One pass against the caller's shift S_i (OnlineProblem::row_shifts): with S_i at or above
  // the row's log-sum-exp the terms exp(v_j - S_i) need no running max. Lane sums go to double
  // every kTile columns, as in the two passes. False, writing nothing, when the sum shows that
  // S_i was far off: the two passes below then run.
  const auto shifted_softmin = [&]() -> bool {
    const double shift = static_cast<double>(P.row_shifts[b * P.n + i]) * unit;
    if (!std::isfinite(shift)) return false;
    const auto scaled_shift = hn::Set(d, static_cast<T>(shift));
    // Below: the smallest normal, as in the two passes; above: a bound that keeps every partial
    // sum finite (the sum test below rejects such a row anyway).
    const auto lowest = smallest_exponent;
    const auto highest = hn::Set(d, static_cast<T>(64.0));

    double total = 0.0;
    auto sum = hn::Zero(d);
    int64_t in_sum = 0;  // columns in `sum` since it last went to `total`
    for (int64_t r = 0; r < range_count; ++r) {
      for (int64_t j = ranges[2 * r], end = ranges[2 * r + 1]; j < end; j += lanes) {
        const auto squared = squared_distance(j);
        const auto distance = P.p == 2 ? squared : hn::Sqrt(squared);
        const auto shifted_h = hn::MulSub(hn::LoadU(d, h + j), h_unit, scaled_shift);
        const auto exponent = hn::NegMulAdd(distance, distance_scale, shifted_h);
        const auto clamped = hn::Min(hn::Max(exponent, lowest), highest);
        if constexpr (kBase2) {
          sum = hn::Add(sum, Exp2NonPositive(d, clamped));
        } else {
          sum = hn::Add(sum, hn::Exp(d, clamped));
        }
        if ((in_sum += lanes) >= kTile) {
          total += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, sum)));
          sum = hn::Zero(d);
          in_sum = 0;
        }
      }
    }
    total += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, sum)));
    if (!(total >= 0x1p-60 && total <= 0x1p60)) return false;
    const double log_sum = kBase2 ? 0.6931471805599453 * (shift + std::log2(total)) : shift + std::log(total);
    P.out[b * P.n + i] = static_cast<T>(-P.eps * log_sum);
    return true;
  };
  if (P.row_shifts && P.reduction == Reduction::softmin && shifted_softmin()) return;

  double run_max = -std::numeric_limits<double>::infinity();
  double run_sum = 0.0, run_cost = 0.0;
  if (gradient) std::fill(acc, acc + dim, 0.0);

  // A tile gathers up to kTile columns from consecutive ranges (segments of whole
  // kColumnPadding groups): the truncated reductions' ranges are a few dozen columns long, and a
  // tile per range would pay its max, merge and lane sums every few vectors.
  constexpr int64_t kMaxSegments = kTile / kColumnPadding;
  int64_t segment_column[kMaxSegments], segment_length[kMaxSegments];
  int64_t r = 0, next = range_count > 0 ? ranges[0] : 0;  // the first column not yet gathered
  while (r < range_count) {
    // Pass 1: costs and exponents v_j = h_j - C_ij / eps, and the tile's max.
    auto tile_max_v = hn::Set(d, -std::numeric_limits<T>::infinity());
    int64_t length = 0, segments = 0;
    while (length < kTile && r < range_count && segments < kMaxSegments) {
      const int64_t j0 = next, take = std::min(kTile - length, ranges[2 * r + 1] - j0);  // multiples of 16
      for (int64_t j = 0; j < take; j += lanes) {
        const auto squared = squared_distance(j0 + j);
        const auto distance = P.p == 2 ? squared : hn::Sqrt(squared);
        const auto h_j = kBase2 ? hn::Mul(hn::LoadU(d, h + j0 + j), h_unit) : hn::LoadU(d, h + j0 + j);
        const auto exponent = hn::NegMulAdd(distance, distance_scale, h_j);
        if (keep_costs) hn::Store(P.p == 2 ? hn::Mul(squared, half) : distance, d, c + length + j);
        hn::Store(exponent, d, v + length + j);
        tile_max_v = hn::Max(tile_max_v, exponent);
      }
      segment_column[segments] = j0;
      segment_length[segments++] = take;
      length += take;
      next = j0 + take;
      if (next == ranges[2 * r + 1] && ++r < range_count) next = ranges[2 * r];
    }
    const double tile_max = static_cast<double>(hn::GetLane(hn::MaxOfLanes(d, tile_max_v)));
    if (tile_max == -std::numeric_limits<double>::infinity()) continue;  // all weights zero here
    // Merge rule: rescale what was summed so far to the new max.
    const double new_max = std::max(run_max, tile_max);
    if (new_max > run_max) {  // most tiles after the first leave the max alone: no exp then
      const double rescale = kBase2 ? std::exp2(run_max - new_max) : std::exp(run_max - new_max);  // 0 first
      run_sum *= rescale;
      run_cost *= rescale;
      if (gradient) {
        for (int64_t k = 0; k < dim; ++k) acc[k] *= rescale;
      }
      run_max = new_max;
    }

    // Pass 2: e_j = exp(v_j - max), one exp per pair, and the weighted sums.
    const auto shift = hn::Set(d, static_cast<T>(new_max));
    auto sum = hn::Zero(d), cost_sum = hn::Zero(d);
    for (int64_t j = 0; j < length; j += lanes) {
      // Clamped at the smallest normal exponent: subnormal results would take the CPU's slow
      // microcode path (measured 30% slower for p = 2); the perturbation is <= M 2^-126 relative.
      const auto clamped = hn::Max(hn::Sub(hn::Load(d, v + j), shift), smallest_exponent);
      V e;
      if constexpr (kBase2) {
        e = Exp2NonPositive(d, clamped);
      } else {
        e = hn::Exp(d, clamped);
      }
      sum = hn::Add(sum, e);
      if (P.reduction == Reduction::softmax_cost) cost_sum = hn::MulAdd(e, hn::Load(d, c + j), cost_sum);
      if (gradient) {
        // p = 2: grad_x C = x - y, weights e; p = 1: (x - y)/|x - y|, weights e/|x - y| (0 at 0).
        // Terms under 2^-64 (float32; 2^-512 float64) of the row's largest count as 0 here:
        // their products with the differences would be subnormal, which x86 runs in microcode.
        auto weight = hn::IfThenElseZero(hn::Ge(e, smallest_weight), e);
        if (P.p == 1) {
          const auto cost = hn::Load(d, c + j);
          const auto positive = hn::Gt(cost, hn::Zero(d));
          weight = hn::IfThenElseZero(positive, hn::Div(weight, hn::IfThenElse(positive, cost, hn::Set(d, T(1)))));
        }
        hn::Store(weight, d, v + j);  // v is consumed: reuse it for the weights
      }
    }
    run_sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, sum)));
    run_cost += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, cost_sum)));
    if (gradient) {
      // sum_j w_j (x_k - y_jk), from the differences: x_k sum w - sum w y_jk would cancel
      // catastrophically when some y_j is close to x_i (p = 1: w_j = e_j / |x_i - y_j| is large).
      for (int64_t k = 0; k < dim; ++k) {
        const auto xk = hn::Set(d, xi[k]);
        auto weighted = hn::Zero(d);
        for (int64_t s = 0, position = 0; s < segments; position += segment_length[s++]) {
          const T* HWY_RESTRICT yk = yt + k * stride + segment_column[s];
          const T* HWY_RESTRICT weights = v + position;
          for (int64_t j = 0; j < segment_length[s]; j += lanes) {
            weighted = hn::MulAdd(hn::LoadU(d, weights + j), hn::Sub(xk, hn::LoadU(d, yk + j)), weighted);
          }
        }
        acc[k] += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, weighted)));
      }
    }
  }

  const int64_t row = b * P.n + i;
  // The log-sum-exp back in base e: ln 2 (max + log2 sum) in float32's base 2.
  const double log_sum = kBase2 ? 0.6931471805599453 * (run_max + std::log2(run_sum)) : run_max + std::log(run_sum);
  if (P.softmin_out) P.softmin_out[row] = static_cast<T>(-P.eps * log_sum);
  switch (P.reduction) {
    case Reduction::softmin:
      P.out[row] = static_cast<T>(-P.eps * log_sum);
      break;
    case Reduction::softmax_cost:
      P.out[row] = static_cast<T>(run_cost / run_sum);
      break;
    case Reduction::softmax_cost_gradient:
      for (int64_t k = 0; k < dim; ++k) P.out[row * dim + k] = static_cast<T>(acc[k] / run_sum);
      break;
  }
}

// reduce_row with the dimension fixed at compile time where the kernels have a version for it.
template <typename T>
void reduce_row_of_any_dimension(const OnlineProblem<T>& P, int64_t b, int64_t i, const int64_t* ranges,
                                 int64_t range_count, T* HWY_RESTRICT v, T* HWY_RESTRICT c, double* HWY_RESTRICT acc) {
  switch (P.d) {
    case 1: return reduce_row<T, 1>(P, b, i, ranges, range_count, v, c, acc);
    case 2: return reduce_row<T, 2>(P, b, i, ranges, range_count, v, c, acc);
    case 3: return reduce_row<T, 3>(P, b, i, ranges, range_count, v, c, acc);
    case 4: return reduce_row<T, 4>(P, b, i, ranges, range_count, v, c, acc);
    default: return reduce_row<T, 0>(P, b, i, ranges, range_count, v, c, acc);
  }
}

template <typename T>
void reduce_rows(const OnlineProblem<T>& problem, int64_t first_row, int64_t last_row) {
  // Tile buffers aligned for full-vector loads and stores.
  const auto v = hwy::AllocateAligned<T>(kTile);
  const auto c = hwy::AllocateAligned<T>(kTile);
  std::vector<double> acc(static_cast<size_t>(problem.d));
  const int64_t whole[2] = {0, problem.m_padded};
  for (int64_t row = first_row; row < last_row; ++row) {
    reduce_row_of_any_dimension(problem, row / problem.n, row % problem.n, whole, 1, v.get(), c.get(), acc.data());
  }
}

// Block-sparse mode: row blocks [first_block, last_block), each over its own column ranges.
template <typename T>
void reduce_row_blocks(const OnlineProblem<T>& problem, int64_t first_block, int64_t last_block) {
  const auto v = hwy::AllocateAligned<T>(kTile);
  const auto c = hwy::AllocateAligned<T>(kTile);
  std::vector<double> acc(static_cast<size_t>(problem.d));
  for (int64_t block = first_block; block < last_block; ++block) {
    const int64_t* ranges = problem.ranges + 2 * problem.range_offsets[block];
    const int64_t count = problem.range_offsets[block + 1] - problem.range_offsets[block];
    for (int64_t row = problem.row_block_starts[block]; row < problem.row_block_starts[block + 1]; ++row) {
      reduce_row_of_any_dimension(problem, 0, row, ranges, count, v.get(), c.get(), acc.data());
    }
  }
}

// Rows of the truncation bounds (online_kernels.h): clusters [first, last).
template <typename T>
void bound_rows(const TruncationBoundProblem<T>& P, int64_t first, int64_t last) {
  const hn::ScalableTag<T> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dim = P.d, stride = P.m_padded;
  const auto v = hwy::AllocateAligned<T>(static_cast<size_t>(stride));
  const auto inv_eps = hn::Set(d, static_cast<T>(1.0 / P.eps));
  const auto half = hn::Set(d, static_cast<T>(0.5));
  std::vector<T> below(static_cast<size_t>(dim)), above(static_cast<size_t>(dim));
  for (int64_t I = first; I < last; ++I) {
    const T* HWY_RESTRICT centre = P.centres + I * dim;
    const T* HWY_RESTRICT barycentre = P.p == 2 ? P.barycentres + I * dim : nullptr;
    const auto lipschitz_slack = hn::Set(d, static_cast<T>(barycentre ? 0.0 : 2.0 * P.radii[I] / P.eps));
    // p = 2: with o = t - y_j = -u, max(lo u, hi u) / eps = max(o (-lo / eps), o (-hi / eps)).
    if (barycentre) {
      for (int64_t k = 0; k < dim; ++k) {
        below[k] = static_cast<T>(-P.low_offsets[I * dim + k] / P.eps);
        above[k] = static_cast<T>(-P.high_offsets[I * dim + k] / P.eps);
      }
    }
    // Over all columns (padding included: h = -inf there): the bound's terms relative to the row,
    // exp(h_j - C(c, y_j)/eps + slack - s), exponents clamped to [-87, 80]: a term under e^-87
    // counts as 0 (M of them stay far below any mass worth keeping), one over e^80 keeps its block.
    const auto log_sum = hn::Set(d, static_cast<T>(P.log_sums[I]));
    const auto lowest = hn::Set(d, static_cast<T>(-87.0)), highest = hn::Set(d, static_cast<T>(80.0));
    for (int64_t j = 0; j < stride; j += lanes) {
      auto squared = hn::Zero(d), slack = lipschitz_slack;
      for (int64_t k = 0; k < dim; ++k) {
        const auto yk = hn::LoadU(d, P.y_t + k * stride + j);
        const auto diff = hn::Sub(hn::Set(d, centre[k]), yk);
        squared = hn::MulAdd(diff, diff, squared);
        if (barycentre) {
          const auto off = hn::Sub(hn::Set(d, barycentre[k]), yk);
          slack = hn::Add(slack, hn::Max(hn::Mul(off, hn::Set(d, below[k])), hn::Mul(off, hn::Set(d, above[k]))));
        }
      }
      const auto cost = P.p == 2 ? hn::Mul(squared, half) : hn::Sqrt(squared);
      const auto exponent = hn::Sub(hn::Add(hn::NegMulAdd(cost, inv_eps, hn::LoadU(d, P.h + j)), slack), log_sum);
      hn::Store(hn::Exp(d, hn::Min(hn::Max(exponent, lowest), highest)), d, v.get() + j);
    }
    // Per tile of kColumnPadding columns: the sum of its terms, a mass, no log.
    const hn::CappedTag<T, kColumnPadding> tile_tag;
    const int64_t tile_lanes = static_cast<int64_t>(hn::Lanes(tile_tag));
    double* HWY_RESTRICT out = P.out + I * (stride / kColumnPadding);
    for (int64_t t = 0, j = 0; j < stride; ++t, j += kColumnPadding) {
      auto sum = hn::LoadU(tile_tag, v.get() + j);
      for (int64_t k = tile_lanes; k < kColumnPadding; k += tile_lanes) {
        sum = hn::Add(sum, hn::LoadU(tile_tag, v.get() + j + k));
      }
      out[t] = static_cast<double>(hn::GetLane(hn::SumOfLanes(tile_tag, sum)));
    }
  }
}

template <typename T>
double sum_of_exponentials(const T* HWY_RESTRICT values, int64_t count) {
  const hn::ScalableTag<T> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto sum = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= count; i += lanes) sum = hn::Add(sum, hn::Exp(d, hn::LoadU(d, values + i)));
  double total = static_cast<double>(hn::GetLane(hn::SumOfLanes(d, sum)));
  for (; i < count; ++i) total += std::exp(static_cast<double>(values[i]));
  return total;
}
double SumOfExponentialsFloat(const float* values, int64_t count) { return sum_of_exponentials(values, count); }
double SumOfExponentialsDouble(const double* values, int64_t count) { return sum_of_exponentials(values, count); }

void ReduceRowBlocksFloat(const OnlineProblem<float>& problem, int64_t first, int64_t last) {
  reduce_row_blocks(problem, first, last);
}
void ReduceRowBlocksDouble(const OnlineProblem<double>& problem, int64_t first, int64_t last) {
  reduce_row_blocks(problem, first, last);
}
void BoundRowsFloat(const TruncationBoundProblem<float>& problem, int64_t first, int64_t last) {
  bound_rows(problem, first, last);
}
void BoundRowsDouble(const TruncationBoundProblem<double>& problem, int64_t first, int64_t last) {
  bound_rows(problem, first, last);
}
void ReduceRowsFloat(const OnlineProblem<float>& problem, int64_t first_row, int64_t last_row) {
  reduce_rows(problem, first_row, last_row);
}
void ReduceRowsDouble(const OnlineProblem<double>& problem, int64_t first_row, int64_t last_row) {
  reduce_rows(problem, first_row, last_row);
}

}  // namespace HWY_NAMESPACE
}  // namespace sinkhorn::reduce::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sinkhorn::reduce::cpu {

HWY_EXPORT(ReduceRowsFloat);
HWY_EXPORT(ReduceRowsDouble);
HWY_EXPORT(ReduceRowBlocksFloat);
HWY_EXPORT(ReduceRowBlocksDouble);
HWY_EXPORT(BoundRowsFloat);
HWY_EXPORT(BoundRowsDouble);
HWY_EXPORT(SumOfExponentialsFloat);
HWY_EXPORT(SumOfExponentialsDouble);

namespace {

// Rows per task: enough work to amortise the dispatch and the tile buffers, small enough to
// balance threads when N is a few hundred.
constexpr int64_t kRowsPerChunk = 16;

// Below this many pair-operations (pairs x (D + a few for the exp)) one thread finishes before a
// team of threads has woken up: waking a team costs tens of microseconds, far more again when
// another process holds the other cores, and a training step runs hundreds of such reductions on
// a batch of a few hundred points.
constexpr int64_t kSerialWork = int64_t{1} << 19;

// Block-sparse problems: tasks of kBlocksPerTask row blocks (a block is a cluster of nearby rows
// sharing its ranges). A cluster of a 5,000-point cloud holds ~3 rows: one task each would pay
// the task's scratch buffers and a scheduling step per 3 rows, 1,700 times per reduction.
constexpr int64_t kBlocksPerTask = 8;

template <typename T, typename Function>
void run_blocks_parallel(const OnlineProblem<T>& problem, Function function) {
  int64_t work = 0;
  for (int64_t k = 0; k < problem.range_offsets[problem.row_blocks]; ++k) {
    work += problem.ranges[2 * k + 1] - problem.ranges[2 * k];
  }
  work = work * (problem.d + 4) * (problem.n / std::max<int64_t>(1, problem.row_blocks));
  [[maybe_unused]] const bool parallel = work > kSerialWork;
  const int64_t tasks = (problem.row_blocks + kBlocksPerTask - 1) / kBlocksPerTask;
#pragma omp parallel for schedule(dynamic, 1) num_threads(problem.threads) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    function(problem, task * kBlocksPerTask, std::min(problem.row_blocks, (task + 1) * kBlocksPerTask));
  }
}

template <typename T, typename Function>
void run_parallel(const OnlineProblem<T>& problem, Function function) {
  const int64_t rows = problem.batch * problem.n;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  [[maybe_unused]] const bool parallel = rows * problem.m * (problem.d + 4) > kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(problem.threads) if (parallel)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * kRowsPerChunk;
    function(problem, first, std::min(rows, first + kRowsPerChunk));
  }
}

// Read once, before any forcing: forcing a target narrows what Highway reports as supported.
const std::vector<int64_t>& available_targets() {
  static const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  return targets;
}

}  // namespace

void online_reduce(const OnlineProblem<float>& problem) {
  if (problem.row_block_starts) {
    run_blocks_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowBlocksFloat));
  } else {
    run_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowsFloat));
  }
}

void online_reduce(const OnlineProblem<double>& problem) {
  if (problem.row_block_starts) {
    run_blocks_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowBlocksDouble));
  } else {
    run_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowsDouble));
  }
}

template <typename T, typename Function>
void run_bounds_parallel(const TruncationBoundProblem<T>& problem, Function function) {
  constexpr int64_t kClustersPerTask = 8;  // amortises the task's M-entry buffer
  const int64_t tasks = (problem.clusters + kClustersPerTask - 1) / kClustersPerTask;
  [[maybe_unused]] const bool parallel = problem.clusters * problem.m_padded * (problem.d + 4) > kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(problem.threads) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    function(problem, task * kClustersPerTask, std::min(problem.clusters, (task + 1) * kClustersPerTask));
  }
}

void truncation_bounds(const TruncationBoundProblem<float>& problem) {
  run_bounds_parallel(problem, HWY_DYNAMIC_DISPATCH(BoundRowsFloat));
}

void truncation_bounds(const TruncationBoundProblem<double>& problem) {
  run_bounds_parallel(problem, HWY_DYNAMIC_DISPATCH(BoundRowsDouble));
}

double sum_of_exponentials(const float* values, int64_t count) {
  return HWY_DYNAMIC_DISPATCH(SumOfExponentialsFloat)(values, count);
}

double sum_of_exponentials(const double* values, int64_t count) {
  return HWY_DYNAMIC_DISPATCH(SumOfExponentialsDouble)(values, count);
}

int simd_target_count() { return static_cast<int>(available_targets().size()); }

const char* simd_target_name(int index) {
  return hwy::TargetName(available_targets().at(static_cast<size_t>(index)));
}

void force_simd_target(int index) {
  available_targets();  // cache the full list first
  hwy::SetSupportedTargetsForTest(index < 0 ? 0 : available_targets().at(static_cast<size_t>(index)));
}

}  // namespace sinkhorn::reduce::cpu
#endif  // HWY_ONCE
