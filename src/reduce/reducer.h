// The reduction layer's interface: the only operations the Sinkhorn solver needs over N x M pairs.
// Every reduction is batched over B independent problems and streams (or materialises, for the
// tensorized backend) the matrix of pair terms h_j - C(x_i, y_j) / eps.
//
// Shapes: x (B, N, D), y (B, M, D), h (B, M); all one floating dtype and one device.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sinkhorn/options.h"

namespace sinkhorn::reduce {

/// What kernel truncation did during a solve (the multiscale backend).
struct TruncationReport {
  /// Pairs the reductions visited over the N M pairs a dense reduction visits, all reductions.
  double visited_fraction = 1.0;
  /// Times the kept blocks were recomputed (a new eps, or potentials past the bound's margin).
  int rebuilds = 0;
  /// Seconds spent recomputing them.
  double rebuild_seconds = 0.0;
};

/// A pair of clouds as the key of a reducer's cache: the tensors themselves (held, so that their
/// memory cannot be reused by another tensor while cached) and their version counters (which
/// in-place changes bump). Tensors made under torch.inference_mode have no version counter; the
/// clouds a solve reduces over are its own centred copies, never changed in place.
struct CloudPair {
  CloudPair(const at::Tensor& x_, const at::Tensor& y_) : x(x_), y(y_), x_version(version(x_)), y_version(version(y_)) {}
  bool matches(const at::Tensor& a, const at::Tensor& b) const {
    return x.is_same(a) && y.is_same(b) && version(a) == x_version && version(b) == y_version;
  }
  static int64_t version(const at::Tensor& t) { return t.is_inference() ? 0 : t._version(); }
  at::Tensor x, y;
  int64_t x_version, y_version;
};

/// One softmin of Reducer::softmins: softmin_eps over (*y) of h, for the rows of (*x).
struct SoftminRequest {
  const at::Tensor* x;
  const at::Tensor* y;
  at::Tensor h;
  double eps;
};

class Reducer {
 public:
  virtual ~Reducer() = default;

  /// softmin_eps(C, h)_i = -eps * log sum_j exp(h_j - C(x_i, y_j) / eps), shape (B, N).
  virtual at::Tensor softmin(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                             double eps) const = 0;

  /// Several independent softmins, in order. The default runs them one by one; a backend that
  /// communicates per reduction (dist::ShardedReducer) exchanges them in one message.
  virtual std::vector<at::Tensor> softmins(const std::vector<SoftminRequest>& requests) const;

  /// sum_j w_ij grad_x C(x_i, y_j) with w_ij = softmax_j(h_j - C(x_i, y_j) / eps), shape (B, N, D).
  /// grad_x of |x - y| is taken as 0 at x = y (the minimal-norm subgradient).
  virtual at::Tensor softmax_cost_gradient(const at::Tensor& x, const at::Tensor& y,
                                           const at::Tensor& h, double eps) const = 0;

  /// sum_j w_ij C(x_i, y_j) with the same weights, shape (B, N): the transport cost per row.
  virtual at::Tensor softmax_cost(const at::Tensor& x, const at::Tensor& y, const at::Tensor& h,
                                  double eps) const = 0;

  /// True when autograd can differentiate through the reductions (needed by unrolled gradients).
  virtual bool differentiable() const = 0;

  /// The backend's name, as the command line spells it.
  virtual std::string name() const = 0;

  /// Backends that skip pairs say how many they visited; the others visit all of them.
  virtual std::optional<TruncationReport> truncation() const { return std::nullopt; }
};

/// The backend that runs `backend` (resolved: not Backend::automatic) for cost exponent p (1 or 2)
/// on clouds x (B, N, D) and y (B, M, D); `cluster_scale` is the multiscale backend's grid cell
/// (unused by the others), `row_cluster_scale` its row clusters' (0: the same).
std::unique_ptr<Reducer> make_reducer(Backend backend, int p, const at::Tensor& x, const at::Tensor& y,
                                      double cluster_scale = 0, double row_cluster_scale = 0);

/// The one place that decides what Backend::automatic means: tensorized when autograd must run
/// through the reductions (unrolled gradients); on CUDA tensors (with the CUDA reducer built)
/// tensorized for D >= kCudaTensorizedMinDimension up to kCudaTensorizedMaxPairs pairs, online
/// otherwise; on other devices tensorized; on the CPU multiscale for large low-dimensional clouds
/// (D <= kMultiscaleMaxDimension, N M >= kMultiscaleMinPairs per batch entry), tensorized for
/// small clouds (B N M <= kTensorizedMaxPairs), online otherwise. Other backends are returned as
/// they are (validate() refuses a non-differentiable one with unrolled gradients).
Backend resolve_backend(Backend backend, const at::Tensor& x, const at::Tensor& y, bool needs_autograd = false);

/// The same decision from the shapes alone: `batch` entries of `rows` x `columns` pairs in
/// dimension `dimension`, on `device` (what a solve plan knows before it touches the data).
Backend resolve_backend(Backend backend, int64_t batch, int64_t rows, int64_t columns, int64_t dimension,
                        const at::Device& device, bool needs_autograd);

/// Up to this many pairs (all batch entries) the CPU keeps dense cost matrices (64 MB each in
/// float32): their dense kernels beat the online ones at every D (docs/benchmarks.md).
inline constexpr int64_t kTensorizedMaxPairs = int64_t{1} << 22;

/// On the GPU a stored cost matrix beats the online kernel from this dimension on (one 4-byte read
/// per pair against D + 8 instructions), up to this many pairs in all batch entries (2^27: 512 MB
/// per float32 matrix; the solver keeps up to four).
inline constexpr int64_t kCudaTensorizedMinDimension = 16;
inline constexpr int64_t kCudaTensorizedMaxPairs = int64_t{1} << 27;

/// Grids cluster points usefully in low dimension only (a cell per point beyond).
inline constexpr int64_t kMultiscaleMaxDimension = 3;
/// Below this many pairs the coarse solve and the truncation bounds cost more than they save
/// (measured crossover near N = M = 1,000 in 3-D: docs/benchmarks.md).
inline constexpr int64_t kMultiscaleMinPairs = int64_t{1} << 22;

}  // namespace sinkhorn::reduce
