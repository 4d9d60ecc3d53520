#include "reduce/reference/reference_reducer.h"

#include <ATen/ATen.h>

#include "reduce/reference/reference_kernels.h"

namespace sinkhorn::reduce {
namespace {

using RowKernel = void (*)(const double*, const double*, const double*, std::int64_t, std::int64_t,
                           std::int64_t, int, double, double*);

class ReferenceReducer final : public Reducer {
 public:
  explicit ReferenceReducer(int p) : p_(p) {}

  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                     double eps) const override {
    return run(reference::softmin, x, y, h, eps, /*per_coordinate=*/false);
  }
  at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                   double eps) const override {
    return run(reference::softmax_cost_gradient, x, y, h, eps, /*per_coordinate=*/true);
  }
  at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                          double eps) const override {
    return run(reference::softmax_cost, x, y, h, eps, /*per_coordinate=*/false);
  }
  bool differentiable() const override { return false; }
  std::string name() const override { return "reference"; }

 private:
  at::Tensor run(RowKernel kernel, const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                 double eps, bool per_coordinate) const {
    const auto as_cpu_double = [](const at::Tensor& t) {
      return t.detach().to(at::kCPU, at::kDouble).contiguous();
    };
    const at::Tensor xd = as_cpu_double(x), yd = as_cpu_double(y), hd = as_cpu_double(h);
    const std::int64_t batch = xd.size(0), n = xd.size(1), m = yd.size(1), d = xd.size(2);
    // One value per row (B, N), or one per row and coordinate (B, N, D).
    at::Tensor out = at::empty({batch, n, per_coordinate ? d : 1}, xd.options());
    for (std::int64_t b = 0; b < batch; ++b) {
      kernel(xd[b].data_ptr<double>(), yd[b].data_ptr<double>(), hd[b].data_ptr<double>(), n, m, d,
             p_, eps, out[b].data_ptr<double>());
    }
    if (!per_coordinate) out = out.squeeze(2);
    return out.to(x.device(), x.scalar_type());
  }

  int p_;
};

}  // namespace

std::unique_ptr<Reducer> make_reference_reducer(int p) {
  return std::make_unique<ReferenceReducer>(p);
}

}  // namespace sinkhorn::reduce
