// The multiscale backend's pieces against independent oracles: grid clusters against brute force,
// the truncation bound against the softmax mass it bounds (computed directly in doubles), the
// block-sparse kernels against the reference over exactly the visited columns, and the truncated
// reducer against the reference at scales where it drops most pairs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "reduce/cpu/multiscale_reducer.h"
#include "reduce/cpu/online_kernels.h"
#include "reduce/cpu/online_reducer.h"
#include "reduce/grid_clusters.h"
#include "reduce/reduction_gaps.h"
#include "reduce/reference/reference_kernels.h"
#include "reduce/reference/reference_reducer.h"
#include "sinkhorn/divergence.h"
#include "sinkhorn/error.h"
#include "solver/epsilon_schedule.h"
#include "solver/loss_formulas.h"
#include "solver/multiscale.h"

namespace sinkhorn::reduce {
namespace {

// Runs `body` at every SIMD level this CPU supports, then restores the best one.
template <typename Body>
void at_every_simd_level(Body body) {
  for (int target = 0; target < cpu::simd_target_count(); ++target) {
    cpu::force_simd_target(target);
    SCOPED_TRACE(::testing::Message() << "SIMD " << cpu::simd_target_name(target));
    body();
  }
  cpu::force_simd_target(-1);
}

// The kernels' column layout: y (M, D) transposed to (D, padded), zero past M; h (M) padded
// with -inf (online_kernels.h).
at::Tensor transposed_columns(const at::Tensor& y, int64_t padded) {
  at::Tensor y_t = at::zeros({y.size(1), padded}, y.options());
  y_t.narrow(1, 0, y.size(0)).copy_(y.t());
  return y_t;
}
at::Tensor padded_potentials(const at::Tensor& h, int64_t padded) {
  at::Tensor h_padded = at::full({padded}, -std::numeric_limits<double>::infinity(), h.options());
  h_padded.narrow(0, 0, h.size(0)).copy_(h);
  return h_padded;
}

// A block-sparse problem's row blocks (online_kernels.h): block k holds rows
// [row_starts[k], row_starts[k + 1]) and visits the column ranges with indices
// [range_offsets[k], range_offsets[k + 1]) of `ranges` (begin, end pairs).
template <typename T>
void attach_row_blocks(cpu::OnlineProblem<T>& problem, const std::vector<int64_t>& row_starts,
                       const std::vector<int64_t>& range_offsets, const std::vector<int64_t>& ranges) {
  problem.row_block_starts = row_starts.data();
  problem.range_offsets = range_offsets.data();
  problem.ranges = ranges.data();
  problem.row_blocks = static_cast<int64_t>(row_starts.size()) - 1;
}

TEST(GridClusters, GroupPointsByCellWithCentroidsWeightsAndRadii) {
  at::manual_seed(5);
  const at::Tensor points = at::randn({500, 3}, at::kDouble);
  at::Tensor weights = at::rand({500}, at::kDouble);
  weights.narrow(0, 0, 50).zero_();  // some weightless points
  const double cell = 0.4;
  const GridClusters clusters = cluster_on_grid(points, weights, cell);
  ASSERT_EQ(clusters.starts.front(), 0);
  ASSERT_EQ(clusters.starts.back(), 500);
  EXPECT_EQ(std::set<int64_t>(clusters.order.begin(), clusters.order.end()).size(), 500u);  // a permutation
  const at::Tensor lowest = std::get<0>(points.min(0));
  const at::Tensor cells = ((points - lowest) / cell).floor();
  std::set<std::vector<double>> seen;
  for (int64_t c = 0; c < clusters.size(); ++c) {
    const at::Tensor members =
        at::tensor(std::vector<int64_t>(clusters.order.begin() + clusters.starts[c],
                                        clusters.order.begin() + clusters.starts[c + 1]), at::kLong);
    ASSERT_GT(members.numel(), 0);
    // One cell per cluster, and no cell split over two clusters.
    const at::Tensor member_cells = cells.index_select(0, members);
    EXPECT_TRUE(at::equal(member_cells, member_cells[0].expand_as(member_cells)));
    const at::Tensor cell_of_cluster = member_cells[0];
    const std::vector<double> key(cell_of_cluster.data_ptr<double>(), cell_of_cluster.data_ptr<double>() + 3);
    EXPECT_TRUE(seen.insert(key).second);
    const at::Tensor w = weights.index_select(0, members), p = points.index_select(0, members);
    EXPECT_NEAR(clusters.weights[c].item<double>(), w.sum().item<double>(), 1e-12);
    const at::Tensor centre = w.sum().item<double>() > 0 ? (w.unsqueeze(1) * p).sum(0) / w.sum() : p.mean(0);
    EXPECT_LT((clusters.centres[c] - centre).abs().max().item<double>(), 1e-12);
    const double radius = (p - clusters.centres[c]).norm(2, 1).max().item<double>();
    EXPECT_GE(clusters.radii[c], radius);
    EXPECT_LE(clusters.radii[c], radius * (1 + 1e-5) + 1e-11);
    // The box of offsets holds the points and touches them on every side.
    const at::Tensor offsets = p - clusters.centres[c];
    const at::Tensor low = std::get<0>(offsets.min(0)), high = std::get<0>(offsets.max(0));
    for (int64_t a = 0; a < 3; ++a) {
      const double lo = clusters.low_offsets[c * 3 + a], hi = clusters.high_offsets[c * 3 + a];
      EXPECT_LE(lo, low[a].item<double>());
      EXPECT_GE(lo, low[a].item<double>() * (1 + 1e-5) - 1e-11);
      EXPECT_GE(hi, high[a].item<double>());
      EXPECT_LE(hi, high[a].item<double>() * (1 + 1e-5) + 1e-11);
    }
  }
}

TEST(GridClusters, RejectsBadCellsAndGridsTooFine) {
  const at::Tensor points = at::rand({10, 2}, at::kDouble), weights = at::ones({10}, at::kDouble);
  EXPECT_THROW(cluster_on_grid(points, weights, 0.0), sinkhorn::Error);
  EXPECT_THROW(cluster_on_grid(points, weights, std::nan("")), sinkhorn::Error);
  EXPECT_THROW(cluster_on_grid(at::rand({10, 40}, at::kDouble) * 1e6, weights, 1e-3), sinkhorn::Error);
}

// log sum_{j in J} softmax_j(h - C(x_i, .) / eps) in doubles, for one row and one column range.
double log_block_mass(const double* x, const at::Tensor& y, const at::Tensor& h, int64_t begin, int64_t end,
                      int p, double eps) {
  const int64_t m = y.size(0), d = y.size(1);
  std::vector<double> v(static_cast<size_t>(m));
  double largest = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < m; ++j) {
    v[j] = h[j].item<double>() - reference::cost(x, y[j].data_ptr<double>(), d, p) / eps;
    largest = std::max(largest, v[j]);
  }
  double total = 0, block = 0;
  for (int64_t j = 0; j < m; ++j) {
    total += std::exp(v[j] - largest);
    if (j >= begin && j < end) block += std::exp(v[j] - largest);
  }
  return std::log(block) - std::log(total);
}

TEST(TruncationBounds, BoundTheSoftmaxMassOfEveryRowInTheCluster) {
  at_every_simd_level([&] {
    for (const int p : {1, 2}) {
      for (const double eps : {0.02, 0.2}) {
        SCOPED_TRACE(::testing::Message() << "p " << p << " eps " << eps);
        at::manual_seed(7 + p);
        const at::Tensor x = at::randn({300, 2}, at::kDouble) * 0.5;
        const at::Tensor y = at::randn({200, 2}, at::kDouble) * 0.4 + 0.3;  // columns, already grouped below
        const at::Tensor h = at::randn({200}, at::kDouble);
        const GridClusters rows = cluster_on_grid(x, at::ones({300}, at::kDouble), 0.3);
        // Columns in tiles of kColumnPadding; the last tile ends in padding (h = -inf).
        const int64_t padded = 208, tiles = padded / cpu::kColumnPadding;
        const at::Tensor y_t = transposed_columns(y, padded), h_padded = padded_potentials(h, padded);
        // s and t at the centres, from the reference.
        const int64_t clusters = rows.size();
        const at::Tensor centres = rows.centres.contiguous();
        at::Tensor softmins = at::empty({clusters}, at::kDouble), gradients = at::empty({clusters, 2}, at::kDouble);
        const at::Tensor yc = y.contiguous(), hc = h.contiguous();
        reference::softmin(centres.data_ptr<double>(), yc.data_ptr<double>(), hc.data_ptr<double>(), clusters, 200, 2,
                           p, eps, softmins.data_ptr<double>());
        reference::softmax_cost_gradient(centres.data_ptr<double>(), yc.data_ptr<double>(), hc.data_ptr<double>(),
                                         clusters, 200, 2, p, eps, gradients.data_ptr<double>());
        const at::Tensor log_sums = (softmins / -eps).contiguous();
        const at::Tensor barycentres = (centres - gradients).contiguous();
        std::vector<double> out(static_cast<size_t>(clusters * tiles));
        cpu::TruncationBoundProblem<double> problem;
        problem.centres = centres.data_ptr<double>();
        problem.barycentres = barycentres.data_ptr<double>();
        problem.radii = rows.radii.data();
        problem.low_offsets = rows.low_offsets.data();
        problem.high_offsets = rows.high_offsets.data();
        problem.log_sums = log_sums.data_ptr<double>();
        problem.clusters = clusters;
        problem.y_t = y_t.data_ptr<double>();
        problem.h = h_padded.data_ptr<double>();
        problem.m_padded = padded;
        problem.d = 2;
        problem.p = p;
        problem.eps = eps;
        problem.out = out.data();
        problem.threads = at::get_num_threads();  // two in the reduce.two_threads run
        cpu::truncation_bounds(problem);

        const at::Tensor xc = x.contiguous();
        double tightest = std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < clusters; ++c) {
          for (int64_t J = 0; J < tiles; ++J) {
            const double bound = std::log(out[c * tiles + J]);
            for (int64_t k = rows.starts[c]; k < rows.starts[c + 1]; ++k) {
              const double actual = log_block_mass(xc[rows.order[k]].data_ptr<double>(), yc, hc, J * cpu::kColumnPadding,
                                                   std::min<int64_t>(200, (J + 1) * cpu::kColumnPadding), p, eps);
              if (actual < -80) continue;  // below the kernel's e^-87 clamp: counted as 0 there
              ASSERT_LE(actual, bound + 1e-9) << "cluster " << c << " block " << J << " row " << rows.order[k];
              tightest = std::min(tightest, bound - actual);
            }
          }
        }
        // The bound is attained up to little slack somewhere (it is not vacuous).
        EXPECT_LT(tightest, 1.0);
      }
    }
  });
}

TEST(BlockSparseKernels, VisitExactlyTheGivenColumnRanges) {
  at_every_simd_level([&] {
    for (const bool single : {false, true}) {
      at::manual_seed(13);
      const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
      const int64_t n = 40, m = 100, d = 3, padded = 112;
      const at::Tensor x = at::randn({n, d}, dtype), y = at::randn({m, d}, dtype), h = at::randn({m}, dtype);
      const at::Tensor y_t = transposed_columns(y, padded), h_padded = padded_potentials(h, padded);
      // Three row blocks: [0, 10) over columns [16, 48) and [80, 112); [10, 25) over [0, 16);
      // [25, 40) over everything.
      const std::vector<int64_t> row_starts{0, 10, 25, 40}, range_offsets{0, 2, 3, 4};
      const std::vector<int64_t> ranges{16, 48, 80, 112, 0, 16, 0, 112};
      for (const int p : {1, 2}) {
        at::Tensor out = at::empty({n}, dtype);
        const auto run = [&](auto tag) {
          using T = decltype(tag);
          cpu::OnlineProblem<T> problem = online_problem<T>(cpu::Reduction::softmin, x.unsqueeze(0), y_t.unsqueeze(0),
                                                            h_padded.unsqueeze(0), m, p, 0.5, out);
          attach_row_blocks(problem, row_starts, range_offsets, ranges);
          cpu::online_reduce(problem);
        };
        single ? run(float{}) : run(double{});
        const at::Tensor xd = x.to(at::kDouble).contiguous(), yd = y.to(at::kDouble).contiguous();
        const at::Tensor hd = h.to(at::kDouble).contiguous();
        for (int64_t i = 0; i < n; ++i) {
          // The oracle: the reference softmin over the visited columns only.
          std::vector<double> ys, hs;
          const int64_t block = i < 10 ? 0 : i < 25 ? 1 : 2;
          for (int64_t r = range_offsets[block]; r < range_offsets[block + 1]; ++r) {
            for (int64_t j = ranges[2 * r]; j < std::min(m, ranges[2 * r + 1]); ++j) {
              for (int64_t k = 0; k < d; ++k) ys.push_back(yd[j][k].item<double>());
              hs.push_back(hd[j].item<double>());
            }
          }
          double expected = 0;
          reference::softmin(xd[i].data_ptr<double>(), ys.data(), hs.data(), 1, static_cast<int64_t>(hs.size()), d, p,
                             0.5, &expected);
          EXPECT_NEAR(out[i].item<double>(), expected, (single ? 2e-6 : 1e-12) * (1 + std::abs(expected)))
              << "row " << i << " p " << p;
        }
      }
    }
  });
}

// The one-pass softmin (OnlineProblem::row_shifts) gives the two-pass result for any shift: near
// the row's log-sum-exp it runs one pass; far above (sum < 2^-60), far below (sum > 2^60) or not
// finite, the row is redone in two passes. Dense rows and block-sparse ones.
TEST(BlockSparseKernels, ShiftedOnePassSoftminMatchesTwoPassesForAnyShift) {
  at_every_simd_level([&] {
    for (const bool single : {false, true}) {
      at::manual_seed(31);
      const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
      const int64_t n = 40, m = 300, d = 3, padded = 304;
      const at::Tensor x = at::randn({n, d}, dtype), y = at::randn({m, d}, dtype) * 2;
      const at::Tensor h = at::randn({m}, dtype) * 3;
      const at::Tensor y_t = transposed_columns(y, padded), h_padded = padded_potentials(h, padded);
      const std::vector<int64_t> row_starts{0, 15, 40}, range_offsets{0, 2, 3};
      const std::vector<int64_t> ranges{0, 48, 96, 304, 16, 288};
      for (const int p : {1, 2}) {
        for (const bool sparse : {false, true}) {
          const auto run = [&](const at::Tensor& shifts) {
            at::Tensor out = at::empty({n}, dtype);
            const auto go = [&](auto tag) {
              using T = decltype(tag);
              cpu::OnlineProblem<T> problem = online_problem<T>(cpu::Reduction::softmin, x.unsqueeze(0),
                                                                y_t.unsqueeze(0), h_padded.unsqueeze(0), m, p, 0.05, out);
              if (shifts.defined()) problem.row_shifts = shifts.data_ptr<T>();
              if (sparse) attach_row_blocks(problem, row_starts, range_offsets, ranges);
              cpu::online_reduce(problem);
            };
            single ? go(float{}) : go(double{});
            return out;
          };
          const at::Tensor two_passes = run(at::Tensor());
          const at::Tensor log_sums = two_passes / -0.05;  // each row's log-sum-exp
          for (const double offset : {0.0, 0.7, 25.0, 100.0, -100.0, std::numeric_limits<double>::infinity()}) {
            SCOPED_TRACE(::testing::Message() << "float32 " << single << " p " << p << " sparse " << sparse
                                              << " shift offset " << offset);
            const at::Tensor one_pass = run((log_sums + offset).to(dtype).contiguous());
            const double tolerance = single ? 2e-6 : 1e-12;
            EXPECT_LE((one_pass - two_passes).abs().max().item<double>(),
                      tolerance * (1 + two_passes.abs().max().item<double>()));
          }
        }
      }
    }
  });
}

TEST(BlockSparseKernels, WeightedReductionsAlsoGiveTheSoftminInTheSamePass) {
  at::manual_seed(29);
  const int64_t n = 33, m = 70, d = 3, padded = 80;
  const at::Tensor x = at::randn({n, d}, at::kDouble), y = at::randn({m, d}, at::kDouble);
  const at::Tensor h = at::randn({m}, at::kDouble);
  const at::Tensor y_t = transposed_columns(y, padded), h_padded = padded_potentials(h, padded);
  for (const int p : {1, 2}) {
    at::Tensor gradient = at::empty({n, d}, at::kDouble), fused = at::empty({n}, at::kDouble);
    cpu::OnlineProblem<double> problem = online_problem<double>(
        cpu::Reduction::softmax_cost_gradient, x.unsqueeze(0), y_t.unsqueeze(0), h_padded.unsqueeze(0), m, p, 0.3, gradient);
    problem.softmin_out = fused.data_ptr<double>();
    cpu::online_reduce(problem);
    at::Tensor expected = at::empty({n}, at::kDouble), expected_gradient = at::empty({n, d}, at::kDouble);
    const at::Tensor yc = y.contiguous(), hc = h.contiguous();
    reference::softmin(x.data_ptr<double>(), yc.data_ptr<double>(), hc.data_ptr<double>(), n, m, d, p, 0.3,
                       expected.data_ptr<double>());
    reference::softmax_cost_gradient(x.data_ptr<double>(), yc.data_ptr<double>(), hc.data_ptr<double>(), n, m, d, p,
                                     0.3, expected_gradient.data_ptr<double>());
    EXPECT_LT((fused - expected).abs().max().item<double>(), 1e-12) << "p " << p;
    EXPECT_LT((gradient - expected_gradient).abs().max().item<double>(), 1e-12) << "p " << p;
  }
}

TEST(MultiscaleReducer, AgreesWithReferenceWhileSkippingMostPairs) {
  // Row clusters of the columns' cell, and of half of it (solver::refined_row_scale): the bound
  // holds for any row clusters, and the finer ones skip more pairs.
  for (const double row_cell : {0.15, 0.075}) {
  for (const int p : {1, 2}) {
    for (const bool single : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "p " << p << (single ? " float32" : " float64") << ", row cell " << row_cell);
      at::manual_seed(17);
      const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
      const at::Tensor x = (at::rand({2, 1500, 3}, at::kDouble) * 2).to(dtype);
      const at::Tensor y = (at::rand({2, 1200, 3}, at::kDouble) * 2).to(dtype);
      // Smooth potentials and a few weightless columns, as in a solve.
      at::Tensor h = (y.select(2, 0) * 3 - y.select(2, 1)).to(dtype);
      h.narrow(1, 0, 5).fill_(-std::numeric_limits<double>::infinity());
      const double eps = p == 2 ? 0.005 : 0.01;
      const auto multiscale = make_multiscale_cpu_reducer(p, 0.15, row_cell);
      const auto reference = make_reference_reducer(p);
      const testing::ReductionGaps gaps = testing::reduction_gaps(*multiscale, *reference, x, y, h, eps);
      // Truncation changes softmin by at most eps * kTruncatedMass; the rest is float rounding.
      const double u = single ? 3e-6 : 1e-11;
      EXPECT_LT(gaps.softmin, u * (gaps.softmin_scale + eps) + eps * kTruncatedMass);
      EXPECT_LT(gaps.gradient, u * gaps.gradient_scale + 4 * kTruncatedMass * 4);
      EXPECT_LT(gaps.cost, u * gaps.cost_scale + 4 * kTruncatedMass * 4);
      const auto report = multiscale->truncation();
      ASSERT_TRUE(report.has_value());
      EXPECT_LT(report->visited_fraction, 0.5) << "truncation should skip most pairs at this eps";
      EXPECT_GE(report->rebuilds, 2);  // one per batch entry at least
      if (row_cell < 0.15) {
        const auto coarse_rows = make_multiscale_cpu_reducer(p, 0.15);
        testing::reduction_gaps(*coarse_rows, *reference, x, y, h, eps);
        EXPECT_LT(report->visited_fraction, coarse_rows->truncation()->visited_fraction);
      }
    }
  }
  }
}

// The row cell is halved exactly where the halved cells hold kHalvedRowCellOccupancy points on
// average over the points (sum of n_c^2 / N), in both clouds; counted here by hashing each point's
// cell, independently of the grid clusters.
TEST(MultiscaleCells, RowCellsAreHalvedWhereTheyStayCrowded) {
  const auto occupancy = [](const at::Tensor& points, double side) {
    std::map<std::tuple<int64_t, int64_t, int64_t>, int64_t> counts;
    const at::Tensor c = points.contiguous();
    for (int64_t i = 0; i < c.size(0); ++i) {
      const double* q = c.data_ptr<double>() + 3 * i;
      ++counts[{static_cast<int64_t>(std::floor(q[0] / side)), static_cast<int64_t>(std::floor(q[1] / side)),
                static_cast<int64_t>(std::floor(q[2] / side))}];
    }
    double squares = 0;
    for (const auto& [cell, n] : counts) squares += static_cast<double>(n) * static_cast<double>(n);
    return squares / static_cast<double>(c.size(0));
  };
  at::manual_seed(29);
  const at::Tensor dense = at::rand({1, 20000, 3}, at::kDouble), sparse = at::rand({1, 2000, 3}, at::kDouble);
  for (const double cell : {0.2, 0.1}) {
    for (const auto& [x, y] : {std::pair{dense, dense + 0.01}, std::pair{dense, sparse}}) {
      const double least = std::min(occupancy(x[0], cell / 2), occupancy(y[0], cell / 2));
      const double expected = least >= solver::kHalvedRowCellOccupancy ? cell / 2 : cell;
      EXPECT_EQ(solver::refined_row_scale(cell, x, y), expected) << "cell " << cell << ", least " << least;
    }
  }
  // Both outcomes occur above: 20,000 points in cells of 0.1 hold ~20, halved ~2.5.
  EXPECT_EQ(solver::refined_row_scale(0.2, dense, dense + 0.01), 0.1);
  EXPECT_EQ(solver::refined_row_scale(0.1, dense, dense + 0.01), 0.1);
}

TEST(MultiscaleReducer, RecomputesItsBlocksWhenThePotentialsMove) {
  at::manual_seed(19);
  const at::Tensor x = at::rand({1, 2000, 2}, at::kDouble), y = at::rand({1, 2000, 2}, at::kDouble);
  const auto multiscale = make_multiscale_cpu_reducer(2, 0.05);
  const auto reference = make_reference_reducer(2);
  const double eps = 0.002;
  const at::Tensor h = at::zeros({1, 2000}, at::kDouble);
  multiscale->softmin(x, y, h, eps);
  multiscale->softmin(x, y, h + 0.3, eps);  // a constant shift changes no softmax: blocks kept
  EXPECT_EQ(multiscale->truncation()->rebuilds, 1);
  // A small wobble keeps the blocks, and this softmin takes the one pass shifted by the last one's.
  const at::Tensor wobbled = h + 0.3 + 0.5 * at::rand({1, 2000}, at::kDouble);
  EXPECT_LT((multiscale->softmin(x, y, wobbled, eps) - reference->softmin(x, y, wobbled, eps)).abs().max().item<double>(),
            1e-10 + eps * kTruncatedMass);
  EXPECT_EQ(multiscale->truncation()->rebuilds, 1);
  // A tilt of 40 units across the square moves every row's plan: a stale block set would miss it.
  const at::Tensor tilted = 40 * y.select(2, 0);
  const at::Tensor expected = reference->softmin(x, y, tilted, eps);
  const at::Tensor actual = multiscale->softmin(x, y, tilted, eps);
  EXPECT_EQ(multiscale->truncation()->rebuilds, 2);
  EXPECT_LT((actual - expected).abs().max().item<double>(), 1e-10 + eps * kTruncatedMass);
}

// Regression: the caches were keyed by address plus the coordinates' sum, which a permutation in
// place keeps, and the next reduction used the old clustering (2e-3 off). They follow the tensor's
// version counter now, which every in-place change advances.
TEST(MultiscaleReducer, SeesPointsPermutedInPlace) {
  at::manual_seed(29);
  at::Tensor x = at::rand({1, 2000, 2}, at::kDouble);
  const at::Tensor y = at::rand({1, 1500, 2}, at::kDouble), h = (3 * y.select(2, 0)).contiguous();
  const double eps = 0.002;
  const auto multiscale = make_multiscale_cpu_reducer(2, 0.05);
  const auto reference = make_reference_reducer(2);
  multiscale->softmin(x, y, h, eps);
  const at::Tensor permuted = x.index_select(1, at::randperm(2000, at::kLong));
  x.copy_(permuted);  // same storage, same sum of coordinates, new order
  const at::Tensor actual = multiscale->softmin(x, y, h, eps);
  EXPECT_LT((actual - reference->softmin(x, y, h, eps)).abs().max().item<double>(), 1e-10 + eps * kTruncatedMass);
  EXPECT_EQ(multiscale->truncation()->rebuilds, 2);  // the clusters and the blocks were rebuilt
}

}  // namespace
}  // namespace sinkhorn::reduce

namespace sinkhorn {
namespace {

// The whole multiscale solve (coarse start + truncated sweeps + envelope gradients) against the
// online backend, which visits every pair, on clouds large enough for truncation to matter.
TEST(MultiscaleDivergence, MatchesTheOnlineBackendValueAndGradient) {
  for (const int p : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << "p " << p);
    at::manual_seed(23);
    const at::Tensor x = at::randn({1500, 3}, at::kDouble) * 0.5;
    const at::Tensor y = at::randn({1200, 3}, at::kDouble) * 0.3 + 0.3;
    SinkhornOptions options;
    options.p = p;
    options.blur = p == 2 ? 0.05 : 0.015;
    options.tolerance = 1e-5;
    options.max_iterations = 5000;
    const auto solve = [&](Backend backend, at::Tensor& gradient) {
      options.backend = backend;
      const at::Tensor points = x.clone().requires_grad_(true);
      const DivergenceResult result = divergence_with_details(at::Tensor(), points, at::Tensor(), y, options);
      result.value.backward();
      gradient = points.grad();
      return result;
    };
    at::Tensor online_gradient, multiscale_gradient;
    const DivergenceResult online = solve(Backend::online, online_gradient);
    const DivergenceResult multiscale = solve(Backend::multiscale, multiscale_gradient);
    ASSERT_TRUE(online.diagnostics.converged && multiscale.diagnostics.converged);
    EXPECT_EQ(multiscale.diagnostics.backend, "multiscale");
    // p = 1's Lipschitz bound is looser than p = 2's tangent bound (docs/numerics.md). The
    // fraction is over the reductions run: once the symmetric problems (near-diagonal plans, the
    // most truncated) converge they stop, and OT(a, b)'s reductions weigh more.
    EXPECT_LT(multiscale.diagnostics.visited_pairs_fraction, p == 2 ? 0.6 : 0.9);
    std::cout << "[ VISITED  ] p = " << p << ": " << multiscale.diagnostics.visited_pairs_fraction
              << " of the pairs, " << multiscale.diagnostics.iterations << " vs " << online.diagnostics.iterations
              << " sweeps\n";
    EXPECT_GT(multiscale.diagnostics.truncation_rebuilds, 0);
    // The value is second order in the marginal error, gradients first order (both under 1e-5).
    const double value = online.value.item<double>();
    EXPECT_NEAR(multiscale.value.item<double>(), value, 1e-7 * std::abs(value));
    const double scale = online_gradient.abs().max().item<double>();
    EXPECT_LT((multiscale_gradient - online_gradient).abs().max().item<double>(), 1e-3 * scale);
  }
}

// The coarse plain rate carried to the fine eps: 1 - rate proportional to eps, over at most a
// factor kSmallestCarriedEpsRatio, nothing from a rate that carries no information.
TEST(CoarseToFineStart, CarriesThePlainRateToTheFineEps) {
  EXPECT_NEAR(*solver::fine_plain_rate(0.8, 0.004, 0.002), 1.0 - 0.2 * 0.5, 1e-15);
  EXPECT_NEAR(*solver::fine_plain_rate(0.8, 0.004, 0.001), 1.0 - 0.2 * 0.25, 1e-15);
  // A single coarse eps far above the fine one: the extrapolation stops at the bound, so the
  // omega it gives stays that of rate 0.95 (1.63), not near the cap (1.98) it would reach.
  EXPECT_NEAR(*solver::fine_plain_rate(0.8, 1.0, 1e-4), 1.0 - 0.2 * solver::kSmallestCarriedEpsRatio, 1e-15);
  EXPECT_FALSE(solver::fine_plain_rate(std::nullopt, 0.004, 0.002));
  EXPECT_FALSE(solver::fine_plain_rate(1.0, 0.004, 0.002));
  EXPECT_FALSE(solver::fine_plain_rate(0.0, 0.004, 0.002));
  EXPECT_FALSE(solver::fine_plain_rate(std::numeric_limits<double>::quiet_NaN(), 0.004, 0.002));
}

// The coarse solve's scheme for OT(a, b) carried into the fine loop (multiscale.h, CoarseStart).
// Where the coarse loop ends on alternating updates (a cube against a blob; the cube against a
// copy moved by a fifth of the blur), the fine loop that starts alternating from the coarse rate
// reaches the same value in fewer sweeps than the one that tries averaged updates first; a copy
// moved by a fiftieth of the blur, where averaged updates win, carries no choice.
TEST(CoarseToFineStart, HandsTheCoarseSchemeToTheFineLoop) {
  at::manual_seed(5);
  const auto cloud = [](const at::Tensor& points) {
    const at::Tensor weights = at::full({1, points.size(0)}, 1.0 / static_cast<double>(points.size(0)), points.options());
    return solver::Cloud{points.unsqueeze(0), weights, weights.log()};
  };
  const double blur = 0.05, diameter = std::sqrt(3.0);
  const double cell = solver::default_cluster_scale(diameter, blur, 3, 2000);
  solver::LoopSettings settings;
  settings.epsilons = solver::epsilon_schedule(2, diameter, blur, 0.5);
  settings.tolerance = 1e-5;
  const at::Tensor x = at::rand({2000, 3}, at::kDouble);
  const solver::Cloud a = cloud(x);
  const auto check = [&](const at::Tensor& y, bool alternating) {
    const solver::Cloud b = cloud(y);
    solver::DualState start_state;
    const solver::CoarseStart start = solver::coarse_to_fine_start(a, b, settings, 2, cell, start_state);
    ASSERT_LT(start.epsilons.size(), settings.epsilons.size());
    ASSERT_EQ(start.alternating_plain_rate.has_value(), alternating);
    if (!alternating) return;
    EXPECT_GT(*start.alternating_plain_rate, 0.0);
    EXPECT_LT(*start.alternating_plain_rate, 1.0);
    const std::unique_ptr<reduce::Reducer> reducer = reduce::make_reducer(Backend::multiscale, 2, a.points, b.points, cell);
    const auto fine_solve = [&](std::optional<double> plain_rate, double& value) {
      solver::LoopSettings fine = settings;
      fine.epsilons = start.epsilons;
      fine.warm_start = true;
      fine.alternating_plain_rate = plain_rate;
      solver::DualState state = start_state;
      const solver::LoopReport report = solver::sinkhorn_loop(*reducer, a, b, fine, state);
      EXPECT_TRUE(report.converged);
      value = solver::sinkhorn_loss_value(Loss::divergence, *reducer, a, b, state, fine.epsilons.back(), std::nullopt)
                  .item<double>();
      return report.iterations;
    };
    double hinted_value = 0, plain_value = 0;
    const int hinted = fine_solve(start.alternating_plain_rate, hinted_value);
    const int plain = fine_solve(std::nullopt, plain_value);
    std::cout << "[ SWEEPS   ] fine loop: " << hinted << " starting alternating, " << plain << " choosing\n";
    EXPECT_LT(hinted, plain);
    EXPECT_NEAR(hinted_value, plain_value, 1e-6 * std::abs(plain_value));
  };
  {
    SCOPED_TRACE("a blob apart");
    check(0.6 + 0.15 * at::randn({2000, 3}, at::kDouble), true);
  }
  {
    SCOPED_TRACE("a copy moved by blur / 5");
    check(x + 0.01 * at::randn({2000, 3}, at::kDouble), true);
  }
  {
    SCOPED_TRACE("a copy moved by blur / 50");
    check(x + 0.001 * at::randn({2000, 3}, at::kDouble), false);
  }
}

}  // namespace
}  // namespace sinkhorn
