#include "reduce/cuda/cuda_reducer.h"

#include <ATen/ATen.h>

#include <c10/core/GradMode.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "platform/cuda_module_loader.h"
#include "reduce/cuda/cuda_reductions.h"
#include "util/check.h"
#include "util/opt_in.h"

namespace sinkhorn::reduce {
namespace {

class OnlineCudaReducer final : public Reducer {
 public:
  OnlineCudaReducer(int p, const cuda::CudaReductions& module) : p_(p), module_(module) {}

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
    // float16 / bfloat16 in float32 (their 8- and 11-bit exponents' sums would lose the answer).
    const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    // Detached, contiguous, in the compute dtype: no copy when they already are.
    const at::Tensor points_x = x.detach().to(dtype).contiguous();
    const at::Tensor points_y = y.detach().to(dtype).contiguous();
    const at::Tensor potentials = h.detach().to(dtype).contiguous();
    const int64_t batch = x.size(0), n = x.size(1), m = y.size(1), d = x.size(2);
    at::Tensor out = reduction == cuda::Reduction::softmax_cost_gradient ? at::empty({batch, n, d}, points_x.options())
                                                                        : at::empty({batch, n}, points_x.options());
    const int device = x.device().index();
    try {
      if (dtype == at::kDouble) {
        module_.online_reduce_double(problem<double>(reduction, points_x, points_y, potentials, batch, n, m, d, eps, out),
                                     device);
      } else {
        module_.online_reduce_float(problem<float>(reduction, points_x, points_y, potentials, batch, n, m, d, eps, out),
                                    device);
      }
    } catch (const std::runtime_error& failure) {
      SINKHORN_INTERNAL_CHECK(false, failure.what());
    }
    return out.to(x.scalar_type());
  }

  template <typename T>
  cuda::CudaProblem<T> problem(cuda::Reduction reduction, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                               int64_t batch, int64_t n, int64_t m, int64_t d, double eps, at::Tensor& out) const {
    cuda::CudaProblem<T> problem;
    problem.x = x.data_ptr<T>();
    problem.y = y.data_ptr<T>();
    problem.h = h.data_ptr<T>();
    problem.batch = batch, problem.n = n, problem.m = m, problem.d = d;
    problem.p = p_;
    problem.eps = eps;
    problem.reduction = reduction;
    problem.out = out.data_ptr<T>();
    problem.tensor_cores = tensor_cores_requested();
    return problem;
  }

  // The tensor-core softmin has not run on a GPU yet: it stays off unless
  // SINKHORN_CUDA_TENSOR_CORES=1 (scripts/gpu/check.sh sets it for its test and benchmark).
  static bool tensor_cores_requested() {
    static const bool requested = util::opted_in("SINKHORN_CUDA_TENSOR_CORES");
    return requested;
  }

  int p_;
  const cuda::CudaReductions& module_;
};

}  // namespace

namespace cuda {

const CudaReductions* load_reductions(std::string* why_not) {
  using Entry = const CudaReductions* (*)();
  auto entry = reinterpret_cast<Entry>(platform::cuda_module_symbol(kReductionsSymbol, why_not));
  return entry == nullptr ? nullptr : entry();
}

const CudaReductions& reductions_for(const std::string& argument) {
  std::string why_not;
  const CudaReductions* reductions = load_reductions(&why_not);
  SINKHORN_CHECK_ARG(reductions != nullptr, argument, "needs the CUDA kernels: " << why_not);
  return *reductions;
}

}  // namespace cuda

bool cuda_reducer_built() { return cuda::load_reductions() != nullptr; }

std::unique_ptr<Reducer> make_online_cuda_reducer(int p) {
  return std::make_unique<OnlineCudaReducer>(p, cuda::reductions_for("backend"));
}

at::Tensor dense_cuda_softmin(const at::Tensor& cost, const at::Tensor& h, double eps) {
  const at::ScalarType dtype = cost.scalar_type();
  if (!cost.is_cuda() || (dtype != at::kFloat && dtype != at::kDouble) || h.scalar_type() != dtype) return {};
  if (c10::GradMode::is_enabled() && (cost.requires_grad() || h.requires_grad())) return {};
  const cuda::CudaReductions* module = cuda::load_reductions();
  if (module == nullptr) return {};
  const at::Tensor matrix = cost.contiguous(), potentials = h.detach().contiguous();
  const int64_t batch = cost.size(0), n = cost.size(1), m = cost.size(2);
  at::Tensor out = at::empty({batch, n}, matrix.options());
  const int device = cost.device().index();
  const auto fill = [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    cuda::DenseSoftminProblem<T> problem;
    problem.cost = matrix.data_ptr<T>();
    problem.h = potentials.data_ptr<T>();
    problem.batch = batch, problem.n = n, problem.m = m;
    problem.eps = eps;
    problem.out = out.data_ptr<T>();
    if constexpr (std::is_same_v<T, double>) {
      module->dense_softmin_double(problem, device);
    } else {
      module->dense_softmin_float(problem, device);
    }
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

}  // namespace sinkhorn::reduce
