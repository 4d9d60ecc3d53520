"""Input checks of the Python entry points: every problem is a ValueError naming the argument."""
import numbers

import torch

_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fail(argument, problem):
    raise ValueError(f"{argument}: {problem}")


def check_not_transformed(name, tensor):
    """torch.func's transforms (grad, vmap, jacrev) hand wrapped tensors without storage, which the
    compiled solve cannot read: refused with the way round them."""
    if torch.compiler.is_compiling():
        return  # dynamo's own tensors are not torch.func's; the operator is traced instead
    if torch._C._functorch.is_functorch_wrapped_tensor(tensor):
        raise NotImplementedError(
            f"{name}: a torch.func transform (grad, vmap, jacrev, ...) is applied to this loss, which it does not "
            "support yet: use loss.backward() or torch.autograd.grad for gradients, and batched clouds (B, N, D) "
            "instead of vmap")


def check_points(name, points):
    """x or y: a floating tensor (N, D) or (B, N, D)."""
    if not isinstance(points, torch.Tensor):
        fail(name, f"expected a torch.Tensor of points, got {type(points).__name__}")
    check_not_transformed(name, points)
    if points.dim() not in (2, 3):
        fail(name, f"expected shape (N, D) or (B, N, D), got {tuple(points.shape)}")
    if points.dtype not in _FLOATING:
        fail(name, f"expected a floating dtype (float32, float64, float16, bfloat16), got {points.dtype}")
    return points


def check_weights(name, weights, points, points_name):
    """a or b: None (uniform), or (N,), (N, 1), (B, N), (B, N, 1) matching the points.

    Returns the weights shaped for the library ((N,) or (B, N)), or None."""
    if weights is None:
        return None
    if not isinstance(weights, torch.Tensor):
        fail(name, f"expected a torch.Tensor of weights, got {type(weights).__name__}")
    check_not_transformed(name, weights)
    leading = tuple(points.shape[:-1])  # (N,) or (B, N)
    if tuple(weights.shape) == leading:
        return weights
    if tuple(weights.shape) == leading + (1,):
        return weights.squeeze(-1)
    fail(name, f"expected shape {leading} or {leading + (1,)} to match {points_name} of shape "
               f"{tuple(points.shape)}, got {tuple(weights.shape)}")


def check_number(name, value, *, integer=False, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad:
        value = value.item()  # a 0-d tensor where a number is meant, as GeomLoss takes it
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        fail(name, f"expected {'an integer' if integer else 'a number'}"
                   f"{' or None' if optional else ''}, got {value!r}")
    if integer and not -2 ** 31 <= value < 2 ** 31:
        fail(name, f"must be at most {2 ** 31 - 1}, got {value}")
    return int(value) if integer else float(value)


def check_flag(name, value):
    if not isinstance(value, bool):
        fail(name, f"expected True or False, got {value!r}")
    return value


def check_name(name, value):
    """A name option (loss, gradient, backend): a string; which names exist, the library says."""
    if not isinstance(value, str):
        fail(name, f"expected a name, got {value!r}")
    return value


def check_pair(x, y):
    if x.dim() != y.dim():
        fail("y", f"has {y.dim()} dimensions where x has {x.dim()}: both (N, D) or both (B, N, D)")
    if x.shape[-1] != y.shape[-1]:
        fail("y", f"points of dimension {y.shape[-1]} where x has {x.shape[-1]}")
    if x.dim() == 3 and x.shape[0] != y.shape[0]:
        fail("y", f"batch of {y.shape[0]} where x has {x.shape[0]}")
    if x.device != y.device:
        fail("y", f"is on {y.device} where x is on {x.device}")
