#pragma once

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// The online CPU backend: streaming SIMD + OpenMP kernels (cpu/online_kernels.h), memory
/// O(N + M D). float32 and float64 in their own precision (other dtypes through float32);
/// CPU tensors only. Not differentiable: envelope gradients only.
std::unique_ptr<Reducer> make_online_cpu_reducer(int p);

}  // namespace sinkhorn::reduce
