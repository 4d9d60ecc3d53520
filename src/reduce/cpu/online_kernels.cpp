// Highway multi-target compilation: this file is compiled once per SIMD target by
// foreach_target.h; everything between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE is per
// target, the HWY_ONCE part once.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "reduce/cpu/online_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/aligned_allocator.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "reduce/cpu/online_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace sinkhorn::reduce::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Columns per tile: the tile's exponents and costs stay in L1 between the two passes.
constexpr int64_t kTile = 256;

// Row i of batch entry b. v and c are tile buffers of kTile entries, acc has d entries.
template <typename T>
void reduce_row(const OnlineProblem<T>& P, int64_t b, int64_t i, T* HWY_RESTRICT v, T* HWY_RESTRICT c,
                double* HWY_RESTRICT acc) {
  const hn::ScalableTag<T> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dim = P.d, stride = P.m_padded;
  const T* HWY_RESTRICT xi = P.x + (b * P.n + i) * dim;
  const T* HWY_RESTRICT yt = P.y_t + b * dim * stride;
  const T* HWY_RESTRICT h = P.h + b * stride;
  const auto inv_eps = hn::Set(d, static_cast<T>(1.0 / P.eps));
  const auto half = hn::Set(d, static_cast<T>(0.5));
  const bool gradient = P.reduction == Reduction::softmax_cost_gradient;
  // log of the smallest normal number: e^-87 (float32), e^-708 (float64).
  const auto smallest_exponent = hn::Set(d, static_cast<T>(sizeof(T) == 4 ? -87.0 : -708.0));

  double run_max = -std::numeric_limits<double>::infinity();
  double run_sum = 0.0, run_cost = 0.0;
  if (gradient) std::fill(acc, acc + dim, 0.0);

  for (int64_t j0 = 0; j0 < P.m; j0 += kTile) {
    const int64_t length = std::min(kTile, stride - j0);  // a multiple of kColumnPadding >= lanes
    // Pass 1: costs and exponents v_j = h_j - C_ij / eps, and the tile's max.
    auto tile_max_v = hn::Set(d, -std::numeric_limits<T>::infinity());
    for (int64_t j = 0; j < length; j += lanes) {
      auto squared = hn::Zero(d);
      for (int64_t k = 0; k < dim; ++k) {
        const auto diff = hn::Sub(hn::Set(d, xi[k]), hn::LoadU(d, yt + k * stride + j0 + j));
        squared = hn::MulAdd(diff, diff, squared);
      }
      const auto cost = P.p == 2 ? hn::Mul(squared, half) : hn::Sqrt(squared);
      const auto exponent = hn::NegMulAdd(cost, inv_eps, hn::LoadU(d, h + j0 + j));
      hn::Store(cost, d, c + j);
      hn::Store(exponent, d, v + j);
      tile_max_v = hn::Max(tile_max_v, exponent);
    }
    const double tile_max = static_cast<double>(hn::GetLane(hn::MaxOfLanes(d, tile_max_v)));
    if (tile_max == -std::numeric_limits<double>::infinity()) continue;  // all weights zero here
    // Merge rule: rescale what was summed so far to the new max.
    const double new_max = std::max(run_max, tile_max);
    const double rescale = std::exp(run_max - new_max);  // 0 on the first tile
    run_sum *= rescale;
    run_cost *= rescale;
    if (gradient) {
      for (int64_t k = 0; k < dim; ++k) acc[k] *= rescale;
    }
    run_max = new_max;

    // Pass 2: e_j = exp(v_j - max), one exp per pair, and the weighted sums.
    const auto shift = hn::Set(d, static_cast<T>(new_max));
    auto sum = hn::Zero(d), cost_sum = hn::Zero(d);
    for (int64_t j = 0; j < length; j += lanes) {
      // Clamped at the smallest normal exponent: subnormal results would take the CPU's slow
      // microcode path (measured 30% slower for p = 2); the perturbation is <= M e^-87 relative.
      const auto e = hn::Exp(d, hn::Max(hn::Sub(hn::Load(d, v + j), shift), smallest_exponent));
      sum = hn::Add(sum, e);
      const auto cost = hn::Load(d, c + j);
      if (P.reduction == Reduction::softmax_cost) cost_sum = hn::MulAdd(e, cost, cost_sum);
      if (gradient) {
        // p = 2: grad_x C = x - y, weights e; p = 1: (x - y)/|x - y|, weights e/|x - y| (0 at 0).
        auto weight = e;
        if (P.p == 1) {
          const auto positive = hn::Gt(cost, hn::Zero(d));
          weight = hn::IfThenElseZero(positive, hn::Div(e, hn::IfThenElse(positive, cost, hn::Set(d, T(1)))));
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
        const T* HWY_RESTRICT yk = yt + k * stride + j0;
        const auto xk = hn::Set(d, xi[k]);
        auto weighted = hn::Zero(d);
        for (int64_t j = 0; j < length; j += lanes) {
          weighted = hn::MulAdd(hn::Load(d, v + j), hn::Sub(xk, hn::LoadU(d, yk + j)), weighted);
        }
        acc[k] += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, weighted)));
      }
    }
  }

  const int64_t row = b * P.n + i;
  switch (P.reduction) {
    case Reduction::softmin:
      P.out[row] = static_cast<T>(-P.eps * (run_max + std::log(run_sum)));
      break;
    case Reduction::softmax_cost:
      P.out[row] = static_cast<T>(run_cost / run_sum);
      break;
    case Reduction::softmax_cost_gradient:
      for (int64_t k = 0; k < dim; ++k) P.out[row * dim + k] = static_cast<T>(acc[k] / run_sum);
      break;
  }
}

template <typename T>
void reduce_rows(const OnlineProblem<T>& problem, int64_t first_row, int64_t last_row) {
  // Tile buffers aligned for full-vector loads and stores.
  const auto v = hwy::AllocateAligned<T>(kTile);
  const auto c = hwy::AllocateAligned<T>(kTile);
  std::vector<double> acc(static_cast<size_t>(problem.d));
  for (int64_t row = first_row; row < last_row; ++row) {
    reduce_row(problem, row / problem.n, row % problem.n, v.get(), c.get(), acc.data());
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

template <typename T, typename Function>
void run_parallel(const OnlineProblem<T>& problem, Function function) {
  const int64_t rows = problem.batch * problem.n;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const bool parallel = rows * problem.m * (problem.d + 4) > kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
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
  run_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowsFloat));
}

void online_reduce(const OnlineProblem<double>& problem) {
  run_parallel(problem, HWY_DYNAMIC_DISPATCH(ReduceRowsDouble));
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
