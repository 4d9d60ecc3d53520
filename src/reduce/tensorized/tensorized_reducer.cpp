#include "reduce/tensorized/tensorized_reducer.h"

#include <ATen/ATen.h>

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "reduce/cost_matrix.h"
#include "reduce/cpu/dense_reduction.h"
#include "reduce/cpu/row_shifts.h"
#include "reduce/cuda/cuda_reducer.h"
#include "reduce/reducer.h"

#include <vector>

namespace sinkhorn::reduce {

namespace {

// The CPU's dense kernels (reduce/cpu/dense_kernels.h) on a stored cost matrix (B, N, M) and h
// (B, M). Returns an undefined tensor where they do not apply (other devices, half precision,
// autograd recording through C or h), so that the caller runs ATen's differentiable version.
// The dense kernels take CPU costs of float32 or float64, with h of the same dtype.
bool dense_kernels_take(const at::Tensor& cost, const at::Tensor& h) {
  const at::ScalarType dtype = cost.scalar_type();
  return cost.device().is_cpu() && (dtype == at::kFloat || dtype == at::kDouble) && h.scalar_type() == dtype;
}

// Autograd records a reduction over these costs and potentials.
bool recorded(const at::Tensor& cost, const at::Tensor& h) {
  return at::GradMode::is_enabled() && (cost.requires_grad() || h.requires_grad());
}

at::Tensor dense_cpu_reduction(cpu::DenseReduction reduction, const at::Tensor& cost, const at::Tensor& h,
                               double eps, const at::Tensor& row_shifts = {}, const at::Tensor& row_scales = {}) {
  if (!dense_kernels_take(cost, h) || recorded(cost, h)) return {};
  const at::Tensor c = cost.contiguous();
  const at::Tensor out = reduction == cpu::DenseReduction::softmax_weights ? at::empty_like(c)
                                                                            : at::empty({c.size(0), c.size(1)}, c.options());
  dense_reduce_into(reduction, c, h.contiguous(), eps, out, row_shifts, row_scales);
  return out;
}

// Unrolled gradients differentiate every softmin of the loop: hundreds per solve on small
// matrices, where ATen's recorded expression (a division, a subtraction, a log-sum-exp of five
// operations, their backwards) costs several passes and temporaries per call. This node runs the
// dense kernel forward and, for f_i = -eps log sum_j exp(h_j - C_ij / eps) with softmax weights
// w_ij (each row summing to 1), backward
//   dL/dC_ij = g_i w_ij,   dL/dh_j = -eps sum_i g_i w_ij      (g = dL/df),
// from one kernel pass for w. Under create_graph the backward is ATen's differentiable softmax
// instead, so higher derivatives still flow.
class DenseCpuSoftmin : public torch::autograd::Function<DenseCpuSoftmin> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& cost, const at::Tensor& h,
                            double eps, const at::Tensor* row_shifts) {
    // (The shifts travel by pointer: autograd's apply rejects an undefined tensor argument.)
    at::Tensor out = dense_cpu_reduction(cpu::DenseReduction::softmin, cost, h, eps, *row_shifts);
    ctx->save_for_backward({cost, h});
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor &cost = saved[0], &h = saved[1];
    const double eps = ctx->saved_data["eps"].toDouble();
    const at::Tensor& grad = grad_outputs[0];  // (B, N)
    at::Tensor grad_cost, grad_h;
    if (at::GradMode::is_enabled()) {
      grad_cost = grad.unsqueeze(2) * at::softmax(h.unsqueeze(1) - cost / eps, /*dim=*/2);
      if (ctx->needs_input_grad(1)) grad_h = grad_cost.sum(1) * -eps;
    } else {
      grad_cost = dense_cpu_reduction(cpu::DenseReduction::softmax_weights, cost, h.contiguous(), eps, {},
                                      grad.to(cost.scalar_type()).contiguous());
      if (ctx->needs_input_grad(1)) grad_h = grad_cost.sum(1).mul_(-eps);
    }
    return {ctx->needs_input_grad(0) ? grad_cost : at::Tensor(), grad_h, at::Tensor(), at::Tensor()};
  }
};

// The solver reduces over the same few pairs of clouds (x, y), (y, x), (x, x), (y, y) hundreds of
// times per solve, so the reducer keeps their cost matrices: each sweep then costs one pass of
// exponentials instead of a fresh N x M x D matrix product (for D = 784 that is 40 times less
// work). Entries hold the clouds themselves, so a cloud's address cannot be reused by another
// tensor while cached, and its version counter catches in-place changes.
class CostCache {
 public:
  explicit CostCache(int p) : p_(p) {}

  at::Tensor cost(const at::Tensor& x, const at::Tensor& y) {
    for (const Entry& entry : entries_) {
      if (entry.clouds.matches(x, y)) return entry.cost;
    }
    at::Tensor cost;
    for (const Entry& entry : entries_) {
      if (entry.clouds.matches(y, x)) {
        // The dense kernels read rows: the transpose is stored as its own entry (copied once;
        // searching for it after the exact match keeps it from being copied again).
        cost = entry.cost.transpose(1, 2).contiguous();
        break;
      }
    }
    if (!cost.defined()) cost = cost_matrix(x, y, p_);
    if (cost.numel() <= (x.is_cuda() ? kCudaTensorizedMaxPairs : kLargestCachedEntries)) {
      if (entries_.size() == kMaxEntries) entries_.clear();
      entries_.push_back({{x, y}, cost, {}});
    }
    return cost;
  }

  /// The last softmin over the cached entry whose matrix is `cost` itself (kept with it: the next
  /// one's row shifts); null when not cached.
  cpu::PreviousSoftmin* last_softmin(const at::Tensor& cost) {
    for (Entry& entry : entries_) {
      if (entry.cost.is_same(cost)) return &entry.last;
    }
    return nullptr;
  }

 private:
  // 64 MB of float32 on the CPU: larger matrices are recomputed, as the user of a forced
  // tensorized backend on big clouds expects memory O(N M), not a multiple of it. On the GPU up to
  // kCudaTensorizedMaxPairs (512 MB of float32), where resolve_backend picks this backend.
  static constexpr int64_t kLargestCachedEntries = int64_t{1} << 24;
  static constexpr size_t kMaxEntries = 4;
  struct Entry {
    CloudPair clouds;
    at::Tensor cost;
    cpu::PreviousSoftmin last;
  };
  int p_;
  std::vector<Entry> entries_;
};

class TensorizedReducer final : public Reducer {
 public:
  explicit TensorizedReducer(int p) : p_(p), cache_(p) {}

  at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                     double eps) const override {
    // On the GPU one kernel reads each stored entry once (ATen's would write and read the
    // exponents, then reduce them twice); not under autograd, which needs ATen's graph.
    // On the CPU likewise, with no N x M temporaries.
    // Under autograd the CPU kernel runs inside its own recorded node (DenseCpuSoftmin).
    const at::Tensor cost = cache_.cost(x, y);
    if (dense_kernels_take(cost, h)) {
      const at::Tensor h_contiguous = h.contiguous();
      const at::Tensor shifts = row_shifts(cost, h_contiguous.detach(), eps);
      const at::Tensor out = recorded(cost, h)
                                 ? DenseCpuSoftmin::apply(cost, h_contiguous, eps, &shifts)
                                 : dense_cpu_reduction(cpu::DenseReduction::softmin, cost, h_contiguous, eps, shifts);
      remember_softmin(cost, h_contiguous.detach(), eps, out.detach());
      return out;
    }
    const at::Tensor fused = dense_cuda_softmin(cost, h, eps);
    if (fused.defined()) return fused;
    return -eps * at::logsumexp(h.unsqueeze(1) - cost / eps, /*dim=*/2);
  }

  at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                   double eps) const override {
    const at::Tensor cost = cache_.cost(x, y);
    at::Tensor weights = dense_cpu_reduction(cpu::DenseReduction::softmax_weights, cost, h, eps);
    if (!weights.defined()) weights = at::softmax(h.unsqueeze(1) - cost / eps, /*dim=*/2);
    if (p_ == 2) return x - at::bmm(weights, y);  // sum_j w_ij (x_i - y_j)
    // p = 1: sum_j (w_ij / |x_i - y_j|) (x_i - y_j), with the j = i-like terms (distance 0) dropped.
    const at::Tensor positive = cost > 0;
    weights = at::where(positive, weights / at::where(positive, cost, at::ones_like(cost)),
                        at::zeros_like(cost));
    return x * weights.sum(2, /*keepdim=*/true) - at::bmm(weights, y);
  }

  at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                          double eps) const override {
    const at::Tensor cost = cache_.cost(x, y);
    const at::Tensor fused = dense_cpu_reduction(cpu::DenseReduction::softmax_cost, cost, h, eps);
    if (fused.defined()) return fused;
    return (at::softmax(h.unsqueeze(1) - cost / eps, 2) * cost).sum(2);
  }

  bool differentiable() const override { return true; }
  std::string name() const override { return "tensorized"; }

 private:
  // Shifts from the last CPU softmin over the same cached cost matrix (so the same clouds)
  // (cpu/row_shifts.h): one pass instead of two. Any shift gives the exact result (the kernel
  // checks the range of each row's sum), so a stale one costs time, never accuracy.
  at::Tensor row_shifts(const at::Tensor& cost, const at::Tensor& h, double eps) const {
    const cpu::PreviousSoftmin* last = cache_.last_softmin(cost);
    return last ? cpu::row_shifts(*last, h, eps) : at::Tensor();
  }

  void remember_softmin(const at::Tensor& cost, const at::Tensor& h, double eps, const at::Tensor& softmin) const {
    if (cpu::PreviousSoftmin* last = cache_.last_softmin(cost)) *last = {h, softmin, eps};
  }

  int p_;
  mutable CostCache cache_;
};

}  // namespace

std::unique_ptr<Reducer> make_tensorized_reducer(int p) {
  return std::make_unique<TensorizedReducer>(p);
}

}  // namespace sinkhorn::reduce
