"""sinkhorn.solve: one loss with its potentials and the solver's diagnostics."""
from dataclasses import dataclass
from typing import Optional

import torch

from . import _C
from ._convergence import check_on_unconverged, report_convergence
from ._arguments import check_flag, check_name, check_number, check_pair, check_points, check_weights



@dataclass(frozen=True)
class Solution:
    """What sinkhorn.solve returns.

    value: the loss, a 0-d tensor or (B,), differentiable in x, y, a and b.
    f_ab, g_ab: dual potentials of OT_eps(a, b) on x and on y (detached; shaped like the weights,
        (N,) or (B, N)); f_aa, g_bb: those of the symmetric problems OT_eps(a, a) and OT_eps(b, b).
        None where the loss does not use them (all four for the kernel losses).
    iterations: Sinkhorn sweeps run, eps-annealing included; schedule_length: eps values visited.
    marginal_error: the largest relative L1 marginal error, over the transport plans the value comes
        from (sum_i |pi 1 - a|_i / sum a, and likewise for the columns) and the batch entries;
        converged: marginal_error <= tolerance, the tolerance actually used (the one asked for,
        divided by eps / max C above the cost scale, raised to what the dtype resolves).
    epsilon: the final eps = blur**p; diameter: where eps-scaling started.
    backend: the backend that ran ("online", "tensorized", "multiscale", ...; "limit" when eps is so far
        above the clouds' largest cost that the eps -> infinity limit is returned, docs/numerics.md).
    visited_pairs_fraction, truncation_rebuilds: the multiscale backend's truncation (1 and 0 else).
    world_size: the processes that shared the solve (process_group), 1 for one process.
    """
    value: torch.Tensor
    f_ab: Optional[torch.Tensor]
    g_ab: Optional[torch.Tensor]
    f_aa: Optional[torch.Tensor]
    g_bb: Optional[torch.Tensor]
    iterations: int
    marginal_error: float
    converged: bool
    schedule_length: int
    tolerance: float
    epsilon: float
    diameter: float
    backend: str
    visited_pairs_fraction: float
    truncation_rebuilds: int
    world_size: int = 1


def checked_options(*, loss, p, blur, reach, diameter, scaling, cluster_scale, tolerance, max_iterations,
                    iterations, gradient, backend, coarse_correction=False):
    """The keyword options of _C.solve: their types checked here, their names and ranges by the library."""
    options = dict(
        loss=check_name("loss", loss),
        p=check_number("p", p, integer=True),
        blur=check_number("blur", blur),
        reach=check_number("reach", reach, optional=True),
        diameter=check_number("diameter", diameter, optional=True),
        scaling=check_number("scaling", scaling),
        cluster_scale=check_number("cluster_scale", cluster_scale, optional=True),
        tolerance=check_number("tolerance", tolerance),
        max_iterations=check_number("max_iterations", max_iterations, integer=True),
        iterations=check_number("iterations", iterations, integer=True, optional=True),
        gradient=check_name("gradient", gradient),
        backend=check_name("backend", backend),
        coarse_correction=check_flag("coarse_correction", coarse_correction),
    )
    _C.check_options(**options)
    return options


def run(a, x, b, y, options, process_group=None):
    """Checks the tensors and calls the library: returns (value, potentials..., diagnostics).

    With a process_group, x, y, a and b are this rank's rows; the potentials too."""
    check_points("x", x)
    check_points("y", y)
    check_pair(x, y)
    a = check_weights("a", a, x, "x")
    b = check_weights("b", b, y, "y")
    return _C.solve(a, x, b, y, **options, process_group=process_group)


def solve(x, y, a=None, b=None, *, loss="divergence", p=2, blur=0.05, reach=None, diameter=None, scaling=0.5,
          cluster_scale=None, tolerance=1e-4, max_iterations=1000, iterations=None, gradient="auto",
          backend="auto", coarse_correction=False, process_group=None, on_unconverged="warn"):
    """The loss between the clouds (a, x) and (b, y), with potentials and diagnostics.

    x (N, D) or (B, N, D); y (M, D) or (B, M, D); a, b the weights ((N,), (N, 1), (B, N) or
    (B, N, 1); None: uniform 1/N). Options (docs/python.md):
      loss: "divergence" (S_eps, debiased), "ot_eps" (OT_eps), "primal" (the paper's E_eps), "ot"
        (exact OT, small clouds), "energy", "gaussian", "laplacian", "gaussian_mixture" (kernel MMDs).
      p: 1 (C = |x - y|) or 2 (C = |x - y|^2 / 2). blur: eps = blur**p. reach: unbalanced
        transport, rho = reach**p. diameter, scaling: the eps-scaling schedule. cluster_scale: the
        multiscale backend's cells.
      tolerance: stop when the relative L1 marginal error is under it; max_iterations: sweeps allowed
        at the final eps; iterations: the paper's fixed-L mode (exactly L sweeps at eps, no annealing).
      gradient: "auto", "envelope" (exact at convergence, linear memory) or "unrolled" (autograd
        through the iterations). backend: "auto", "tensorized", "online", "multiscale", "reference".
      coarse_correction: True: when the loop crawls at the final eps, correct the potentials by one
        constant per cluster of points (clustered clouds in D <= 3; docs/numerics.md). Off by default.
      process_group: a torch.distributed group: x, y, a, b are this rank's rows, and the ranks
        solve the union of everyone's rows together (docs/distributed.md); the value is the same
        on every rank, potentials and gradients are this rank's rows.
      on_unconverged: what a solve that stops at max_iterations above its tolerance does: "warn"
        (sinkhorn.ConvergenceWarning, shown once per calling line), "raise" (sinkhorn.ConvergenceError)
        or "ignore"; Solution.converged says it either way.
    Raises ValueError naming the argument on bad input; RuntimeError when a rank of the group is
    lost (died, or stalled past the group's timeout).
    """
    options = checked_options(loss=loss, p=p, blur=blur, reach=reach, diameter=diameter, scaling=scaling,
                              cluster_scale=cluster_scale, tolerance=tolerance, max_iterations=max_iterations,
                              iterations=iterations, gradient=gradient, backend=backend,
                              coarse_correction=coarse_correction)
    check_on_unconverged(on_unconverged)
    value, f_ab, g_ab, f_aa, g_bb, diagnostics = run(a, x, b, y, options, process_group)
    report_convergence(diagnostics, on_unconverged, "sinkhorn.solve")
    return Solution(value=value, f_ab=f_ab, g_ab=g_ab, f_aa=f_aa, g_bb=g_bb, **diagnostics)
