"""sinkhorn.solve: one loss with its potentials and the solver's diagnostics."""
from dataclasses import dataclass
from typing import Optional

import torch

from . import _C, _ops
from ._convergence import check_on_unconverged, report_convergence
from ._arguments import check_flag, check_name, check_number, check_pair, check_points, check_weights
from ._ragged import ragged_inputs, solve_packed, unpack



@dataclass(frozen=True)
class Solution:
    """What sinkhorn.solve returns.

    value: the loss, a 0-d tensor or (B,), differentiable in x, y, a and b.
    f_ab, g_ab: dual potentials of OT_eps(a, b) on x and on y (detached; shaped like the weights,
        (N,) or (B, N); for a ragged batch, lists of one tensor per entry); f_aa, g_bb: those of
        the symmetric problems OT_eps(a, a) and OT_eps(b, b).
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
    corrected_sweeps: sweeps of OT(a, b) corrected on clusters of points (coarse_correction).
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
    corrected_sweeps: int = 0


# The solve's options as the library declares them (src/api/option_table.h): name, kind, default,
# doc line, the losses it applies to, a sample value. The keywords of solve and SamplesLoss are
# these names (python/tests/test_options.py checks both signatures against the table).
OPTION_TABLE = tuple(_C.option_table())
_CHECKS = {
    "number": lambda name, value: check_number(name, value),
    "optional_number": lambda name, value: check_number(name, value, optional=True),
    "integer": lambda name, value: check_number(name, value, integer=True),
    "optional_integer": lambda name, value: check_number(name, value, integer=True, optional=True),
    "name": check_name,
    "flag": check_flag,
}


def checked_options(**given):
    """The options for _C.solve: their Python types checked here, their names, ranges and which
    losses they apply to by the library (an option given away from its default that the loss
    ignores is refused, naming it)."""
    options, changed = {}, []
    for name, kind, default, _doc, _applies, _sample in OPTION_TABLE:
        value = given.pop(name, default)
        options[name] = _CHECKS[kind](name, value)
        if options[name] != default:
            changed.append(name)
    if given:
        raise TypeError(f"unexpected option {sorted(given)[0]!r}")
    _C.check_options(options, changed)
    return options


def run(a, x, b, y, options, process_group=None, options_text=None):
    """Checks the tensors and calls the library: returns (value, potentials..., diagnostics).

    With a process_group, x, y, a and b are this rank's rows; the potentials too. Under tracing
    the call is the operator sinkhorn::solve, with options_text (_ops.options_text(options),
    made outside the trace) and the diagnostics as a tensor."""
    check_points("x", x)
    check_points("y", y)
    check_pair(x, y)
    a = check_weights("a", a, x, "x")
    b = check_weights("b", b, y, "y")
    if process_group is None and _ops.traced(a, x, b, y):
        # torch.compile / torch.export: the operator sinkhorn::solve, whose diagnostics stay a
        # tensor (reading them would break the graph). The process-group path stays eager.
        return _ops.run_traced(a, x, b, y, options, options_text)
    return _C.solve(a, x, b, y, options, process_group=process_group)


@torch.compiler.disable  # Solution's diagnostics are Python numbers: eager only (SamplesLoss compiles whole)
def solve(x, y, a=None, b=None, *, loss="divergence", p=2, blur=0.05, reach=None, diameter=None, scaling=0.5,
          cluster_scale=None, tolerance=1e-4, max_iterations=1000, iterations=None, gradient="auto",
          backend="auto", coarse_correction=True, process_group=None, on_unconverged="warn", batch_x=None,
          batch_y=None):
    """The loss between the clouds (a, x) and (b, y), with potentials and diagnostics.

    x (N, D) or (B, N, D); y (M, D) or (B, M, D); a, b the weights ((N,), (N, 1), (B, N) or
    (B, N, 1); None: uniform 1/N). A ragged batch (clouds of different sizes): x and y (and a, b)
    as lists of tensors or nested tensors, or (N, D) points with batch_x and batch_y (PyTorch
    Geometric's vectors of each point's entry); value is then (B,) and the potentials are lists of
    one tensor per entry. Options (docs/python.md):
      {options}
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
    ragged = ragged_inputs(x, y, a, b, batch_x, batch_y)
    if ragged is not None:
        x, a, x_sizes, y, b, y_sizes = ragged
        value, f_ab, g_ab, f_aa, g_bb, diagnostics = solve_packed(run, x, a, y, b, (x_sizes, y_sizes), options,
                                                                  process_group)
        diagnostics.pop("entries", None)
    else:
        value, f_ab, g_ab, f_aa, g_bb, diagnostics = run(a, x, b, y, options, process_group)
    report_convergence(diagnostics, options, on_unconverged, "sinkhorn.solve")
    if ragged is not None:
        f_ab, f_aa = (None if f is None else unpack(f, x_sizes) for f in (f_ab, f_aa))
        g_ab, g_bb = (None if g is None else unpack(g, y_sizes) for g in (g_ab, g_bb))
    return Solution(value=value, f_ab=f_ab, g_ab=g_ab, f_aa=f_aa, g_bb=g_bb, **diagnostics)


def option_docs(indent, skip=()):
    """The options' lines of a docstring, from the library's table (one place declares them)."""
    lines = []
    for name, _kind, default, doc, applies, _sample in OPTION_TABLE:
        if name in skip:
            continue
        scope = {"every_loss": "", "transport": " [transport losses]", "sinkhorn": " [Sinkhorn losses]"}[applies]
        lines.append(f"{name} (default {default!r}){scope}: {doc}")
    return ("\n" + indent).join(lines)


solve.__doc__ = solve.__doc__.replace("{options}", option_docs(" " * 6))
