// The CUDA backends (online kernels, tensorized with the dense softmin) against the CPU, through
// the Reducer interface and through the whole solve: values, potentials and gradients in both
// gradient modes, float32 and float64, batched, half-precision inputs. Skipped (with a message)
// where no GPU is present, so CI stays green on CPU machines.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <random>

#include "reduce/cpu/online_reducer.h"
#include "platform/devices.h"
#include "reduce/cuda/cuda_reducer.h"
#include "reduce/reducer.h"
#include "sinkhorn/divergence.h"

namespace sinkhorn::reduce {
namespace {

bool have_gpu() { return platform::gpu_available() && cuda_reducer_built(); }
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

// Balanced potentials are defined up to f + c, g - c (and so are the gradients in a and b, which
// are potentials): they are compared after removing their mean; the value and the gradients in x
// and y are unique and compared as they are.
at::Tensor without_gauge(const at::Tensor& t) { return t - t.mean(-1, true); }

// One solve on `device` in `dtype` against the same solve on the CPU in float64: value, potentials
// and the gradients of x, y, a and b. Returns each quantity's relative gap.
std::vector<double> solve_gaps(const SolveCase& c, at::Device device, at::ScalarType dtype) {
  at::manual_seed(3);
  const std::vector<int64_t> xs = c.batch > 1 ? std::vector<int64_t>{c.batch, 150, c.d} : std::vector<int64_t>{150, c.d};
  const std::vector<int64_t> ys = c.batch > 1 ? std::vector<int64_t>{c.batch, 230, c.d} : std::vector<int64_t>{230, c.d};
  const at::Tensor x = at::randn(xs, at::kDouble), y = at::randn(ys, at::kDouble) + 0.5;
  at::Tensor a = at::rand(std::vector<int64_t>(xs.begin(), xs.end() - 1), at::kDouble) + 0.1;
  at::Tensor b = at::rand(std::vector<int64_t>(ys.begin(), ys.end() - 1), at::kDouble) + 0.1;
  a = a / a.sum(-1, true), b = b / b.sum(-1, true);  // balanced: equal masses
  SinkhornOptions options;
  options.p = c.p;
  // 0.1 in 3-D, and the same temperature relative to the typical cost in other dimensions.
  options.blur = 0.1 * std::sqrt(c.d / 3.0);
  options.gradient = c.gradient;
  if (c.gradient == GradientMode::unrolled) options.iterations = 30;  // the paper's fixed-L mode
  const auto solve = [&](const at::Device on, at::ScalarType type, Backend backend) {
    std::vector<at::Tensor> leaves;
    for (const at::Tensor& t : {a, x, b, y}) leaves.push_back(t.detach().to(on, type, false, true).requires_grad_(true));
    SinkhornOptions o = options;
    o.backend = backend;
    o.tolerance = type == at::kDouble ? 1e-9 : 1e-5;
    DivergenceResult result = divergence_with_details(leaves[0], leaves[1], leaves[2], leaves[3], o);
    result.value.sum().backward();
    std::vector<at::Tensor> out = {result.value.detach(), without_gauge(result.potentials.f_ab),
                                   without_gauge(result.potentials.g_ab)};
    for (const at::Tensor& leaf : leaves) out.push_back(leaf.grad());
    out[3] = without_gauge(out[3]), out[5] = without_gauge(out[5]);  // the gradients in a and b
    for (const at::Tensor& t : out) {
      EXPECT_EQ(t.device().type(), on.type());
      EXPECT_EQ(t.scalar_type(), type);
    }
    return std::make_pair(out, result.diagnostics.backend);
  };
  const auto [expected, cpu_backend] = solve(at::kCPU, at::kDouble, Backend::automatic);
  const auto [got, backend] = solve(device, dtype, c.backend);
  EXPECT_EQ(backend, to_string(resolve_backend(c.backend, at::empty({1, 1, c.d}, device), at::empty({1, 1, c.d}, device),
                                               c.gradient == GradientMode::unrolled)));
  std::vector<double> gaps;
  for (size_t k = 0; k < expected.size(); ++k) gaps.push_back(relative_gap(got[k], expected[k], 1e-3));
  return gaps;
}

// The GPU against the CPU's float64. In float32 the bar is the CPU's own float32 solve: its
// tolerance is raised to the float32 floor (about 1.3e-3 here, docs/numerics.md), where the
// potentials of these small clouds are 0.3-17% off and the gradients in x and y 0.3-1%, on
// either device; the GPU may be no more than 3x further off than the CPU (or 2e-3).
void compare_solve(const SolveCase& c) {
  SCOPED_TRACE(::testing::Message() << "backend " << to_string(c.backend) << " gradient " << to_string(c.gradient)
                                    << " dtype " << c.dtype << " p " << c.p << " batch " << c.batch << " d " << c.d);
  const std::vector<double> gpu = solve_gaps(c, at::kCUDA, c.dtype);
  const std::vector<double> cpu = c.dtype == at::kDouble ? std::vector<double>(gpu.size(), 0.0) : solve_gaps(c, at::kCPU, c.dtype);
  const char* names[] = {"value", "f_ab", "g_ab", "grad a", "grad x", "grad b", "grad y"};
  for (size_t k = 0; k < gpu.size(); ++k) {
    const double tolerance = c.dtype == at::kDouble ? 1e-6 : std::max(2e-3, 3 * cpu[k]);
    EXPECT_LT(gpu[k], tolerance) << names[k] << " (the CPU's float32 solve is " << cpu[k] << " off)";
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
