#include "reduce/cuda/cuda_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "util/check.h"

#ifdef SINKHORN_CUDA_REDUCER
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <stdexcept>

#include "reduce/cuda/online_kernels.cuh"
#endif

namespace sinkhorn::reduce {

#ifdef SINKHORN_CUDA_REDUCER
namespace {

class OnlineCudaReducer final : public Reducer {
 public:
  explicit OnlineCudaReducer(int p) : p_(p) {}

  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const override {
    return run(cuda::Reduction::softmin, x, y, h, eps);
  }
  at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                   double eps) const override {
    return run(cuda::Reduction::softmax_cost_gradient, x, y, h, eps);
  }
  at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const override {
    return run(cuda::Reduction::softmax_cost, x, y, h, eps);
  }
  bool differentiable() const override { return false; }
  std::string name() const override { return "online"; }

 private:
  at::Tensor run(cuda::Reduction reduction, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                 double eps) const {
    SINKHORN_CHECK_ARG(x.is_cuda() && y.is_cuda() && h.is_cuda(), "backend",
                       "the online CUDA reducer runs on CUDA tensors, got " << x.device());
    const c10::cuda::CUDAGuard guard(x.device());
    // float16 / bfloat16 in float32 (their 8- and 11-bit exponents' sums would lose the answer).
    const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    // Detached, contiguous, in the compute dtype: no copy when they already are.
    const at::Tensor points_x = x.detach().to(dtype).contiguous();
    const at::Tensor points_y = y.detach().to(dtype).contiguous();
    const at::Tensor potentials = h.detach().to(dtype).contiguous();
    const int64_t batch = x.size(0), n = x.size(1), m = y.size(1), d = x.size(2);
    at::Tensor out = reduction == cuda::Reduction::softmax_cost_gradient ? at::empty({batch, n, d}, points_x.options())
                                                                        : at::empty({batch, n}, points_x.options());
    void* stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    try {
      if (dtype == at::kDouble) {
        cuda::online_reduce(problem<double>(reduction, points_x, points_y, potentials, batch, n, m, d, eps, out, stream));
      } else {
        cuda::online_reduce(problem<float>(reduction, points_x, points_y, potentials, batch, n, m, d, eps, out, stream));
      }
    } catch (const std::runtime_error& failure) {
      SINKHORN_INTERNAL_CHECK(false, failure.what());
    }
    return out.to(x.scalar_type());
  }

  template <typename T>
  cuda::CudaProblem<T> problem(cuda::Reduction reduction, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                               int64_t batch, int64_t n, int64_t m, int64_t d, double eps, at::Tensor& out,
                               void* stream) const {
    cuda::CudaProblem<T> problem;
    problem.x = x.data_ptr<T>();
    problem.y = y.data_ptr<T>();
    problem.h = h.data_ptr<T>();
    problem.batch = batch, problem.n = n, problem.m = m, problem.d = d;
    problem.p = p_;
    problem.eps = eps;
    problem.reduction = reduction;
    problem.out = out.data_ptr<T>();
    problem.stream = stream;
    return problem;
  }

  int p_;
};

}  // namespace

bool cuda_reducer_built() { return true; }

std::unique_ptr<Reducer> make_online_cuda_reducer(int p) { return std::make_unique<OnlineCudaReducer>(p); }

at::Tensor dense_cuda_softmin(const at::Tensor& cost, const at::Tensor& h, double eps) {
  const at::ScalarType dtype = cost.scalar_type();
  if (!cost.is_cuda() || (dtype != at::kFloat && dtype != at::kDouble) || h.scalar_type() != dtype) return {};
  if (c10::GradMode::is_enabled() && (cost.requires_grad() || h.requires_grad())) return {};
  const c10::cuda::CUDAGuard guard(cost.device());
  const at::Tensor matrix = cost.contiguous(), potentials = h.detach().contiguous();
  const int64_t batch = cost.size(0), n = cost.size(1), m = cost.size(2);
  at::Tensor out = at::empty({batch, n}, matrix.options());
  void* stream = c10::cuda::getCurrentCUDAStream(cost.device().index()).stream();
  const auto fill = [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    cuda::DenseSoftminProblem<T> problem;
    problem.cost = matrix.data_ptr<T>();
    problem.h = potentials.data_ptr<T>();
    problem.batch = batch, problem.n = n, problem.m = m;
    problem.eps = eps;
    problem.out = out.data_ptr<T>();
    problem.stream = stream;
    cuda::dense_softmin(problem);
  };
  try {
    if (dtype == at::kDouble) {
      fill(static_cast<double*>(nullptr));
    } else {
      fill(static_cast<float*>(nullptr));
    }
  } catch (const std::runtime_error& failure) {
    SINKHORN_INTERNAL_CHECK(false, failure.what());
  }
  return out;
}

#else  // no CUDA reducer in this build

bool cuda_reducer_built() { return false; }

std::unique_ptr<Reducer> make_online_cuda_reducer(int) {
  SINKHORN_CHECK_ARG(false, "backend",
                     "online on CUDA tensors needs the CUDA kernels, and this build has none (it found no nvcc or "
                     "a LibTorch without CUDA); use the tensorized backend");
  return nullptr;
}

at::Tensor dense_cuda_softmin(const at::Tensor&, const at::Tensor&, double) { return {}; }

#endif

}  // namespace sinkhorn::reduce
