#include "reduce/cpu/online_reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "reduce/cpu/dense_reduction.h"
#include "reduce/cpu/row_shifts.h"
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
    if (p_ == 2 && x.size(2) >= kBlockedMinDimension) return run_blocked(reduction, x, y, h, eps);
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
    const at::Tensor potentials = h.detach().to(dtype).contiguous();
    const at::Tensor shifts = reduction == cpu::Reduction::softmin ? row_shifts(x, y, potentials, eps) : at::Tensor();
    const auto reduce = [&](auto zero) {
      using T = decltype(zero);
      cpu::OnlineProblem<T> problem = online_problem<T>(reduction, points, y_t, h_padded, m, p_, eps, out);
      if (shifts.defined()) problem.row_shifts = shifts.data_ptr<T>();
      cpu::online_reduce(problem);
    };
    dtype == at::kDouble ? reduce(0.0) : reduce(0.0f);
    if (reduction == cpu::Reduction::softmin) remember_softmin(x, y, potentials, eps, out);
    return out.to(x.scalar_type());
  }

  // From this dimension on (p = 2), row blocks of the cost matrix by BLAS and the dense kernels
  // over them beat the streaming kernel, whose D multiply-adds per pair run at a fraction of a
  // matrix product's rate (docs/benchmarks.md).
  static constexpr int64_t kBlockedMinDimension = 16;
  // A block holds at most this many entries (64 MB in float32) and 16 to 512 rows: enough rows
  // for the matrix product to run near its peak.
  static constexpr int64_t kBlockEntries = int64_t{1} << 24;

  // Rows in blocks of R: C_block = |x_i|^2/2 + |y_j|^2/2 - x_i . y_j (one addmm, on the clouds the
  // solver has centred, as the tensorized backend), then the dense kernels (cpu/dense_kernels.h)
  // on the block. Memory O(R M) beyond O(N + M D); the costs carry the expansion's rounding,
  // about u |x|^2, like the tensorized backend's.
  at::Tensor run_blocked(cpu::Reduction reduction, const at::Tensor& x, const at::Tensor& y,
                         const at::Tensor& h, double eps) const {
    const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const at::Tensor points = x.detach().to(dtype).contiguous(), others = y.detach().to(dtype).contiguous();
    const at::Tensor potentials = h.detach().to(dtype).contiguous();
    const int64_t batch = points.size(0), n = points.size(1), m = others.size(1), d = points.size(2);
    const int64_t rows = std::clamp<int64_t>(kBlockEntries / std::max<int64_t>(m, 1), 16, 512);
    const at::Tensor x_half_norms = 0.5 * (points * points).sum(-1, /*keepdim=*/true);  // (B, N, 1)
    const at::Tensor y_half_norms = 0.5 * (others * others).sum(-1);                   // (B, M)
    const bool gradient = reduction == cpu::Reduction::softmax_cost_gradient;
    at::Tensor out = gradient ? at::empty({batch, n, d}, points.options()) : at::empty({batch, n}, points.options());
    const cpu::DenseReduction dense = reduction == cpu::Reduction::softmin      ? cpu::DenseReduction::softmin
                                      : reduction == cpu::Reduction::softmax_cost ? cpu::DenseReduction::softmax_cost
                                                                                  : cpu::DenseReduction::softmax_weights;
    // One buffer for every block's costs (and weights): fresh 10-MB blocks page-faulted more
    // than the arithmetic took.
    const at::Tensor cost_buffer = at::empty({std::min(rows, n), m}, points.options());
    const at::Tensor shifts = reduction == cpu::Reduction::softmin ? row_shifts(x, y, potentials, eps) : at::Tensor();
    const at::Tensor weight_buffer = gradient ? at::empty({std::min(rows, n), m}, points.options()) : at::Tensor();
    for (int64_t b = 0; b < batch; ++b) {
      const at::Tensor y_b = others[b], h_b = potentials[b];
      for (int64_t first = 0; first < n; first += rows) {
        const int64_t count = std::min(rows, n - first);
        const at::Tensor x_block = points[b].narrow(0, first, count);
        at::Tensor cost = cost_buffer.narrow(0, 0, count);
        at::add_out(cost, x_half_norms[b].narrow(0, first, count), y_half_norms[b]);
        cost.addmm_(x_block, y_b.t(), /*beta=*/1, /*alpha=*/-1).clamp_min_(0);
        at::Tensor block_out = gradient ? weight_buffer.narrow(0, 0, count) : out[b].narrow(0, first, count);
        dense_reduce_into(dense, cost.unsqueeze(0), h_b.unsqueeze(0), eps, block_out,
                          shifts.defined() ? shifts[b].narrow(0, first, count).unsqueeze(0) : at::Tensor());
        // sum_j w_ij (x_i - y_j) = x_i - (W y)_i: the weights sum to 1.
        if (gradient) {
          at::Tensor rows_out = out[b].narrow(0, first, count);
          at::addmm_out(rows_out, x_block, block_out, y_b, /*beta=*/1, /*alpha=*/-1);
        }
      }
    }
    if (reduction == cpu::Reduction::softmin) remember_softmin(x, y, potentials, eps, out);
    return out.to(x.scalar_type());
  }

  // The last softmin over each pair of clouds, keyed by the tensors themselves (held, so that their
  // memory cannot be reused meanwhile) and their version counters: the next one takes its row
  // shifts from it (row_shifts.h), one pass instead of two. Any shift gives the exact result (the
  // kernels check the range of each row's sum): a stale one costs time, not accuracy.
  struct LastSoftmin {
    CloudPair clouds;
    cpu::PreviousSoftmin previous;  // h (B, M) and softmin (B, N) in the kernels' dtype
  };
  static constexpr size_t kRememberedSoftmins = 4;  // (x, y), (y, x), (x, x), (y, y)

  at::Tensor row_shifts(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps) const {
    for (const LastSoftmin& last : last_softmins_) {
      if (last.clouds.matches(x, y)) return cpu::row_shifts(last.previous, h, eps);
    }
    return {};
  }

  void remember_softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h, double eps,
                        const at::Tensor& softmin) const {
    LastSoftmin entry{{x, y}, {h, softmin, eps}};
    for (LastSoftmin& last : last_softmins_) {
      if (last.clouds.matches(x, y)) {
        last = std::move(entry);
        return;
      }
    }
    if (last_softmins_.size() == kRememberedSoftmins) last_softmins_.erase(last_softmins_.begin());
    last_softmins_.push_back(std::move(entry));
  }

  int p_;
  mutable std::vector<LastSoftmin> last_softmins_;
};

}  // namespace

std::unique_ptr<Reducer> make_online_cpu_reducer(int p) { return std::make_unique<OnlineCpuReducer>(p); }

}  // namespace sinkhorn::reduce
