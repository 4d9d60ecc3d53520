#include "reduce/cpu/online_reducer.h"

#include <ATen/ATen.h>

#include <limits>

#include "util/check.h"

namespace sinkhorn::reduce {
namespace {

class OnlineCpuReducer final : public Reducer {
 public:
  explicit OnlineCpuReducer(int p) : p_(p) {}

  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                     double eps) const override {
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
  std::string name() const override { return "online"; }

 private:
  at::Tensor run(cpu::Reduction reduction, const at::Tensor& x, const at::Tensor& y,
                 const at::Tensor& h, double eps) const {
    SINKHORN_CHECK_ARG(x.device().is_cpu(), "backend", "online runs on CPU tensors, got " << x.device());
    const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const int64_t batch = x.size(0), n = x.size(1), m = y.size(1), d = x.size(2);
    const int64_t padded = (m + cpu::kColumnPadding - 1) / cpu::kColumnPadding * cpu::kColumnPadding;
    const at::Tensor points = x.detach().to(dtype).contiguous();
    // y transposed to (B, D, M_padded) so that SIMD lanes run over columns j; O(M D) per call.
    at::Tensor y_t = at::zeros({batch, d, padded}, points.options());
    y_t.narrow(2, 0, m).copy_(y.detach().to(dtype).transpose(1, 2));
    at::Tensor h_padded = at::full({batch, padded}, -std::numeric_limits<double>::infinity(), points.options());
    h_padded.narrow(1, 0, m).copy_(h.detach().to(dtype));
    at::Tensor out = reduction == cpu::Reduction::softmax_cost_gradient
                         ? at::empty({batch, n, d}, points.options())
                         : at::empty({batch, n}, points.options());
    if (dtype == at::kDouble) {
      cpu::online_reduce(online_problem<double>(reduction, points, y_t, h_padded, m, p_, eps, out));
    } else {
      cpu::online_reduce(online_problem<float>(reduction, points, y_t, h_padded, m, p_, eps, out));
    }
    return out.to(x.scalar_type());
  }

  int p_;
};

}  // namespace

std::unique_ptr<Reducer> make_online_cpu_reducer(int p) { return std::make_unique<OnlineCpuReducer>(p); }

}  // namespace sinkhorn::reduce
