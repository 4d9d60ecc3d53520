#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "reduce/reducer.h"

namespace sinkhorn::reduce {

/// True when this build has the CUDA reducer (nvcc and a CUDA-enabled LibTorch were found).
bool cuda_reducer_built();

/// The online CUDA backend: the streaming kernels of reduce/cuda/online_kernels.cuh on CUDA
/// tensors, launched on LibTorch's current stream of the tensors' device; memory O(N + M D).
/// float32 and float64 in their own precision, float16 / bfloat16 computed in float32 and
/// returned in their dtype. Not differentiable: envelope gradients only. Throws sinkhorn::Error
/// naming `backend` when the build has no CUDA reducer or the tensors are not on a GPU.
std::unique_ptr<Reducer> make_online_cuda_reducer(int p);

/// The tensorized backend's softmin on the GPU in one pass over a stored cost matrix (B, N, M)
/// with h (B, M), both CUDA tensors of one floating dtype: the dense kernel of online_kernels.cuh.
/// Returns an undefined tensor where it does not apply (no CUDA reducer in this build, CPU tensors,
/// half precision, autograd recording), so the caller falls back to ATen's log-sum-exp.
at::Tensor dense_cuda_softmin(const at::Tensor& cost, const at::Tensor& h, double eps);

}  // namespace sinkhorn::reduce
