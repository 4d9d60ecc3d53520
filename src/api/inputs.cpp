#include "api/inputs.h"

#include <ATen/ATen.h>

#include <cmath>

#include "solver/epsilon_schedule.h"
#include "util/check.h"

namespace sinkhorn::api {
namespace {

// Sparse and meta tensors have no values to reduce over: refused by name before anything reads them.
void check_storage(const at::Tensor& tensor, const char* name) {
  SINKHORN_CHECK_ARG(tensor.layout() == at::kStrided, name,
                     "is a " << tensor.layout() << " tensor: pass a dense one (" << name << ".to_dense())");
  SINKHORN_CHECK_ARG(!tensor.is_meta(), name, "is on the meta device: it has no values to solve with");
}

void check_points(const at::Tensor& points, const char* name) {
  SINKHORN_CHECK_ARG(points.defined(), name, "is undefined: expected a tensor of points");
  check_storage(points, name);
  SINKHORN_CHECK_ARG(points.dim() == 2 || points.dim() == 3, name, "must have shape (N, D) or (B, N, D), got " << points.sizes());
  SINKHORN_CHECK_ARG(points.dim() == 2 || points.size(0) > 0, name, "is an empty batch: shape " << points.sizes());
  SINKHORN_CHECK_ARG(at::isFloatingType(points.scalar_type()), name, "must be a floating-point tensor, got " << points.scalar_type());
  SINKHORN_CHECK_ARG(points.size(-2) > 0, name, "is an empty cloud: it has no points");
  SINKHORN_CHECK_ARG(points.size(-1) > 0, name, "has points of dimension 0");
}

// Weights for `points` (already batched, B x N x D): uniform when undefined.
at::Tensor batched_weights(const at::Tensor& weights, const at::Tensor& points, bool batched,
                           const char* name, const char* points_name, bool whole_cloud) {
  const int64_t batch = points.size(0), count = points.size(1);
  if (!weights.defined()) {
    return at::full({batch, count}, 1.0 / static_cast<double>(count), points.options());
  }
  check_storage(weights, name);
  const std::vector<int64_t> expected =
      batched ? std::vector<int64_t>{batch, count} : std::vector<int64_t>{count};
  SINKHORN_CHECK_ARG(weights.sizes() == at::IntArrayRef(expected), name, "must have shape " << at::IntArrayRef(expected) << " to match "
                      << points_name << ", got " << weights.sizes());
  SINKHORN_CHECK_ARG(at::isFloatingType(weights.scalar_type()), name, "must be a floating-point tensor, got " << weights.scalar_type());
  SINKHORN_CHECK_ARG(weights.device() == points.device(), name, "is on " << weights.device() << " but " << points_name << " is on "
                      << points.device());
  const at::Tensor values = weights.detach();
  SINKHORN_CHECK_ARG(at::isfinite(values).all().item<bool>(), name, "contains NaN or infinite values");
  SINKHORN_CHECK_ARG((values >= 0).all().item<bool>(), name, "has negative weights");
  const at::Tensor result = weights.to(points.scalar_type()).reshape({batch, count});
  SINKHORN_CHECK_ARG(!whole_cloud || (result.detach().sum(1) > 0).all().item<bool>(), name,
                     "sums to zero: a cloud needs positive total mass");
  return result;
}

// Finite coordinates, and a largest cost diameter^p that the results can hold: the Sinkhorn
// losses solve on rescaled clouds and return values of the order of diameter^p, which float32
// holds up to 3.4e38 (1e30 leaves a margin) and float64 up to 1.8e308; the kernel MMDs and exact
// OT form the costs on the caller's scale (1e30, as blur^p in options.cpp), where coordinates
// near 1e154 would make |x - y|^2 infinite. Returns the diameter of both clouds, from one pass
// over each.
double check_extent(const at::Tensor& x, const at::Tensor& y, int p, bool rescaled) {
  const double largest_cost = rescaled && x.scalar_type() == at::kDouble ? 1e300 : 1e30;
  const double limit = std::pow(largest_cost, 1.0 / p);
  const char* const advice = " overflow; rescale the points (the losses scale as length^p)";
  const solver::BoundingBox box_x = solver::BoundingBox::of(x), box_y = solver::BoundingBox::of(y);
  for (const auto& [name, box] : {std::pair<const char*, const solver::BoundingBox&>{"x", box_x}, {"y", box_y}}) {
    SINKHORN_CHECK_ARG(box.finite(), name, "contains NaN or infinite values");
  }
  for (const auto& [name, box] : {std::pair<const char*, const solver::BoundingBox&>{"x", box_x}, {"y", box_y}}) {
    const double extent = box.diagonal();
    SINKHORN_CHECK_ARG(extent <= limit, name,
                       "spans " << extent << " (bounding-box diagonal): costs |x - y|^" << p << " beyond " << largest_cost << advice);
  }
  const double together = box_x.merged(box_y).diagonal();
  SINKHORN_CHECK(together <= limit, "x and y lie " << together << " apart (bounding-box diagonal): costs |x - y|^" << p
                                                   << " beyond " << largest_cost << advice);
  return together;
}

at::ScalarType compute_dtype(at::ScalarType dtype) {
  return dtype == at::kHalf || dtype == at::kBFloat16 ? at::kFloat : dtype;
}

}  // namespace

BatchedInputs prepare_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                             const at::Tensor& y, const SinkhornOptions& options, bool whole_clouds) {
  check_points(x, "x");
  check_points(y, "y");
  SINKHORN_CHECK(x.dim() == y.dim(), "x and y must both be batched or both unbatched, got shapes "
                                         << x.sizes() << " and " << y.sizes());
  SINKHORN_CHECK(x.size(-1) == y.size(-1), "x and y must have the same dimension D, got "
                                               << x.size(-1) << " and " << y.size(-1));
  SINKHORN_CHECK(x.dim() == 2 || x.size(0) == y.size(0),
                 "x and y must have the same batch size, got " << x.size(0) << " and " << y.size(0));
  SINKHORN_CHECK(x.scalar_type() == y.scalar_type(), "x and y must have the same dtype, got "
                                                         << x.scalar_type() << " and " << y.scalar_type());
  SINKHORN_CHECK(x.device() == y.device(),
                 "x and y must be on the same device, got " << x.device() << " and " << y.device());

  BatchedInputs inputs;
  inputs.batched = x.dim() == 3;
  inputs.dtype = x.scalar_type();
  const at::ScalarType dtype = compute_dtype(x.scalar_type());
  inputs.x = (inputs.batched ? x : x.unsqueeze(0)).to(dtype);
  inputs.y = (inputs.batched ? y : y.unsqueeze(0)).to(dtype);
  inputs.diameter = check_extent(inputs.x, inputs.y, options.p, is_sinkhorn_loss(options.loss));
  inputs.a = batched_weights(a, inputs.x, inputs.batched, "a", "x", whole_clouds);
  inputs.b = batched_weights(b, inputs.y, inputs.batched, "b", "y", whole_clouds);

  if (whole_clouds && (is_sinkhorn_loss(options.loss) || options.loss == Loss::ot) && !options.reach) {
    // Balanced transport between unequal masses has no solution: the potentials drift forever.
    const at::Tensor mass_a = inputs.a.detach().sum(1).to(at::kDouble);
    const at::Tensor mass_b = inputs.b.detach().sum(1).to(at::kDouble);
    const double gap = ((mass_a - mass_b).abs() / at::max(mass_a, mass_b)).max().item<double>();
    SINKHORN_CHECK(gap <= 1e-4, "a and b must have the same total mass for balanced transport "
                                "(relative gap "
                                    << gap << "); normalise the weights or set reach (unbalanced)");
  }
  return inputs;
}

}  // namespace sinkhorn::api
