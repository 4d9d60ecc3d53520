"""Shared set-up of the Python tests: one thread per test process (ctest runs files in parallel),
and a dense float64 oracle written here in NumPy, independent of the library."""
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def logsumexp(m, axis):
    top = m.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(m - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def cost(x, y, p):
    d = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    return d ** 2 / 2 if p == 2 else d


def ot_eps(a, x, b, y, eps, p, sweeps=200000, tol=1e-15):
    """OT_eps(a, b) = <a, f> + <b, g> at the fixed point of the log-domain Sinkhorn updates, with
    the potentials (f, g): the dual of min <pi, C> + eps KL(pi | a x b). Stops on the L1 error of
    the plan's first marginal (the second is exact after each g update), not on the change of the
    potentials, which can be tiny per sweep far from the fixed point."""
    c = cost(x, y, p)
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for sweep in range(sweeps):
        f = -eps * logsumexp(np.log(b)[None, :] + (g[None, :] - c) / eps, 1)
        g = -eps * logsumexp(np.log(a)[:, None] + (f[:, None] - c) / eps, 0)
        if sweep % 20 == 0:
            plan = np.exp((f[:, None] + g[None, :] - c) / eps) * a[:, None] * b[None, :]
            if abs(plan.sum(1) - a).sum() < tol:
                break
    return a @ f + b @ g, f, g


def divergence(a, x, b, y, eps, p):
    """S_eps = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2."""
    return ot_eps(a, x, b, y, eps, p)[0] - ot_eps(a, x, a, x, eps, p)[0] / 2 - ot_eps(b, y, b, y, eps, p)[0] / 2


@pytest.fixture
def clouds():
    """Small float64 clouds with non-uniform weights that sum to one."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(23, 3, generator=generator, dtype=torch.float64)
    y = torch.randn(17, 3, generator=generator, dtype=torch.float64) * 0.7 + 0.4
    a = torch.rand(23, generator=generator, dtype=torch.float64) + 0.2
    b = torch.rand(17, generator=generator, dtype=torch.float64) + 0.2
    return a / a.sum(), x, b / b.sum(), y
