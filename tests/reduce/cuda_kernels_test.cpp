// The CUDA online reductions against the double-precision reference kernels, over awkward sizes
// and dimensions, p = 1 and 2, float32 and float64. Skipped (with a message) where no GPU is
// present, so CI stays green on CPU machines; the kernels are compiled wherever nvcc exists.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

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

template <typename T>
void compare_with_reference(int64_t n, int64_t m, int64_t d, int p, Reduction reduction, double tolerance) {
  std::mt19937_64 random(n * 1000003 + m * 101 + d * 7 + p);
  std::normal_distribution<double> normal;
  std::vector<double> x(n * d), y(m * d), h(m);
  for (double& v : x) v = normal(random);
  for (double& v : y) v = normal(random);
  for (double& v : h) v = 0.3 * normal(random);
  const double eps = 0.5;
  const int64_t width = reduction == Reduction::softmax_cost_gradient ? d : 1;
  std::vector<double> expected(n * width);
  switch (reduction) {
    case Reduction::softmin: reference::softmin(x.data(), y.data(), h.data(), n, m, d, p, eps, expected.data()); break;
    case Reduction::softmax_cost_gradient:
      reference::softmax_cost_gradient(x.data(), y.data(), h.data(), n, m, d, p, eps, expected.data());
      break;
    case Reduction::softmax_cost: reference::softmax_cost(x.data(), y.data(), h.data(), n, m, d, p, eps, expected.data()); break;
  }
  const auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  DeviceBuffer<T> dx(cast(x)), dy(cast(y)), dh(cast(h)), dout(std::vector<T>(n * width, T(0)));
  CudaProblem<T> problem;
  problem.x = dx.get(), problem.y = dy.get(), problem.h = dh.get();
  problem.n = n, problem.m = m, problem.d = d, problem.p = p, problem.eps = eps;
  problem.reduction = reduction;
  problem.out = dout.get();
  online_reduce(problem);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<T> got = dout.to_host();
  double scale = 0;
  for (double v : expected) scale = std::max(scale, std::abs(v));
  for (int64_t k = 0; k < n * width; ++k) {
    ASSERT_NEAR(static_cast<double>(got[k]), expected[k], tolerance * (scale + eps))
        << "n " << n << " m " << m << " d " << d << " p " << p << " entry " << k;
  }
}

TEST(CudaOnlineKernels, MatchTheDoubleReference) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: the CUDA kernels are compiled but not run here";
  for (const int64_t n : {1, 7, 130, 1023}) {
    for (const int64_t m : {1, 2, 17, 300}) {
      for (const int64_t d : {1, 3, 8, 17, 64, 784}) {
        for (const int p : {1, 2}) {
          for (const Reduction r : {Reduction::softmin, Reduction::softmax_cost_gradient, Reduction::softmax_cost}) {
            compare_with_reference<float>(n, m, d, p, r, 1e-5);
            compare_with_reference<double>(n, m, d, p, r, 1e-12);
          }
        }
      }
    }
  }
}

TEST(CudaOnlineKernels, DeviceCountIsAnswerableWithoutAGpu) {
  EXPECT_GE(device_count(), 0);  // no GPU, no driver: 0, not a crash
}

}  // namespace
}  // namespace sinkhorn::reduce::cuda
