#include "reduce/cpu/multiscale_reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "reduce/cpu/online_kernels.h"
#include "reduce/cpu/online_reducer.h"
#include "reduce/cpu/row_shifts.h"
#include "reduce/grid_clusters.h"
#include "util/check.h"

namespace sinkhorn::reduce {
namespace {

// Spread of h - h_reference (in units of log-mass) allowed before the blocks are recomputed,
// and the dropped mass the blocks are built for: kBuildMass e^kDrift = kTruncatedMass. A smaller
// margin keeps fewer blocks and rebuilds them more often: at N = 100,000 (docs/benchmarks.md,
// "Large clouds") 2 against 4 took the torus 21.7 -> 20.0 s and the cube 18.5 -> 17.0 s, the blobs
// 15.8 -> 16.8 s (8 rebuilds instead of 6); 1 rebuilt the blobs' blocks 13 times (22.6 s).
constexpr double kDrift = 2.0;
const double kBuildMass = kTruncatedMass * std::exp(-kDrift);

// Columns between two kept ranges below which they are visited as one.
constexpr int64_t kMergeGap = 2 * cpu::kColumnPadding;

int64_t padded_size(int64_t m) {
  return (m + cpu::kColumnPadding - 1) / cpu::kColumnPadding * cpu::kColumnPadding;
}

// One batch entry of a cloud, in cluster order, in the kernels' dtype.
struct SortedCloud {
  GridClusters clusters;
  at::Tensor order;     // (N) int64: original index of each sorted point
  at::Tensor points;    // (N, D): the rows of x
  at::Tensor points_t;  // (D, N_padded): the columns of y
  at::Tensor centres;   // (K, D)
  // Identity of what it was built from: the caller's tensor itself, held so that its memory cannot
  // be reused by another tensor while cached, and its version counter, which every in-place change
  // (a permutation keeps the addresses and the coordinates' sum) advances. Views of one tensor
  // share its counter. A unique generation tells truncations which build they belong to.
  at::Tensor source;
  uint32_t version = 0;
  uint64_t generation = 0;
};

// The kept blocks of one (rows, columns) pair of clouds, valid at `eps` near `h_reference`.
struct Truncation {
  uint64_t row_generation = 0, column_generation = 0;  // the builds of the clouds it was made for
  double eps = 0;
  at::Tensor h_reference;             // (N_padded) in cluster order
  std::vector<int64_t> range_offsets;  // per row cluster
  std::vector<int64_t> ranges;         // [begin, end) pairs in padded column space
  int64_t visited_pairs = 0;           // what one reduction over these blocks visits
};

// The last softmin of one (rows, columns) pair of clouds, in cluster order (h over the padded
// columns), and the builds of the clouds it was taken on.
struct LastSoftmin {
  uint64_t row_generation = 0, column_generation = 0;
  cpu::PreviousSoftmin previous;
};

// The kernels' problem of rows x (K, D) against all of a sorted cloud's columns (batch 1).
template <typename T>
cpu::OnlineProblem<T> problem_over(cpu::Reduction reduction, const at::Tensor& x, const SortedCloud& columns,
                                   const at::Tensor& h, int p, double eps, at::Tensor& out) {
  return online_problem<T>(reduction, x.unsqueeze(0), columns.points_t.unsqueeze(0), h.unsqueeze(0),
                           columns.points.size(0), p, eps, out);
}

class MultiscaleCpuReducer final : public Reducer {
 public:
  MultiscaleCpuReducer(int p, double cell, double row_cell) : p_(p), cell_(cell), row_cell_(row_cell > 0 ? row_cell : cell) {}

  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const override {
    return run(cpu::Reduction::softmin, x, y, h, eps);
  }
  at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                   double eps) const override {
    return run(cpu::Reduction::softmax_cost_gradient, x, y, h, eps);
  }
  at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                          double eps) const override {
    return run(cpu::Reduction::softmax_cost, x, y, h, eps);
  }
  bool differentiable() const override { return false; }
  std::string name() const override { return "multiscale"; }
  std::optional<TruncationReport> truncation() const override {
    TruncationReport report = report_;
    if (dense_pairs_ > 0) report.visited_fraction = visited_pairs_ / dense_pairs_;
    return report;
  }

 private:
  at::Tensor run(cpu::Reduction reduction, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                 double eps) const {
    SINKHORN_CHECK_ARG(x.device().is_cpu(), "backend", "multiscale runs on CPU tensors, got " << x.device());
    const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    std::vector<at::Tensor> results;
    for (int64_t b = 0; b < x.size(0); ++b) {
      results.push_back(dtype == at::kDouble ? run_entry<double>(reduction, x[b], y[b], h[b], eps)
                                             : run_entry<float>(reduction, x[b], y[b], h[b], eps));
    }
    return at::stack(results).to(x.scalar_type());
  }

  template <typename T>
  at::Tensor run_entry(cpu::Reduction reduction, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                       double eps) const {
    const at::ScalarType dtype = c10::CppTypeToScalarType<T>::value;
    const SortedCloud& rows = sorted(x, dtype, row_cell_);
    const SortedCloud& columns = sorted(y, dtype, cell_);
    const int64_t m = y.size(0), d = x.size(1);
    at::Tensor h_sorted = at::full({columns.points_t.size(1)}, -std::numeric_limits<double>::infinity(),
                                   rows.points.options());
    h_sorted.narrow(0, 0, m).copy_(h.detach().to(dtype).index_select(0, columns.order));
    const Truncation& truncation = truncation_for<T>(rows, columns, h_sorted, eps, x, y);

    at::Tensor out = reduction == cpu::Reduction::softmax_cost_gradient
                         ? at::empty({x.size(0), d}, rows.points.options())
                         : at::empty({x.size(0)}, rows.points.options());
    cpu::OnlineProblem<T> problem = problem_over<T>(reduction, rows.points, columns, h_sorted, p_, eps, out);
    const auto key = std::make_pair(x.data_ptr(), y.data_ptr());
    const at::Tensor shifts = reduction == cpu::Reduction::softmin
                                  ? row_shifts(key, rows, columns, h_sorted, eps)
                                  : at::Tensor();
    if (shifts.defined()) problem.row_shifts = shifts.data_ptr<T>();
    problem.row_block_starts = rows.clusters.starts.data();
    problem.row_blocks = rows.clusters.size();
    problem.range_offsets = truncation.range_offsets.data();
    problem.ranges = truncation.ranges.data();
    cpu::online_reduce(problem);
    if (reduction == cpu::Reduction::softmin) {
      last_softmins_[key] = {rows.generation, columns.generation, {h_sorted, out, eps}};
    }
    visited_pairs_ += static_cast<double>(truncation.visited_pairs);
    dense_pairs_ += static_cast<double>(x.size(0)) * static_cast<double>(m);
    return at::empty_like(out).index_copy_(0, rows.order, out);
  }

  // The cloud's clusters of side `cell` and sorted copies, computed on first use (a cloud that is
  // both rows and columns has two).
  const SortedCloud& sorted(const at::Tensor& points, at::ScalarType dtype, double cell) const {
    const auto key = std::make_tuple(points.data_ptr(), points.size(0), points.size(1), points.stride(0), dtype, cell);
    auto found = clouds_.find(key);
    if (found != clouds_.end() && found->second.version == CloudPair::version(points)) return found->second;
    const at::Tensor values = points.detach().to(dtype).contiguous();

    SortedCloud cloud;
    // Uniform weights: the truncation bound holds for any centre; weights only shift it.
    cloud.clusters = cluster_on_grid(values, at::ones({values.size(0)}, values.options()), cell);
    cloud.order = at::tensor(cloud.clusters.order, at::kLong);
    cloud.points = values.index_select(0, cloud.order).contiguous();
    cloud.points_t = at::zeros({values.size(1), padded_size(values.size(0))}, values.options());
    cloud.points_t.narrow(1, 0, values.size(0)).copy_(cloud.points.t());
    cloud.centres = cloud.clusters.centres.to(dtype).contiguous();
    cloud.source = points;
    cloud.version = CloudPair::version(points);
    cloud.generation = ++generations_;
    return clouds_[key] = std::move(cloud);
  }

  template <typename T>
  const Truncation& truncation_for(const SortedCloud& rows, const SortedCloud& columns, const at::Tensor& h,
                                   double eps, const at::Tensor& x, const at::Tensor& y) const {
    const auto key = std::make_pair(x.data_ptr(), y.data_ptr());
    auto found = truncations_.find(key);
    if (found != truncations_.end() && found->second.eps == eps && found->second.row_generation == rows.generation &&
        found->second.column_generation == columns.generation && within_drift<T>(h, found->second.h_reference)) {
      return found->second;
    }
    const auto start = std::chrono::steady_clock::now();
    Truncation& truncation = truncations_[key] = build_truncation<T>(rows, columns, h, eps);
    report_.rebuilds += 1;
    report_.rebuild_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return truncation;
  }

  // Row shifts for the one-pass softmin (row_shifts.h) from the previous softmin of the same sorted
  // clouds; over blocks recomputed since then only the dropped mass (under kTruncatedMass)
  // differs. Undefined (two passes) without one.
  at::Tensor row_shifts(const std::pair<void*, void*>& key, const SortedCloud& rows, const SortedCloud& columns,
                        const at::Tensor& h, double eps) const {
    const auto found = last_softmins_.find(key);
    if (found == last_softmins_.end() || found->second.row_generation != rows.generation ||
        found->second.column_generation != columns.generation) {
      return {};
    }
    return cpu::row_shifts(found->second.previous, h, eps);
  }

  // True when h - reference has a spread of at most kDrift where either is finite.
  template <typename T>
  static bool within_drift(const at::Tensor& h, const at::Tensor& reference) {
    const T* now = h.data_ptr<T>();
    const T* then = reference.data_ptr<T>();
    double lowest = std::numeric_limits<double>::infinity(), highest = -lowest;
    for (int64_t j = 0; j < h.size(0); ++j) {
      if (now[j] == then[j]) {  // equal (both -inf included): no drift
        lowest = std::min(lowest, 0.0);
        highest = std::max(highest, 0.0);
        continue;
      }
      const double change = static_cast<double>(now[j]) - static_cast<double>(then[j]);
      if (!std::isfinite(change)) return false;  // a weight appeared or vanished
      lowest = std::min(lowest, change);
      highest = std::max(highest, change);
    }
    return highest - lowest <= kDrift;
  }

  template <typename T>
  Truncation build_truncation(const SortedCloud& rows, const SortedCloud& columns, const at::Tensor& h,
                              double eps) const {
    const int64_t clusters = rows.clusters.size(), tiles = columns.points_t.size(1) / cpu::kColumnPadding;
    const int64_t d = rows.points.size(1);
    // s and the barycentre t at every row cluster's centre, over all columns, in one pass.
    at::Tensor softmin_at_centres = at::empty({clusters}, rows.points.options());
    at::Tensor gradient = at::empty({clusters, d}, rows.points.options());
    cpu::OnlineProblem<T> centre_problem =
        problem_over<T>(cpu::Reduction::softmax_cost_gradient, rows.centres, columns, h, p_, eps, gradient);
    centre_problem.softmin_out = softmin_at_centres.data_ptr<T>();
    cpu::online_reduce(centre_problem);
    const at::Tensor log_sums = (softmin_at_centres.to(at::kDouble) / -eps).contiguous();
    // grad_x C = x - y for p = 2: t = c - sum w (c - y). Unused for p = 1.
    const at::Tensor barycentres = (rows.centres - gradient).contiguous();
    Truncation truncation;
    truncation.row_generation = rows.generation;
    truncation.column_generation = columns.generation;
    truncation.eps = eps;
    truncation.h_reference = h.clone();
    truncation.range_offsets.assign(1, 0);
    // Row clusters per pass: the bounds buffer stays near 8 MB.
    const int64_t chunk = std::max<int64_t>(16, (int64_t{1} << 20) / std::max<int64_t>(1, tiles));
    std::vector<double> bounds(static_cast<size_t>(chunk * tiles));
    std::vector<std::vector<int64_t>> chunk_ranges(static_cast<size_t>(chunk));
    for (int64_t first = 0; first < clusters; first += chunk) {
      const int64_t count = std::min(chunk, clusters - first);
      cpu::TruncationBoundProblem<T> problem;
      problem.centres = rows.centres.data_ptr<T>() + first * d;
      problem.barycentres = p_ == 2 ? barycentres.data_ptr<T>() + first * d : nullptr;
      problem.radii = rows.clusters.radii.data() + first;
      problem.low_offsets = rows.clusters.low_offsets.data() + first * d;
      problem.high_offsets = rows.clusters.high_offsets.data() + first * d;
      problem.log_sums = log_sums.data_ptr<double>() + first;
      problem.clusters = count;
      problem.y_t = columns.points_t.data_ptr<T>();
      problem.h = h.data_ptr<T>();
      problem.m_padded = columns.points_t.size(1);
      problem.d = d;
      problem.p = p_;
      problem.eps = eps;
      problem.out = bounds.data();
      problem.threads = at::get_num_threads();
      cpu::truncation_bounds(problem);
      // Threads only when each has thousands of blocks to sort through (waking a team costs more).
      [[maybe_unused]] const bool parallel = count * tiles > (int64_t{1} << 16);
#pragma omp parallel for schedule(dynamic, 4) num_threads(problem.threads) if (parallel)
      for (int64_t I = 0; I < count; ++I) {
        chunk_ranges[I].clear();
        append_ranges(kept_tiles(bounds.data() + I * tiles, tiles), chunk_ranges[I]);
      }
      for (int64_t I = 0; I < count; ++I) {
        const int64_t rows_in_cluster = rows.clusters.starts[first + I + 1] - rows.clusters.starts[first + I];
        for (size_t r = 0; r < chunk_ranges[I].size(); r += 2) {
          truncation.visited_pairs += rows_in_cluster * (chunk_ranges[I][r + 1] - chunk_ranges[I][r]);
        }
        truncation.ranges.insert(truncation.ranges.end(), chunk_ranges[I].begin(), chunk_ranges[I].end());
        truncation.range_offsets.push_back(static_cast<int64_t>(truncation.ranges.size() / 2));
      }
    }
    return truncation;
  }

  // Which tiles of a row cluster to keep, from their mass bounds: the lightest are dropped
  // while their total stays under kBuildMass. Bounds are bucketed by binary exponent (O(L), no
  // sort): whole buckets go from the lightest up; the bucket that would overflow is kept whole
  // (at most twice the kept mass an exact sort would keep).
  // The result is a per-thread buffer, valid until the thread's next call (no allocation per
  // row cluster).
  static const std::vector<char>& kept_tiles(const double* bounds, int64_t count) {
    static constexpr int kLowest = -200, kHighest = 130;  // bucket range (powers of 2); outside it, clamped
    thread_local std::vector<double> bucket_mass;
    thread_local std::vector<char> kept;
    bucket_mass.assign(kHighest - kLowest + 1, 0.0);
    // The binary exponent from the bits (std::ilogb is a library call, a fifth of this loop's time
    // at N = 5,000); subnormal bounds read as -1023, which the clamp sends to the lowest bucket.
    const auto bucket_of = [](double bound) {
      uint64_t bits;
      std::memcpy(&bits, &bound, sizeof bits);
      const int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
      return std::min(kHighest, std::max(kLowest, exponent)) - kLowest;
    };
    for (int64_t J = 0; J < count; ++J) {
      if (bounds[J] > 0) bucket_mass[bucket_of(bounds[J])] += bounds[J];
    }
    int first_kept = static_cast<int>(bucket_mass.size());
    double dropped = 0.0;
    for (int b = 0; b < static_cast<int>(bucket_mass.size()); ++b) {
      if (!(dropped + bucket_mass[b] <= kBuildMass)) {
        first_kept = b;
        break;
      }
      dropped += bucket_mass[b];
    }
    kept.resize(static_cast<size_t>(count));
    for (int64_t J = 0; J < count; ++J) {
      kept[J] = bounds[J] > 0 && bucket_of(bounds[J]) >= first_kept;
    }
    return kept;
  }

  // The kept tiles as column ranges, merged when they are less than kMergeGap apart: a few
  // extra columns cost less than a range's start-up (a tile's max and merge).
  static void append_ranges(const std::vector<char>& kept, std::vector<int64_t>& ranges) {
    const size_t first_range = ranges.size();
    for (size_t J = 0; J < kept.size(); ++J) {
      if (!kept[J]) continue;
      const int64_t begin = static_cast<int64_t>(J) * cpu::kColumnPadding, end = begin + cpu::kColumnPadding;
      if (ranges.size() > first_range && begin <= ranges.back() + kMergeGap) {
        ranges.back() = end;
      } else {
        ranges.push_back(begin);
        ranges.push_back(end);
      }
    }
  }

  int p_;
  double cell_, row_cell_;
  mutable std::map<std::tuple<void*, int64_t, int64_t, int64_t, at::ScalarType, double>, SortedCloud> clouds_;
  mutable uint64_t generations_ = 0;
  mutable std::map<std::pair<void*, void*>, Truncation> truncations_;
  mutable std::map<std::pair<void*, void*>, LastSoftmin> last_softmins_;
  mutable TruncationReport report_;
  mutable double visited_pairs_ = 0, dense_pairs_ = 0;
};

}  // namespace

std::unique_ptr<Reducer> make_multiscale_cpu_reducer(int p, double cell, double row_cell) {
  return std::make_unique<MultiscaleCpuReducer>(p, cell, row_cell);
}

}  // namespace sinkhorn::reduce
