"""Sinkhorn losses (entropic optimal transport) between weighted point clouds, with gradients.

    import torch, sinkhorn
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=0.05)   # GeomLoss's signature and meaning
    x = torch.randn(1000, 3, requires_grad=True)
    y = torch.randn(2000, 3)
    L = loss(x, y)                                              # S_eps, a 0-d tensor
    L.backward()                                                # x.grad

    result = sinkhorn.solve(x, y, blur=0.05)                    # value, potentials, diagnostics
    ot = sinkhorn.ot.solve_sample(x, y, reg=0.01)               # GeomLoss 0.3.1 / POT: plans, maps

The solves run in the compiled library (online SIMD + OpenMP kernels on the CPU with
torch.get_num_threads() threads, CUDA kernels on GPU tensors, multiscale for large 3-D clouds),
in linear memory; see docs/python.md.
"""
import torch  # LibTorch must be loaded before the compiled module that links it

from . import _C
from ._convergence import ConvergenceError, ConvergenceWarning
from ._solve import Solution, solve
from ._samples_loss import IgnoredArgumentWarning, SamplesLoss
from . import ot

__version__ = _C.__version__

__all__ = ["ConvergenceError", "ConvergenceWarning", "IgnoredArgumentWarning", "SamplesLoss", "Solution", "ot", "solve", "__version__"]
