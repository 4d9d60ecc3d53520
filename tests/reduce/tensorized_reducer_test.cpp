// The tensorized backend against the double-precision reference, over awkward sizes, both costs,
// both dtypes and batches.
#include "reduce/cost_matrix.h"
#include "reduce/cpu/dense_reduction.h"
#include "reduce/cpu/online_kernels.h"
#include "reduce/tensorized/tensorized_reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <gtest/gtest.h>

#include <limits>
#include <tuple>

#include "reduce/reduction_gaps.h"
#include "reduce/reference/reference_reducer.h"

namespace sinkhorn::reduce {
namespace {

struct Case {
  int p;
  at::ScalarType dtype;
};

class TensorizedVsReference : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(TensorizedVsReference, AllReductionsAgree) {
  const auto [p, single] = GetParam();
  const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
  // float32: the expansion |x|^2 + |y|^2 - 2x.y costs a few ulps of |x|^2 (centred data here).
  const double tolerance = single ? 2e-5 : 1e-11;
  at::manual_seed(7);
  const auto tensorized = make_tensorized_reducer(p);
  const auto reference = make_reference_reducer(p);
  for (const int64_t batch : {1, 3}) {
    for (const int64_t n : {1, 2, 7, 17}) {
      for (const int64_t m : {1, 7, 16}) {
        for (const int64_t d : {1, 3, 8, 17}) {
          const at::Tensor x = at::randn({batch, n, d}, at::kDouble).to(dtype);
          const at::Tensor y = at::randn({batch, m, d}, at::kDouble).to(dtype);
          const at::Tensor h = at::randn({batch, m}, at::kDouble).to(dtype);
          for (const double eps : {0.05, 1.0}) {
            SCOPED_TRACE(::testing::Message() << "B=" << batch << " N=" << n << " M=" << m << " D=" << d
                                              << " eps=" << eps);
            const testing::ReductionGaps gaps = testing::reduction_gaps(*tensorized, *reference, x, y, h, eps);
            // softmin values are of the size of the costs: compare against that scale.
            EXPECT_LE(gaps.softmin, tolerance * (1 + gaps.softmin_scale) * (1 + 0.1 / eps * (single ? 1 : 0)));
            EXPECT_LE(gaps.gradient, (single ? 1e-3 : 1e-9) * (1 + gaps.gradient_scale));
            EXPECT_LE(gaps.cost, (single ? 1e-3 : 1e-9) * (1 + gaps.cost_scale));
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CostsAndDtypes, TensorizedVsReference,
                         ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
                         [](const auto& info) {
                           return "p" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_float32" : "_float64");
                         });

// The CPU's dense kernels (reduce/cpu/dense_kernels.h), which the tensorized backend runs outside
// autograd, at every SIMD level against the double reference: rows shorter than a vector, tails,
// several tiles, batches, and zero weights (h = -inf) in some columns.
class DenseKernels : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  void TearDown() override { cpu::force_simd_target(-1); }
};

TEST_P(DenseKernels, EverySimdLevelMatchesReference) {
  const auto [p, single] = GetParam();
  const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
  const auto reference = make_reference_reducer(p);
  for (int target = 0; target < cpu::simd_target_count(); ++target) {
    cpu::force_simd_target(target);
    at::manual_seed(19);
    for (const auto& [batch, n, m] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 1}, {2, 7, 3}, {1, 17, 31}, {3, 65, 200}, {1, 130, 1023}}) {
      const auto tensorized = make_tensorized_reducer(p);  // a fresh cost cache per shape
      const at::Tensor x = at::randn({batch, n, 3}, at::kDouble).to(dtype);
      const at::Tensor y = (at::randn({batch, m, 3}, at::kDouble) * 1.5).to(dtype);
      at::Tensor h = at::randn({batch, m}, at::kDouble);
      if (m > 2) h.select(1, 1).fill_(-std::numeric_limits<double>::infinity());
      h = h.to(dtype);
      for (const double eps : {0.01, 1.0}) {
        SCOPED_TRACE(::testing::Message() << cpu::simd_target_name(target) << " B=" << batch << " N=" << n << " M=" << m
                                          << " eps=" << eps);
        const testing::ReductionGaps gaps = testing::reduction_gaps(*tensorized, *reference, x, y, h, eps);
        // The cost matrix's expansion costs a few ulps of |x|^2 in float32 (see above), then the
        // kernel's own exp (2 ulp) and sums.
        EXPECT_LE(gaps.softmin, (single ? 2e-5 : 1e-11) * (1 + gaps.softmin_scale) * (1 + 0.1 / eps * (single ? 1 : 0)));
        EXPECT_LE(gaps.gradient, (single ? 1e-3 : 1e-9) * (1 + gaps.gradient_scale));
        EXPECT_LE(gaps.cost, (single ? 1e-3 : 1e-9) * (1 + gaps.cost_scale));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CostsAndDtypes, DenseKernels, ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
                         [](const auto& info) {
                           return "p" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_float32" : "_float64");
                         });

// The kernel's exponentials themselves: its softmax weights against a double-precision softmax
// of the same C and h, entry by entry relative (a log-sum-exp would hide their errors), at every
// SIMD level.
TEST(DenseKernels, SoftmaxWeightsAreAccurateEntryByEntry) {
  for (int target = 0; target < cpu::simd_target_count(); ++target) {
    cpu::force_simd_target(target);
    at::manual_seed(11);
    const int64_t n = 37, m = 301;
    const at::Tensor cost = at::rand({1, n, m}, at::kDouble) * 3;  // eps = 0.05: weights down to e^-120
    const at::Tensor h = at::randn({1, m}, at::kDouble);
    for (const double eps : {0.05, 0.7}) {
      for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
        SCOPED_TRACE(::testing::Message() << cpu::simd_target_name(target) << " eps " << eps << " " << dtype);
        const at::Tensor c = cost.to(dtype).contiguous(), hs = h.to(dtype).contiguous();
        const at::Tensor expected = at::softmax(hs.to(at::kDouble).unsqueeze(1) - c.to(at::kDouble) / eps, 2);
        const at::Tensor weights = at::empty({1, n, m}, c.options());
        dense_reduce_into(cpu::DenseReduction::softmax_weights, c, hs, eps, weights);
        // Each weight exp(v_ij - max_i) / sum inherits the rounding of its exponent, u (|v_ij| +
        // |max_i|), u the dtype's unit roundoff; the exp and the sum add a few u.
        const double u = dtype == at::kFloat ? 0x1p-24 : 0x1p-53;
        const at::Tensor v = hs.to(at::kDouble).unsqueeze(1) - c.to(at::kDouble) / eps;
        const at::Tensor bound = u * (4 * (v.abs() + std::get<0>(v.max(2, true)).abs()) + 8);
        // Weights under 2^-64 (float32) / 2^-512 (float64) are stored as 0 (dense_kernels.h).
        const double smallest = dtype == at::kFloat ? 0x1p-64 : 0x1p-512;
        const at::Tensor kept = expected > 2 * smallest;
        const at::Tensor excess = ((weights.to(at::kDouble) - expected).abs() / expected / bound).masked_select(kept);
        EXPECT_LT(excess.max().item<double>(), 1.0);
        EXPECT_TRUE((weights.masked_select(expected < smallest / 2) == 0).all().item<bool>());
        // Row factors (the softmin's adjoint, DenseProblem::row_scales): each stored weight is the
        // unscaled one times its row's factor, rounded once; negative and zero factors too.
        at::Tensor factors = at::randn({1, n}, at::kDouble).to(dtype);
        factors[0][3] = 0;
        factors = factors.contiguous();
        const at::Tensor scaled = at::empty({1, n, m}, c.options());
        dense_reduce_into(cpu::DenseReduction::softmax_weights, c, hs, eps, scaled, {}, factors);
        EXPECT_TRUE(at::equal(scaled, weights * factors.unsqueeze(2)));
      }
    }
  }
  cpu::force_simd_target(-1);
}

// The one-pass softmin (DenseProblem::row_shifts, cpu/row_shifts.h) gives the two-pass result for
// any shift: near each row's log-sum-exp one pass; far above or below, or not finite, the row is
// redone in two passes. Tails, batches and an empty batch entry, at every SIMD level.
TEST(DenseKernels, ShiftedOnePassSoftminMatchesTwoPassesForAnyShift) {
  for (int target = 0; target < cpu::simd_target_count(); ++target) {
    cpu::force_simd_target(target);
    for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      at::manual_seed(23);
      const int64_t batch = 3, n = 70, m = 301;
      const at::Tensor cost = (at::rand({batch, n, m}, at::kDouble) * 3).to(dtype).contiguous();
      at::Tensor h = (at::randn({batch, m}, at::kDouble) * 3).to(dtype);
      h[2].fill_(-std::numeric_limits<double>::infinity());  // every weight zero: +inf either way
      h = h.contiguous();
      const double eps = 0.05;
      const at::Tensor two_passes = at::empty({batch, n}, cost.options());
      dense_reduce_into(cpu::DenseReduction::softmin, cost, h, eps, two_passes);
      for (const double offset : {0.0, 0.7, 25.0, 100.0, -100.0, std::numeric_limits<double>::infinity()}) {
        SCOPED_TRACE(::testing::Message() << cpu::simd_target_name(target) << " " << dtype << " offset " << offset);
        const at::Tensor shifts = (two_passes / -eps + offset).contiguous();
        const at::Tensor one_pass = at::empty({batch, n}, cost.options());
        dense_reduce_into(cpu::DenseReduction::softmin, cost, h, eps, one_pass, shifts);
        const at::Tensor finite = two_passes.narrow(0, 0, 2), shifted = one_pass.narrow(0, 0, 2);
        EXPECT_LE((shifted - finite).abs().max().item<double>(),
                  (dtype == at::kFloat ? 2e-6 : 1e-12) * (1 + finite.abs().max().item<double>()));
        EXPECT_TRUE((one_pass[2] == std::numeric_limits<double>::infinity()).all().item<bool>());
      }
    }
  }
  cpu::force_simd_target(-1);
}

// The reducer's next softmin over the same clouds and eps takes the one pass, shifted by the last
// one's: with h moved a little, a lot (past kShiftSpread) or by a weight vanishing, it still agrees
// with the reference.
TEST(TensorizedReducer, RepeatedSoftminsAgreeWithTheReference) {
  at::manual_seed(37);
  const auto tensorized = make_tensorized_reducer(2);
  const auto reference = make_reference_reducer(2);
  const at::Tensor x = at::randn({2, 80, 3}, at::kDouble), y = at::randn({2, 90, 3}, at::kDouble);
  const double eps = 0.1;
  const at::Tensor h = at::randn({2, 90}, at::kDouble);
  at::Tensor vanished = h + 0.2;
  vanished.select(1, 5).fill_(-std::numeric_limits<double>::infinity());
  for (const at::Tensor& next : {h, h + 0.3 + 0.5 * at::rand({2, 90}, at::kDouble), h + 50 * at::rand({2, 90}, at::kDouble),
                                 vanished, h - 7}) {
    EXPECT_LT((tensorized->softmin(x, y, next, eps) - reference->softmin(x, y, next, eps)).abs().max().item<double>(),
              1e-11);
  }
}

// Under autograd on the CPU the backend records its own node (the dense kernel forward): with
// and without autograd the values agree, and rows with every weight zero give +inf in both.
TEST(DenseKernels, AgreeWithTheDifferentiablePathAndEmptyRowsAreInfinite) {
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    at::manual_seed(3);
    const auto tensorized = make_tensorized_reducer(2);
    const at::Tensor x = at::randn({2, 50, 4}, dtype), y = at::randn({2, 40, 4}, dtype);
    at::Tensor h = at::randn({2, 40}, dtype);
    h[1].fill_(-std::numeric_limits<double>::infinity());
    const at::Tensor fused = tensorized->softmin(x, y, h, 0.3);
    const at::Tensor traced = tensorized->softmin(x, y, h.clone().requires_grad_(true), 0.3);
    ASSERT_TRUE(traced.requires_grad());
    EXPECT_TRUE(at::isinf(fused[1]).all().item<bool>() && (fused[1] > 0).all().item<bool>());
    EXPECT_TRUE(at::isinf(traced[1]).all().item<bool>());
    EXPECT_LT((fused[0] - traced[0].detach()).abs().max().item<double>(), dtype == at::kFloat ? 1e-5 : 1e-12);
  }
}

// The recorded softmin's backward (the kernel's scaled softmax weights, then column sums) against
// autograd through ATen's log-sum-exp of the same costs: gradients in x, y and h, a zero weight
// (h = -inf) included; and under create_graph (higher derivatives) the second derivative in x,
// for p = 2 (the p = 1 cost is ATen's cdist, which has no second derivative).
TEST(TensorizedReducer, RecordedSoftminDifferentiatesAsAtensLogSumExp) {
  for (const int p : {1, 2}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      SCOPED_TRACE(::testing::Message() << "p " << p << " " << dtype);
      at::manual_seed(41);
      const double eps = 0.3;
      const at::Tensor x0 = at::randn({2, 30, 3}, dtype), y0 = at::randn({2, 45, 3}, dtype);
      at::Tensor h0 = at::randn({2, 45}, dtype);
      h0.select(1, 4).fill_(-std::numeric_limits<double>::infinity());
      const at::Tensor upstream = at::randn({2, 30}, dtype);
      const auto gradients = [&](bool ours, bool second) {
        const at::Tensor x = x0.clone().requires_grad_(true), y = y0.clone().requires_grad_(true);
        const at::Tensor h = h0.clone().requires_grad_(true);
        const at::Tensor softmin = ours ? make_tensorized_reducer(p)->softmin(x, y, h, eps)
                                        : -eps * at::logsumexp(h.unsqueeze(1) - cost_matrix(x, y, p) / eps, 2);
        std::vector<at::Tensor> first =
            torch::autograd::grad({(softmin * upstream).sum()}, {x, y, h}, {}, /*retain_graph=*/true, second);
        if (second) first.push_back(torch::autograd::grad({(first[0] * first[0]).sum()}, {x})[0]);
        return first;
      };
      const double tolerance = dtype == at::kFloat ? 2e-5 : 1e-12;
      for (const bool second : {false, p == 2}) {
        const std::vector<at::Tensor> ours = gradients(true, second), aten = gradients(false, second);
        for (size_t k = 0; k < aten.size(); ++k) {
          SCOPED_TRACE(::testing::Message() << "create_graph " << second << ", gradient " << k);
          const at::Tensor expected = at::nan_to_num(aten[k]), got = at::nan_to_num(ours[k]);
          EXPECT_LE((got - expected).abs().max().item<double>(), tolerance * (1 + expected.abs().max().item<double>()));
        }
      }
    }
  }
}

TEST(TensorizedCostMatrix, EuclideanCostHasFiniteGradientAtCoincidentPoints) {
  const at::Tensor x = at::randn({1, 4, 3}, at::kDouble).requires_grad_(true);
  const at::Tensor cost = cost_matrix(x, x, 1);
  cost.sum().backward();
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_EQ(at::diagonal(cost[0]).abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace sinkhorn::reduce
