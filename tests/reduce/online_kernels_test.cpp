// The online CPU kernels at every SIMD level this machine supports against the double-precision
// reference, over awkward sizes (tails of tiles and vectors) and dimensions.
#include "reduce/cpu/online_kernels.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <iostream>
#include <limits>
#include <thread>
#include <tuple>

#include "reduce/cpu/online_reducer.h"
#include "reduce/reduction_gaps.h"
#include "reduce/reference/reference_reducer.h"
#include "reduce/cost_matrix.h"
#include "reduce/tensorized/tensorized_reducer.h"

namespace sinkhorn::reduce {
namespace {

struct Sizes {
  int64_t n, m, d;
};

// Every (N, M) pair of the issue with small D, every D with one awkward (N, M), and D = 784.
std::vector<Sizes> awkward_sizes() {
  std::vector<Sizes> sizes;
  for (const int64_t n : {1, 2, 7, 17, 1000, 1023})
    for (const int64_t m : {1, 2, 7, 17, 1000, 1023}) sizes.push_back({n, m, n * m > 100000 ? 3 : 2});
  for (const int64_t d : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64}) sizes.push_back({17, 1023, d});
  sizes.push_back({7, 1000, 784});
  return sizes;
}

class OnlineKernels : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  void TearDown() override { cpu::force_simd_target(-1); }
};

TEST_P(OnlineKernels, EverySimdLevelMatchesReference) {
  const auto [p, single] = GetParam();
  const at::ScalarType dtype = single ? at::kFloat : at::kDouble;
  const auto online = make_online_cpu_reducer(p);
  const auto reference = make_reference_reducer(p);
  ASSERT_GE(cpu::simd_target_count(), 1);
  std::string targets;
  for (int target = 0; target < cpu::simd_target_count(); ++target) targets += std::string(" ") + cpu::simd_target_name(target);
  RecordProperty("simd_targets", targets);
  std::cout << "[ SIMD     ] levels:" << targets << "\n";
  for (int target = 0; target < cpu::simd_target_count(); ++target) {
    cpu::force_simd_target(target);
    at::manual_seed(51);
    for (const Sizes& s : awkward_sizes()) {
      const at::Tensor x = at::randn({1, s.n, s.d}, at::kDouble);
      const at::Tensor y = at::randn({1, s.m, s.d}, at::kDouble) * 1.5;
      const at::Tensor h = at::randn({1, s.m}, at::kDouble);
      for (const double eps : {0.01, 1.0}) {
        SCOPED_TRACE(::testing::Message() << cpu::simd_target_name(target) << " N=" << s.n << " M=" << s.m
                                          << " D=" << s.d << " eps=" << eps);
        const at::Tensor xs = x.to(dtype), ys = y.to(dtype), hs = h.to(dtype);
        // Oracle on the same (rounded) inputs, so only the kernel's arithmetic is compared.
        const testing::ReductionGaps gaps = testing::reduction_gaps(*online, *reference, xs, ys, hs, eps);
        // 1e-5 relative in float32 (the bar), on the scale of the costs C/eps ~ |softmin|/eps.
        EXPECT_LE(gaps.softmin, (single ? 1e-5 : 1e-12) * (gaps.softmin_scale + eps));
        // The weighted means are in the units of the points (gradient) and of the costs.
        EXPECT_LE(gaps.gradient, (single ? 1e-4 : 1e-11) * (1 + gaps.gradient_scale));
        EXPECT_LE(gaps.cost, (single ? 1e-4 : 1e-11) * (1 + gaps.cost_scale));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CostsAndDtypes, OnlineKernels,
                         ::testing::Combine(::testing::Values(1, 2), ::testing::Bool()),
                         [](const auto& info) {
                           return "p" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_float32" : "_float64");
                         });

TEST(OnlineKernels, AgreesWithTensorizedInFloat32AndHandlesZeroWeightsAndBatches) {
  at::manual_seed(52);
  for (const int p : {1, 2}) {
    const at::Tensor x = at::randn({3, 200, 5}), y = at::randn({3, 150, 5});
    at::Tensor h = at::randn({3, 150});
    h.index_put_({at::indexing::Slice(), at::indexing::Slice(0, 10)}, -std::numeric_limits<float>::infinity());
    const at::Tensor expected = make_tensorized_reducer(p)->softmin(x, y, h, 0.1);
    const at::Tensor actual = make_online_cpu_reducer(p)->softmin(x, y, h, 0.1);
    EXPECT_TRUE(at::isfinite(actual).all().item<bool>());
    // 1e-5 relative to the scale of the values (softmin crosses zero: no pointwise ratio).
    EXPECT_LE((actual - expected).abs().max().item<double>(), 1e-5 * expected.abs().max().item<double>());
  }
}

// The reducer's next softmin over the same clouds and eps takes the one pass, shifted by the last
// one's (row_shifts.h), in the streaming kernels (D = 3) and the blocked ones (D = 20): with h moved
// a little, a lot (past kShiftSpread), by a vanished weight, or after the points changed in place,
// it agrees with the reference.
TEST(OnlineKernels, RepeatedSoftminsAgreeWithTheReference) {
  at::manual_seed(41);
  for (const int64_t d : {3, 20}) {
    const auto online = make_online_cpu_reducer(2);
    const auto reference = make_reference_reducer(2);
    at::Tensor x = at::randn({2, 150, d}, at::kDouble);
    const at::Tensor y = at::randn({2, 170, d}, at::kDouble);
    const double eps = 0.2;
    const at::Tensor h = at::randn({2, 170}, at::kDouble);
    at::Tensor vanished = h + 0.2;
    vanished.select(1, 5).fill_(-std::numeric_limits<double>::infinity());
    for (const at::Tensor& next : {h, h + 0.3 + 0.5 * at::rand({2, 170}, at::kDouble),
                                   h + 50 * at::rand({2, 170}, at::kDouble), vanished, h - 7}) {
      SCOPED_TRACE(::testing::Message() << "D " << d);
      EXPECT_LT((online->softmin(x, y, next, eps) - reference->softmin(x, y, next, eps)).abs().max().item<double>(),
                1e-10);
    }
    x.mul_(1.1);  // in place: the last softmin is not this one's
    EXPECT_LT((online->softmin(x, y, h, eps) - reference->softmin(x, y, h, eps)).abs().max().item<double>(), 1e-10);
  }
}

// Rows are independent and each is reduced by one thread, so the threaded kernels must give the
// single-threaded result to the bit, from the main thread and from a std::thread (where the
// OpenMP setting of the caller is lost but LibTorch's thread count is not).
TEST(OnlineKernels, TwoThreadsGiveTheOneThreadResultBitForBit) {
  at::manual_seed(53);
  const int saved = at::get_num_threads();
  for (const int p : {1, 2}) {
    // 1000 x 1023 pairs in 3-D: far above the serial cut-off, so the threads really run. A
    // reducer's second softmin of the same clouds takes the one-pass kernel (row_shifts.h): each
    // reducer below makes the same calls in the same order.
    const at::Tensor x = at::randn({1, 1000, 3}), y = at::randn({1, 1023, 3}), h = at::randn({1, 1023});
    const at::Tensor moved = h + 0.1 * at::rand({1, 1023});
    const auto serial = make_online_cpu_reducer(p), threaded = make_online_cpu_reducer(p);
    at::set_num_threads(1);
    const at::Tensor serial_first = serial->softmin(x, y, h, 0.05);
    const at::Tensor serial_second = serial->softmin(x, y, moved, 0.05);
    const at::Tensor serial_gradient = serial->softmax_cost_gradient(x, y, h, 0.05);
    at::set_num_threads(2);
    EXPECT_TRUE(at::equal(threaded->softmin(x, y, h, 0.05), serial_first));
    EXPECT_TRUE(at::equal(threaded->softmin(x, y, moved, 0.05), serial_second));
    EXPECT_TRUE(at::equal(threaded->softmax_cost_gradient(x, y, h, 0.05), serial_gradient));
    at::Tensor first_in_thread, second_in_thread;
    int threads_in_thread = 0;
    std::thread([&] {
      threads_in_thread = at::get_num_threads();  // what the reducer passes to the kernels there
      const auto in_thread = make_online_cpu_reducer(p);
      first_in_thread = in_thread->softmin(x, y, h, 0.05);
      second_in_thread = in_thread->softmin(x, y, moved, 0.05);
    }).join();
    EXPECT_EQ(threads_in_thread, 2);
    EXPECT_TRUE(at::equal(first_in_thread, serial_first));
    EXPECT_TRUE(at::equal(second_in_thread, serial_second));
  }
  at::set_num_threads(saved);
}

}  // namespace
}  // namespace sinkhorn::reduce
