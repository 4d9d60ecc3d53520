// The CUDA online reductions against the double-precision reference kernels, over awkward sizes
// and dimensions, p = 1 and 2, float32 and float64. Skipped (with a message) where no GPU is
// present, so CI stays green on CPU machines; the kernels are compiled wherever nvcc exists.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "reduce/cuda/online_kernels.cuh"
#include "reduce/reference/reference_kernels.h"

namespace sinkhorn::reduce::cuda {
namespace {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& host) : size_(host.size()) {
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(1, size_) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data_); }
  T* get() const { return data_; }
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t size_;
};

struct Case {
  int64_t batch, n, m, d;
  int p;
  Reduction reduction;
  bool force_generic = false;
  bool zero_weights = false;  // every third h_j = -inf
};

// Batched reference: the double-precision kernels one batch entry at a time.
std::vector<double> reference_result(const Case& c, const std::vector<double>& x, const std::vector<double>& y,
                                     const std::vector<double>& h, double eps) {
  const int64_t width = c.reduction == Reduction::softmax_cost_gradient ? c.d : 1;
  std::vector<double> expected(c.batch * c.n * width);
  for (int64_t b = 0; b < c.batch; ++b) {
    const double* xb = x.data() + b * c.n * c.d;
    const double* yb = y.data() + b * c.m * c.d;
    const double* hb = h.data() + b * c.m;
    double* out = expected.data() + b * c.n * width;
    switch (c.reduction) {
      case Reduction::softmin: reference::softmin(xb, yb, hb, c.n, c.m, c.d, c.p, eps, out); break;
      case Reduction::softmax_cost_gradient:
        reference::softmax_cost_gradient(xb, yb, hb, c.n, c.m, c.d, c.p, eps, out);
        break;
      case Reduction::softmax_cost: reference::softmax_cost(xb, yb, hb, c.n, c.m, c.d, c.p, eps, out); break;
    }
  }
  return expected;
}

template <typename T>
void compare_with_reference(const Case& c, double tolerance) {
  std::mt19937_64 random(c.n * 1000003 + c.m * 101 + c.d * 7 + c.p + c.batch * 13);
  std::normal_distribution<double> normal;
  std::vector<double> x(c.batch * c.n * c.d), y(c.batch * c.m * c.d), h(c.batch * c.m);
  for (double& v : x) v = normal(random);
  for (double& v : y) v = normal(random);
  for (size_t j = 0; j < h.size(); ++j) {
    h[j] = c.zero_weights && j % 3 == 1 ? -INFINITY : 0.3 * normal(random);
  }
  const double eps = 0.5;
  const int64_t width = c.reduction == Reduction::softmax_cost_gradient ? c.d : 1;
  const std::vector<double> expected = reference_result(c, x, y, h, eps);
  const auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  DeviceBuffer<T> dx(cast(x)), dy(cast(y)), dh(cast(h)), dout(std::vector<T>(c.batch * c.n * width, T(0)));
  CudaProblem<T> problem;
  problem.x = dx.get(), problem.y = dy.get(), problem.h = dh.get();
  problem.batch = c.batch, problem.n = c.n, problem.m = c.m, problem.d = c.d, problem.p = c.p, problem.eps = eps;
  problem.reduction = c.reduction;
  problem.force_generic = c.force_generic;
  problem.out = dout.get();
  online_reduce(problem);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<T> got = dout.to_host();
  double scale = 0;
  for (double v : expected) scale = std::max(scale, std::abs(v));
  for (int64_t k = 0; k < c.batch * c.n * width; ++k) {
    ASSERT_NEAR(static_cast<double>(got[k]), expected[k], tolerance * (scale + eps))
        << "batch " << c.batch << " n " << c.n << " m " << c.m << " d " << c.d << " p " << c.p << " reduction "
        << static_cast<int>(c.reduction) << (c.force_generic ? " (generic)" : "") << " entry " << k;
  }
}

constexpr Reduction kReductions[] = {Reduction::softmin, Reduction::softmax_cost_gradient, Reduction::softmax_cost};

TEST(CudaOnlineKernels, MatchTheDoubleReference) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the CUDA kernels are compiled but not run here";
  for (const int64_t n : {1, 7, 130, 1023}) {
    for (const int64_t m : {1, 2, 17, 300}) {
      for (const int64_t d : {1, 2, 3, 4, 5, 8, 17, 64, 784}) {
        for (const int p : {1, 2}) {
          for (const Reduction r : kReductions) {
            // float32 pair terms carry about u C / eps of rounding, and C grows like D here.
            const double tolerance = 1e-5 * std::max(1.0, d / 64.0);
            for (const bool generic : {false, true}) {
              compare_with_reference<float>({1, n, m, d, p, r, generic}, tolerance);
            }
            compare_with_reference<double>({1, n, m, d, p, r}, 1e-12);
          }
        }
      }
    }
  }
}

// The tensor-core softmin (3xTF32, opt-in) within its documented bound (docs/numerics.md, "Tensor
// cores"): |error| <= (3 D + 16) u max_j |x_i| |y_j| + 1e-5 (|softmin| + eps), u = 2^-24, against
// the double reference; awkward sizes (a partial warp of rows, partial MMA steps of D, column
// splits), batches, zero weights, and clouds off-centre by 2 (|x| |y| grows: the bound with it).
TEST(CudaTensorCoreSoftmin, StaysWithinItsBoundOfTheDoubleReference) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the tensor-core kernel is compiled but not run here";
  ASSERT_TRUE(has_tensor_core_kernel(64, 2, Reduction::softmin));
  ASSERT_FALSE(has_tensor_core_kernel(64, 1, Reduction::softmin));
  ASSERT_FALSE(has_tensor_core_kernel(8, 2, Reduction::softmin));
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (major < 8) GTEST_SKIP() << "tensor-core softmin needs sm_80 or newer";
  // Else the solves below would fall back to the fast kernel and test that instead.
  ASSERT_TRUE(tensor_core_device()) << "this build has no sm_80 (or newer) image of the tensor-core kernel";
  const auto check_case = [](int64_t batch, int64_t n, int64_t m, int64_t d, double offset) {
    std::mt19937_64 random(n * 7919 + m * 31 + d + batch);
    std::normal_distribution<double> normal;
    std::vector<double> x(batch * n * d), y(batch * m * d), h(batch * m);
    for (double& v : x) v = normal(random) + offset;
    for (double& v : y) v = normal(random) + offset;
    for (size_t j = 0; j < h.size(); ++j) h[j] = j % 5 == 2 ? -INFINITY : 0.3 * normal(random);
    const double eps = 0.5;
    std::vector<double> expected(batch * n);
    for (int64_t b = 0; b < batch; ++b) {
      reference::softmin(x.data() + b * n * d, y.data() + b * m * d, h.data() + b * m, n, m, d, 2, eps,
                         expected.data() + b * n);
    }
    const auto cast = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    DeviceBuffer<float> dx(cast(x)), dy(cast(y)), dh(cast(h)), dout(std::vector<float>(batch * n, 0.f));
    CudaProblem<float> problem;
    problem.x = dx.get(), problem.y = dy.get(), problem.h = dh.get();
    problem.batch = batch, problem.n = n, problem.m = m, problem.d = d, problem.p = 2, problem.eps = eps;
    problem.reduction = Reduction::softmin;
    problem.tensor_cores = true;
    problem.out = dout.get();
    online_reduce(problem);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = dout.to_host();
    const double u = std::ldexp(1.0, -24);
    for (int64_t b = 0; b < batch; ++b) {
      double largest_y = 0;
      for (int64_t j = 0; j < m; ++j) {
        double squared = 0;
        for (int64_t k = 0; k < d; ++k) squared += y[(b * m + j) * d + k] * y[(b * m + j) * d + k];
        largest_y = std::max(largest_y, std::sqrt(squared));
      }
      for (int64_t i = 0; i < n; ++i) {
        double squared = 0;
        for (int64_t k = 0; k < d; ++k) squared += x[(b * n + i) * d + k] * x[(b * n + i) * d + k];
        const double want = expected[b * n + i];
        const double bound = (3.0 * d + 16) * u * std::sqrt(squared) * largest_y + 1e-5 * (std::abs(want) + eps);
        ASSERT_NEAR(got[b * n + i], want, bound) << "batch " << batch << " n " << n << " m " << m << " d " << d
                                                 << " offset " << offset << " row " << i;
      }
    }
  };
  for (const int64_t batch : {1, 2}) {
    for (const int64_t n : {1, 37, 300}) {
      for (const int64_t m : {5, 129, 2000}) {
        for (const int64_t d : {16, 20, 57, 64}) {
          for (const double offset : {0.0, 2.0}) check_case(batch, n, m, d, offset);
        }
      }
    }
  }
  // Enough row blocks that launch_split gives each block several 64-column tiles on any current GPU
  // (64 row blocks, about 17 splits of 47 tiles): the tile loop's second trip, the barrier before
  // a tile's staging is reused, and the rescale of a finite running maximum.
  check_case(1, 4096, 3000, 20, 0.0);
  check_case(1, 4096, 3000, 57, 2.0);
}

// Few rows and many columns: the fast kernel splits the columns over blocks and merges the
// partial sums; batches and zero weights (h = -inf) on the way.
TEST(CudaOnlineKernels, SplitColumnsBatchesAndZeroWeightsMatchTheReference) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the CUDA kernels are compiled but not run here";
  for (const int64_t batch : {1, 3}) {
    for (const int64_t d : {1, 3, 64}) {
      for (const int p : {1, 2}) {
        for (const Reduction r : kReductions) {
          compare_with_reference<float>({batch, 5, 20000, d, p, r, false, true}, 1e-5);
          compare_with_reference<float>({batch, 300, 2049, d, p, r, false, true}, 1e-5);
        }
      }
    }
  }
}

template <typename T>
void check_dense_softmin(int64_t batch, int64_t n, int64_t m, double tolerance, DenseSchedule schedule) {
  std::mt19937_64 random(batch * 7 + n * 31 + m);
  std::uniform_real_distribution<double> uniform(0.0, 4.0);
  std::normal_distribution<double> normal;
  std::vector<double> cost(batch * n * m), h(batch * m), expected(batch * n);
  for (double& v : cost) v = uniform(random);
  // Some columns weightless (h = -inf), and the first 8 of batch entry 0 all of them: a whole
  // group of four -inf before any finite value, and for m <= 8 a row with no mass at all, whose
  // softmin is +inf (ATen's log-sum-exp of -infs is -inf).
  for (size_t j = 0; j < h.size(); ++j) h[j] = j % 5 == 2 || j < 8 ? -INFINITY : 0.3 * normal(random);
  const double eps = 0.1;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < n; ++i) {  // the log-sum-exp, shifted by its max, in double
      double top = -INFINITY, sum = 0;
      for (int64_t j = 0; j < m; ++j) top = std::max(top, h[b * m + j] - cost[(b * n + i) * m + j] / eps);
      if (top == -INFINITY) {
        expected[b * n + i] = INFINITY;
        continue;
      }
      for (int64_t j = 0; j < m; ++j) sum += std::exp(h[b * m + j] - cost[(b * n + i) * m + j] / eps - top);
      expected[b * n + i] = -eps * (top + std::log(sum));
    }
  }
  const auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  DeviceBuffer<T> dcost(cast(cost)), dh(cast(h)), dout(std::vector<T>(batch * n, T(0)));
  DenseSoftminProblem<T> problem;
  problem.cost = dcost.get(), problem.h = dh.get(), problem.out = dout.get();
  problem.batch = batch, problem.n = n, problem.m = m, problem.eps = eps;
  problem.schedule = schedule;
  dense_softmin(problem);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<T> got = dout.to_host();
  for (int64_t k = 0; k < batch * n; ++k) {
    if (std::isinf(expected[k])) {
      ASSERT_EQ(static_cast<double>(got[k]), expected[k]) << "m " << m << " entry " << k << " (no mass)";
      continue;
    }
    ASSERT_NEAR(static_cast<double>(got[k]), expected[k], tolerance * (std::abs(expected[k]) + eps))
        << "batch " << batch << " n " << n << " m " << m << " entry " << k << " schedule "
        << (schedule == DenseSchedule::warp_per_row ? "warp_per_row" : "block_per_row");
  }
}

TEST(CudaDenseSoftmin, MatchesTheDoubleLogSumExp) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the CUDA kernels are compiled but not run here";
  // m % 4 == 0 takes the 16-byte loads; 512 and 5004 fill whole groups of loads in flight (4 x 32
  // quads per warp) or leave a remainder; 33 rows leave a partial block of warps.
  for (const DenseSchedule schedule : {DenseSchedule::warp_per_row, DenseSchedule::block_per_row}) {
    for (const int64_t m : {1, 3, 4, 255, 512, 1024, 5001, 5004}) {
      check_dense_softmin<float>(2, 33, m, 1e-5, schedule);
      check_dense_softmin<double>(2, 33, m, 1e-12, schedule);
    }
  }
}

TEST(CudaExpThroughput, IsPositiveAndFinite) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the CUDA kernels are compiled but not run here";
  const double rate = exp_throughput(int64_t{1} << 26);
  EXPECT_GT(rate, 1e9);
  EXPECT_TRUE(std::isfinite(rate));
}

TEST(CudaOnlineKernels, DeviceCountIsAnswerableWithoutAGpu) {
  EXPECT_GE(device_count(), 0);  // no GPU, no driver: 0, not a crash
}

}  // namespace
}  // namespace sinkhorn::reduce::cuda
