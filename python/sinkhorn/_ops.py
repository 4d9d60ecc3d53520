"""The solve as a PyTorch operator, sinkhorn::solve (torch.library), for torch.compile and
torch.export: a schema, a fake implementation that gives shapes and dtypes without solving, and an
autograd formula, so that a compiled training step sees one opaque node instead of breaking its
graph at a call into a compiled extension.

The operator returns the value, the four potentials, the value's gradients with respect to the
inputs asked for (computed with the value: the envelope gradients cost one reduction, and the
backward pass only scales them) and the diagnostics as a float64 CPU tensor. Eager calls keep using
the extension directly (sinkhorn._C.solve); the operator is what tracing sees.
"""
import json
from typing import List, Optional, Tuple

import torch

from . import _C

# The diagnostics tensor: these fields in this order, then the backend's index in BACKENDS.
DIAGNOSTIC_FIELDS = ("iterations", "marginal_error", "converged", "schedule_length", "tolerance", "epsilon",
                     "diameter", "visited_pairs_fraction", "truncation_rebuilds", "world_size", "corrected_sweeps")
BACKENDS = ("tensorized", "online", "multiscale", "reference", "limit", "network_simplex")
_INTEGER_FIELDS = ("iterations", "schedule_length", "truncation_rebuilds", "world_size", "corrected_sweeps")
# Which potentials each loss returns: (f_ab, g_ab, f_aa, g_bb).
_KERNEL_LOSSES = ("energy", "gaussian", "laplacian", "gaussian_mixture")


def _potentials_present(loss):
    if loss in _KERNEL_LOSSES:
        return (False, False, False, False)
    if loss in ("divergence", "primal"):
        return (True, True, True, True)
    if loss == "ot":
        return (False, False, False, False)  # the network simplex's plan, no potentials returned
    return (True, True, False, False)  # ot_eps


def _autograd_keys():
    key = torch._C.DispatchKey
    keys = torch._C.DispatchKeySet(key.ADInplaceOrView)
    for name in ("AutogradOther", "AutogradCPU", "AutogradCUDA", "AutogradFunctionality"):
        if hasattr(key, name):
            keys = keys | torch._C.DispatchKeySet(getattr(key, name))
    return keys


_AUTOGRAD_KEYS = _autograd_keys()


class _autograd_included:
    """Removes the autograd dispatch keys from this thread's excluded set for a block."""

    def __enter__(self):
        include = torch._C._dispatch_tls_local_include_set()
        exclude = torch._C._dispatch_tls_local_exclude_set() - _AUTOGRAD_KEYS
        self._guard = torch._C._ForceDispatchKeyGuard(include, exclude)
        self._guard.__enter__()
        return self

    def __exit__(self, *exc):
        return self._guard.__exit__(*exc)


def _empty(like):
    return like.new_empty((0,))


@torch.library.custom_op("sinkhorn::solve", mutates_args=())
def solve_op(a: Optional[torch.Tensor], x: torch.Tensor, b: Optional[torch.Tensor], y: torch.Tensor, options: str,
             wanted: List[bool]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                          torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The solve of sinkhorn._C.solve on (a, x, b, y) with `options` (JSON of the option dict),
    plus the value's gradients for the inputs flagged in `wanted` (a, x, b, y; empty otherwise).
    a or b None: uniform weights (the library's own path for them)."""
    leaves = [None if t is None else t.detach().requires_grad_(w) for t, w in zip((a, x, b, y), wanted)]
    # An operator's implementation runs below autograd (its dispatch keys excluded); the library's
    # gradients are an autograd graph (envelope Function, or the unrolled sweeps), so autograd is
    # let back in for this call alone.
    with torch.enable_grad(), _autograd_included():
        value, f_ab, g_ab, f_aa, g_bb, diagnostics = _C.solve(leaves[0], leaves[1], leaves[2], leaves[3],
                                                              json.loads(options))
        needed = [t for t in leaves if t is not None and t.requires_grad]
        grads = torch.autograd.grad(value, needed, grad_outputs=torch.ones_like(value)) if needed else []
    grads = iter(grads)
    gradients = [next(grads).detach() if w and t is not None else _empty(x) for t, w in zip((a, x, b, y), wanted)]
    potentials = [_empty(value) if p is None else p.detach() for p in (f_ab, g_ab, f_aa, g_bb)]
    backend = diagnostics["backend"]
    numbers = [float(diagnostics[name]) for name in DIAGNOSTIC_FIELDS]
    numbers.append(float(BACKENDS.index(backend)) if backend in BACKENDS else -1.0)
    return (value.detach(), *potentials, *gradients, torch.tensor(numbers, dtype=torch.float64))


@solve_op.register_fake
def _(a, x, b, y, options, wanted):
    loss = json.loads(options)["loss"]
    value = x.new_empty(x.shape[:-2])
    present = _potentials_present(loss)
    shapes = (x.shape[:-1], y.shape[:-1], x.shape[:-1], y.shape[:-1])
    potentials = [x.new_empty(shape) if p else x.new_empty((0,)) for shape, p in zip(shapes, present)]
    gradients = [t.new_empty(t.shape) if w and t is not None else x.new_empty((0,)) for t, w in zip((a, x, b, y), wanted)]
    diagnostics = torch.empty((len(DIAGNOSTIC_FIELDS) + 1,), dtype=torch.float64, device="cpu")
    return (value, *potentials, *gradients, diagnostics)


def _setup_context(ctx, inputs, output):
    ctx.wanted = inputs[5]
    ctx.save_for_backward(*output[5:9])


def _backward(ctx, grad_value, *_ignored):
    # d value / d input was computed with the value; the chain rule scales it by the incoming
    # gradient of each batch entry (the entries are independent problems). The potentials and the
    # diagnostics are not differentiable outputs here.
    if torch.is_grad_enabled():  # create_graph=True: a second derivative is asked for
        raise RuntimeError("sinkhorn: double backward is not supported (the gradients are the envelope's, "
                           "constants of the solve)")
    saved = ctx.saved_tensors
    result = []
    for gradient, w in zip(saved, ctx.wanted):
        if not w or gradient.numel() == 0:
            result.append(None)
            continue
        scale = grad_value.reshape(grad_value.shape + (1,) * (gradient.dim() - grad_value.dim()))
        result.append(scale * gradient)
    return (*result, None, None)


solve_op.register_autograd(_backward, setup_context=_setup_context)


def traced(*tensors):
    """Whether the call is being traced (torch.compile, torch.export) rather than run: then the
    operator is called instead of the extension."""
    if torch.compiler.is_compiling():
        return True
    return any(isinstance(t, torch.Tensor) and torch._subclasses.fake_tensor.is_fake(t) for t in tensors)


def options_text(options):
    """The options as the operator takes them: JSON with sorted keys."""
    return json.dumps(options, sort_keys=True)


def run_traced(a, x, b, y, options, text=None):
    """The operator's call: (value, f_ab, g_ab, f_aa, g_bb, diagnostics tensor); missing
    potentials are None."""
    grad_on = torch.is_grad_enabled()
    wanted = [bool(grad_on and t is not None and t.requires_grad) for t in (a, x, b, y)]
    outputs = solve_op(a, x, b, y, text if text is not None else options_text(options), wanted)
    present = _potentials_present(options["loss"])
    potentials = [p if keep else None for p, keep in zip(outputs[1:5], present)]
    return (outputs[0], *potentials, outputs[9])


def diagnostics_of(numbers):
    """The diagnostics dict of a diagnostics tensor (eager code only: it reads the values)."""
    values = numbers.tolist()
    diagnostics = {name: (int(v) if name in _INTEGER_FIELDS else v) for name, v in zip(DIAGNOSTIC_FIELDS, values)}
    diagnostics["converged"] = bool(diagnostics["converged"])
    index = int(values[-1])
    diagnostics["backend"] = BACKENDS[index] if 0 <= index < len(BACKENDS) else "unknown"
    return diagnostics
