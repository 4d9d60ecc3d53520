#pragma once

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// Runs the double-precision reference kernels on the CPU, batch by batch; results come back in
/// the inputs' dtype and device. Not differentiable.
std::unique_ptr<Reducer> make_reference_reducer(int p);

}  // namespace sinkhorn::reduce
