// The CUDA backends (online kernels, tensorized with the dense softmin) against the CPU, through
// the Reducer interface and through the whole solve: values, potentials and gradients in both
// gradient modes, float32 and float64, batched, half-precision inputs. Skipped (with a message)
// where no GPU is present, so CI stays green on CPU machines.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "reduce/cpu/online_reducer.h"
#include "reduce/cuda/cuda_reducer.h"
#include "reduce/reducer.h"
#include "sinkhorn/divergence.h"

namespace sinkhorn::reduce {
namespace {

bool have_gpu() { return cuda_reducer_built() && at::hasCUDA(); }
#define SKIP_WITHOUT_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or no CUDA reducer in this build): the CUDA backend is not run here"

// Largest |a - b| over (max |b| + scale): a relative error that tolerates entries near zero.
double relative_gap(const at::Tensor& got, const at::Tensor& expected, double scale = 0) {
  const at::Tensor a = got.to(at::kCPU, at::kDouble), b = expected.to(at::kCPU, at::kDouble);
  return (a - b).abs().max().item<double>() / (b.abs().max().item<double>() + scale);
}

TEST(CudaReducer, IsBuiltWhereverNvccAndACudaLibTorchAre) {
#ifdef SINKHORN_EXPECT_CUDA_REDUCER
  EXPECT_TRUE(cuda_reducer_built());
#endif
  SKIP_WITHOUT_GPU();
  const at::Tensor x = at::randn({1, 10, 3}, at::kCUDA);
  EXPECT_EQ(resolve_backend(Backend::automatic, x, x), Backend::online);
  const at::Tensor wide = at::randn({1, 100, 64}, at::kCUDA);
  EXPECT_EQ(resolve_backend(Backend::automatic, wide, wide), Backend::tensorized);
  EXPECT_EQ(resolve_backend(Backend::automatic, x, x, /*needs_autograd=*/true), Backend::tensorized);
}

TEST(CudaReducer, OnlineMatchesTheCpuOnRandomShapes) {
  SKIP_WITHOUT_GPU();
  std::mt19937 random(7);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t batch = 1 + random() % 2, n = 1 + random() % 700, m = 1 + random() % 3000;
    const int64_t d = std::vector<int64_t>{1, 2, 3, 4, 5, 17, 64}[random() % 7];
    const int p = 1 + random() % 2;
    const at::ScalarType dtype = trial % 3 == 0 ? at::kDouble : at::kFloat;
    const double eps = std::vector<double>{0.01, 0.3, 4.0}[random() % 3];
    const at::Tensor x = at::randn({batch, n, d}, at::kDouble), y = at::randn({batch, m, d}, at::kDouble);
    const at::Tensor h = 0.5 * at::randn({batch, m}, at::kDouble);
    const auto cpu = make_online_cpu_reducer(p);
    const auto gpu = make_reducer(Backend::online, p, x.to(at::kCUDA), y.to(at::kCUDA));
    const auto on_gpu = [&](const at::Tensor& t) { return t.to(at::kCUDA, dtype); };
    const double tolerance = dtype == at::kDouble ? 1e-11 : 2e-5;
    SCOPED_TRACE(::testing::Message() << "batch " << batch << " n " << n << " m " << m << " d " << d << " p " << p
                                      << " eps " << eps << " dtype " << dtype);
    const at::Tensor softmin = gpu->softmin(on_gpu(x), on_gpu(y), on_gpu(h), eps);
    EXPECT_EQ(softmin.scalar_type(), dtype);
    EXPECT_TRUE(softmin.is_cuda());
    EXPECT_LT(relative_gap(softmin, cpu->softmin(x, y, h, eps), eps), tolerance);
    EXPECT_LT(relative_gap(gpu->softmax_cost(on_gpu(x), on_gpu(y), on_gpu(h), eps), cpu->softmax_cost(x, y, h, eps), eps),
              tolerance);
    EXPECT_LT(relative_gap(gpu->softmax_cost_gradient(on_gpu(x), on_gpu(y), on_gpu(h), eps),
                           cpu->softmax_cost_gradient(x, y, h, eps), 1e-3),
              tolerance * 10);
  }
}

TEST(CudaReducer, HalfPrecisionInputsAreComputedInFloat32) {
  SKIP_WITHOUT_GPU();
  for (const at::ScalarType half : {at::kHalf, at::kBFloat16}) {
    const at::Tensor x = at::randn({1, 200, 3}, at::kCUDA).to(half), y = at::randn({1, 300, 3}, at::kCUDA).to(half);
    const at::Tensor h = at::zeros({1, 300}, at::kCUDA).to(half);
    const auto gpu = make_reducer(Backend::online, 2, x, y);
    const at::Tensor got = gpu->softmin(x, y, h, 0.1);
    EXPECT_EQ(got.scalar_type(), half);
    const at::Tensor expected = gpu->softmin(x.to(at::kFloat), y.to(at::kFloat), h.to(at::kFloat), 0.1);
    EXPECT_LT(relative_gap(got, expected, 0.1), half == at::kHalf ? 1e-3 : 1e-2);
  }
}

TEST(CudaReducer, TensorizedDenseSoftminMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const int64_t m : {1, 7, 8, 2000}) {
      const at::Tensor x = at::randn({2, 50, 20}, at::kDouble), y = at::randn({2, m, 20}, at::kDouble);
      const at::Tensor h = at::randn({2, m}, at::kDouble);
      const auto gpu = make_reducer(Backend::tensorized, 2, x, y);
      const auto cpu = make_reducer(Backend::tensorized, 2, x, y);
      const at::Tensor expected = cpu->softmin(x, y, h, 0.5);
      const at::Tensor gx = x.to(at::kCUDA, dtype), gy = y.to(at::kCUDA, dtype);
      const double tolerance = dtype == at::kDouble ? 1e-11 : 1e-5;
      // Twice: the second reduction reads the cached matrix, the transposed pair its own entry.
      for (int pass = 0; pass < 2; ++pass) {
        EXPECT_LT(relative_gap(gpu->softmin(gx, gy, h.to(at::kCUDA, dtype), 0.5), expected, 0.5), tolerance);
        EXPECT_LT(relative_gap(gpu->softmin(gy, gx, at::zeros({2, 50}, gx.options()), 0.5),
                               cpu->softmin(y, x, at::zeros({2, 50}, at::kDouble), 0.5), 0.5),
                  tolerance);
      }
    }
  }
}

struct SolveCase {
  Backend backend;
  GradientMode gradient;
  at::ScalarType dtype;
  int p;
  int64_t batch;
  int64_t d;
};

// One solve on the GPU against the same solve on the CPU in float64: value, potentials and the
// gradients of x, y, a and b.
void compare_solve(const SolveCase& c) {
  SCOPED_TRACE(::testing::Message() << "backend " << to_string(c.backend) << " gradient " << to_string(c.gradient)
                                    << " dtype " << c.dtype << " p " << c.p << " batch " << c.batch << " d " << c.d);
  at::manual_seed(3);
  const std::vector<int64_t> xs = c.batch > 1 ? std::vector<int64_t>{c.batch, 150, c.d} : std::vector<int64_t>{150, c.d};
  const std::vector<int64_t> ys = c.batch > 1 ? std::vector<int64_t>{c.batch, 230, c.d} : std::vector<int64_t>{230, c.d};
  const at::Tensor x = at::randn(xs, at::kDouble), y = at::randn(ys, at::kDouble) + 0.5;
  at::Tensor a = at::rand(std::vector<int64_t>(xs.begin(), xs.end() - 1), at::kDouble) + 0.1;
  at::Tensor b = at::rand(std::vector<int64_t>(ys.begin(), ys.end() - 1), at::kDouble) + 0.1;
  a = a / a.sum(-1, true), b = b / b.sum(-1, true);  // balanced: equal masses
  SinkhornOptions options;
  options.p = c.p;
  options.blur = 0.1;
  options.gradient = c.gradient;
  options.tolerance = c.dtype == at::kDouble ? 1e-9 : 1e-5;
  if (c.gradient == GradientMode::unrolled) options.iterations = 30;  // the paper's fixed-L mode
  const auto solve = [&](const at::Device device, at::ScalarType dtype, Backend backend) {
    std::vector<at::Tensor> leaves;
    for (const at::Tensor& t : {a, x, b, y}) leaves.push_back(t.detach().to(device, dtype, false, true).requires_grad_(true));
    SinkhornOptions o = options;
    o.backend = backend;
    DivergenceResult result = divergence_with_details(leaves[0], leaves[1], leaves[2], leaves[3], o);
    result.value.sum().backward();
    std::vector<at::Tensor> out = {result.value.detach(), result.potentials.f_ab, result.potentials.g_ab};
    for (const at::Tensor& leaf : leaves) out.push_back(leaf.grad());
    return std::make_pair(out, result.diagnostics.backend);
  };
  const auto [expected, cpu_backend] = solve(at::kCPU, at::kDouble, Backend::automatic);
  const auto [got, gpu_backend] = solve(at::kCUDA, c.dtype, c.backend);
  EXPECT_EQ(gpu_backend, to_string(resolve_backend(c.backend, at::empty({1, 1, c.d}, at::kCUDA), at::empty({1, 1, c.d}, at::kCUDA),
                                                   c.gradient == GradientMode::unrolled)));
  const double tolerance = c.dtype == at::kDouble ? 1e-6 : 2e-3;
  const char* names[] = {"value", "f_ab", "g_ab", "grad a", "grad x", "grad b", "grad y"};
  for (size_t k = 0; k < expected.size(); ++k) {
    ASSERT_TRUE(got[k].defined()) << names[k];
    EXPECT_TRUE(got[k].is_cuda()) << names[k];
    EXPECT_EQ(got[k].scalar_type(), c.dtype) << names[k];
    EXPECT_LT(relative_gap(got[k], expected[k], 1e-3), tolerance) << names[k];
  }
}

TEST(CudaSolve, MatchesTheCpuInBothGradientModes) {
  SKIP_WITHOUT_GPU();
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const int p : {1, 2}) {
      compare_solve({Backend::automatic, GradientMode::envelope, dtype, p, 1, 3});   // online
      compare_solve({Backend::automatic, GradientMode::envelope, dtype, p, 3, 2});   // online, batched
      compare_solve({Backend::tensorized, GradientMode::envelope, dtype, p, 1, 3});  // dense softmin
      compare_solve({Backend::automatic, GradientMode::envelope, dtype, p, 2, 64});  // tensorized
      compare_solve({Backend::online, GradientMode::envelope, dtype, p, 1, 64});     // generic gradient
      compare_solve({Backend::automatic, GradientMode::unrolled, dtype, p, 1, 3});   // autograd
    }
  }
}

TEST(CudaSolve, RefusesCpuTensorsWithTheCudaReducerNamingTheBackend) {
  if (!cuda_reducer_built()) GTEST_SKIP() << "no CUDA reducer in this build";
  const auto reducer = make_online_cuda_reducer(2);
  const at::Tensor x = at::randn({1, 4, 2});
  try {
    reducer->softmin(x, x, at::zeros({1, 4}), 1.0);
    FAIL() << "CPU tensors were accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "backend");
  }
}

}  // namespace
}  // namespace sinkhorn::reduce
