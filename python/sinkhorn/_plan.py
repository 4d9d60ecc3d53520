"""The entropic transport plan pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), never stored.

Every product with it runs over blocks of rows (at most _BLOCK_ENTRIES cost entries at a time), so
memory stays linear in N + M whatever the clouds' sizes, on any device torch runs on. Under
autograd each block is checkpointed: its cost entries are recomputed in the backward pass instead
of being kept, so a gradient through the plan costs linear memory too.

Conventions (docs/numerics.md): points (B, N, D) and (B, M, D), weights (B, N) and (B, M),
potentials in the library's units (cost |x - y|^2 / 2 for p = 2, |x - y| for p = 1).
"""
import math

import torch
from torch.utils.checkpoint import checkpoint

# Cost entries of one block (times D for the differences): 2^22 entries are 32 MB in float64.
_BLOCK_ENTRIES = 1 << 22


def cost(x, y, p):
    """C(x_i, y_j) for blocks x (B, n, D), y (B, M, D): |x - y|^2 / 2 (p = 2) or |x - y| (p = 1),
    from the differences themselves (no |x|^2 + |y|^2 - 2 x.y cancellation)."""
    squared = (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)
    if p == 2:
        return squared / 2
    # sqrt's derivative is infinite at 0; there the differences' derivative is 0, and the product
    # must be 0 (the subgradient the library uses), not NaN.
    return squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt()


def _rows_per_block(batch, m, d):
    return max(1, _BLOCK_ENTRIES // max(1, batch * m * max(1, d)))


def _blocks(n, rows):
    return [(start, min(n, start + rows)) for start in range(0, n, rows)]


def _needs_graph(*tensors):
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _over_row_blocks(function, x, rest_rows, shared):
    """function(x_block, *rest_row_blocks, *shared) over blocks of x's rows, concatenated along
    the rows; checkpointed under autograd."""
    n, m, d = x.shape[1], shared[0].shape[1], x.shape[2]
    graph = _needs_graph(x, *rest_rows, *shared)
    outputs = []
    for start, stop in _blocks(n, _rows_per_block(x.shape[0], m, d)):
        args = (x[:, start:stop],) + tuple(r[:, start:stop] for r in rest_rows) + tuple(shared)
        outputs.append(checkpoint(function, *args, use_reentrant=False) if graph else function(*args))
    return torch.cat(outputs, dim=1)


def log_of_weights(w):
    """log w, -inf where w = 0, with a zero (not NaN) derivative there: padding entries of ragged
    batches have weight 0."""
    positive = w > 0
    return torch.where(positive, torch.where(positive, w, torch.ones_like(w)).log(), -math.inf)


def _log_weights(x, f, y, g, b, eps, p):
    """log(pi_ij / a_i) = (f_i + g_j - C_ij) / eps + log b_j for a block of rows."""
    return (f.unsqueeze(-1) + g.unsqueeze(-2) - cost(x, y, p)) / eps + log_of_weights(b).unsqueeze(-2)


def _product_block(x, f, a, y, g, b, v, eps, p):
    # sum_j pi_ij v_j = a_i e^{m_i} sum_j e^{l_ij - m_i} v_j, shifted by the row's largest l_ij.
    logs = _log_weights(x, f, y, g, b, eps, p)
    shift = logs.amax(dim=-1, keepdim=True).clamp_min(-torch.finfo(logs.dtype).max).detach()
    weights = (logs - shift).exp()
    return (a.unsqueeze(-1) * shift.exp()) * torch.bmm(weights, v)


def plan_product(x, f, a, y, g, b, v, eps, p):
    """pi @ v for v (B, M, K): (B, N, K)."""
    return _over_row_blocks(lambda *t: _product_block(*t, eps, p), x, (f, a), (y, g, b, v))


def _softmin_block(x, y, h, b, eps, p):
    # -eps log sum_j b_j exp((h_j - C_ij) / eps)
    logs = (h.unsqueeze(-2) - cost(x, y, p)) / eps + log_of_weights(b).unsqueeze(-2)
    return -eps * torch.logsumexp(logs, dim=-1)


def softmin(x, y, h, b, eps, p):
    """f_i = -eps log sum_j b_j exp((h_j - C(x_i, y_j)) / eps): (B, N)."""
    return _over_row_blocks(lambda *t: _softmin_block(*t, eps, p), x, (), (y, h, b))


def _linear_block(x, f, a, y, g, b, eps, p):
    c = cost(x, y, p)
    logs = (f.unsqueeze(-1) + g.unsqueeze(-2) - c) / eps + log_of_weights(b).unsqueeze(-2)
    return (a * (logs.exp() * c).sum(-1)).sum(-1, keepdim=True)


def plan_cost(x, f, a, y, g, b, eps, p):
    """<pi, C> = sum_ij pi_ij C_ij: (B,)."""
    return _over_row_blocks(lambda *t: _linear_block(*t, eps, p), x, (f, a), (y, g, b)).sum(1)


def dense_plan(x, f, a, y, g, b, eps, p):
    """pi itself, (B, N, M)."""
    return a.unsqueeze(-1) * _log_weights(x, f, y, g, b, eps, p).exp()


class PlanOperator:
    """The plan as a linear operator, in linear memory: `plan @ v` for v of shape (M,) or (M, K)
    ((B, M) or (B, M, K) for a batch), `plan.T @ u`, `plan.shape`. Differentiable in the points,
    weights, potentials and v."""

    def __init__(self, x, f, a, y, g, b, eps, p, batched, transposed=False):
        self._args = (x, f, a, y, g, b)
        self._eps, self._p, self._batched, self._transposed = eps, p, batched, transposed

    @property
    def shape(self):
        x, _, _, y, _, _ = self._args
        n, m = x.shape[1], y.shape[1]
        shape = (m, n) if self._transposed else (n, m)
        return ((x.shape[0],) if self._batched else ()) + shape

    @property
    def T(self):
        x, f, a, y, g, b = self._args
        return PlanOperator(x, f, a, y, g, b, self._eps, self._p, self._batched, not self._transposed)

    def transpose(self):
        return self.T

    def __matmul__(self, v):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"plan @ v: v must be a torch.Tensor, got {type(v).__name__}")
        x, f, a, y, g, b = self._args
        if self._transposed:  # pi^T is the plan of the problem with the roles swapped
            x, f, a, y, g, b = y, g, b, x, f, a
        columns = y.shape[1]
        leading = (x.shape[0], columns) if self._batched else (columns,)
        if tuple(v.shape[:len(leading)]) != leading or v.dim() > len(leading) + 1:
            raise ValueError(f"plan @ v: v must have shape {leading} or {leading + ('K',)}, got {tuple(v.shape)}")
        vector = v.dim() == len(leading)
        w = v.unsqueeze(-1) if vector else v
        if not self._batched:
            w = w.unsqueeze(0)
        out = plan_product(x, f, a, y, g, b, w.to(x.dtype), self._eps, self._p)
        if not self._batched:
            out = out.squeeze(0)
        return out.squeeze(-1) if vector else out

    def __repr__(self):
        return f"PlanOperator(shape={self.shape})"
