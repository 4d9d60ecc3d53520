"""What a solve that stopped short of its tolerance says: a warning, an error or nothing."""
import os
import sys
import warnings

_CHOICES = ("warn", "raise", "ignore")
# Frames of this package, of torch.nn.Module's call machinery and of torch.compiler.disable's
# wrapper (around solve) are skipped, so that a warning names the caller's line: Python shows a
# warning once per line (its "default" filter).
_OWN_FOLDER = os.path.dirname(os.path.abspath(__file__))
_MODULE_FILE = os.path.join("torch", "nn", "modules", "module.py")
_DYNAMO_FOLDER = os.path.join("torch", "_dynamo") + os.sep


class ConvergenceWarning(UserWarning):
    """A solve stopped at max_iterations with its marginal error above the tolerance."""


class ConvergenceError(RuntimeError):
    """on_unconverged="raise": a solve stopped at max_iterations above its tolerance."""


def check_on_unconverged(value):
    if value not in _CHOICES:
        raise ValueError(f"on_unconverged: must be one of {', '.join(repr(c) for c in _CHOICES)}, got {value!r}")
    return value


def _caller_stacklevel():
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(_OWN_FOLDER) or filename.endswith(_MODULE_FILE) or _DYNAMO_FOLDER in filename):
            return level
        frame = frame.f_back
        level += 1
    return level


def report_convergence(diagnostics, options, on_unconverged, caller):
    """Warns (or raises) when `diagnostics` say the solve did not converge. The paper's fixed-L
    mode (options["iterations"] set) runs the sweeps it was asked for: nothing to say there."""
    if not isinstance(diagnostics, dict):
        return  # traced (torch.compile): the diagnostics are a tensor the graph does not read
    if diagnostics["converged"] or on_unconverged == "ignore" or options.get("iterations") is not None:
        return
    message = (f"{caller}: not converged after {diagnostics['iterations']} sweeps: marginal error "
               f"{diagnostics['marginal_error']:.3g} > tolerance {diagnostics['tolerance']:.3g}; the value is off "
               "by about that fraction of eps. Raise max_iterations, use a larger blur, or pass "
               "on_unconverged='ignore' (docs/numerics.md, \"Limits\")")
    if on_unconverged == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=_caller_stacklevel())
