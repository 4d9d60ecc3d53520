// Checks and normalises the clouds handed to a public entry point.
#pragma once

#include <ATen/core/Tensor.h>

#include "sinkhorn/options.h"

namespace sinkhorn::api {

/// Inputs in batched layout and one compute dtype: x (B, N, D), a (B, N), y (B, M, D), b (B, M).
struct BatchedInputs {
  at::Tensor a, x, b, y;
  /// The caller's tensors were batched, (B, N, D); else (N, D), given a batch axis of 1 here.
  bool batched = false;
  /// dtype of the callers' points; results are returned in it.
  at::ScalarType dtype = at::kFloat;
  /// Diagonal of the bounding box of both clouds (all batch entries): where eps-scaling starts.
  double diameter = 0;
};

/// Throws sinkhorn::Error naming the argument (x, y, a, b) and the problem: undefined or empty
/// clouds, wrong ranks, mismatched shapes, dimensions, dtypes or devices, NaN or Inf, negative or
/// zero-sum weights, and (for balanced Sinkhorn losses) weights of unequal total mass.
/// Undefined weights become uniform 1/N. float16 and bfloat16 are promoted to float32.
/// `whole_clouds` false checks one rank's block of a sharded solve: everything but the total
/// masses (positive, equal when balanced), which only the union has.
BatchedInputs prepare_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b,
                             const at::Tensor& y, const SinkhornOptions& options, bool whole_clouds = true);

}  // namespace sinkhorn::api
