"""Exact derivatives of converged Sinkhorn potentials, by the implicit function theorem.

The potentials solve f = lambda T_f(g; x, y, b) and g = lambda T_g(f; x, y, a), with
T_f(g)_i = -eps log sum_j b_j exp((g_j - C_ij) / eps) (and T_g alike). Their Jacobians in the
other potential are minus row-stochastic matrices: dT_f/dg = -R^-1 P and dT_g/df = -Cm^-1 P^T,
with P the plan and R = diag(P 1), Cm = diag(P^T 1) its marginals. Given the adjoints (u_f, u_g)
of (f, g), the adjoint of the fixed point solves

    w_f = u_f - lambda P Cm^-1 w_g,    w_g = u_g - lambda P^T R^-1 w_f,

and the derivatives in (x, y, a, b) are one vector-Jacobian product of (T_f, T_g) with (w_f, w_g).
Eliminating w_f and writing w_g = Cm^(1/2) z gives (I - lambda^2 H) z = r with H =
Cm^(-1/2) P^T R^-1 P Cm^(-1/2) symmetric, positive semi-definite, of norm 1: conjugate gradients,
each step two products with the plan (linear memory, _plan.py). Balanced problems (lambda = 1)
have the null vector sqrt(Cm 1) (the potentials' constant shift, f - c, g + c): the right-hand side
is orthogonal to it exactly when the adjoint is shift-invariant (sum u_f = sum u_g: the plan, its
cost, the value, differences of potentials), and the iterates are kept orthogonal to it, which
fixes the gauge of the potentials' own derivatives. The symmetric problem f = lambda T(f; x, a) has
no such freedom: (I + lambda R^(-1/2) P R^(-1/2)) z = R^(-1/2) u, positive definite.
"""
import warnings

import torch

from . import _plan
from ._convergence import ConvergenceWarning

_MAX_STEPS = 2000


def _relative_tolerance(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def _conjugate_gradients(apply, rhs, null=None):
    """Solves apply(z) = rhs for a batch of symmetric positive (semi-)definite systems (B, n),
    orthogonally to `null` (B, n, unit rows) when given."""
    def project(v):
        return v if null is None else v - (v * null).sum(-1, keepdim=True) * null

    rhs = project(rhs)
    z = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    norm = (residual * residual).sum(-1, keepdim=True)
    target = _relative_tolerance(rhs.dtype) ** 2 * norm.clamp_min(torch.finfo(rhs.dtype).tiny)
    for _ in range(_MAX_STEPS):
        # Entries of the batch that have converged stop moving: their tiny residuals would
        # otherwise divide each other into noise while the others go on.
        active = norm > target
        if not bool(active.any()):
            return z
        product = project(apply(direction))
        curvature = (direction * product).sum(-1, keepdim=True)
        moving = active & (curvature > 0)
        step = torch.where(moving, norm / torch.where(moving, curvature, 1), 0)
        z = z + step * direction
        residual = residual - step * product
        new_norm = (residual * residual).sum(-1, keepdim=True)
        direction = torch.where(moving, residual + new_norm / torch.where(moving, norm, 1) * direction, direction)
        norm = torch.where(moving, new_norm, norm)
        target = torch.where(moving, target, norm)
    warnings.warn(f"sinkhorn: the implicit derivative of the potentials did not reach its tolerance in {_MAX_STEPS} "
                  "conjugate-gradient steps; its gradients are approximate", ConvergenceWarning, stacklevel=4)
    return z


def _inverse(v, power):
    """v^-power where v > 0, 0 where v = 0 (a zero-weight point: no mass, no equation)."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, 1).pow(-power), 0)


class _PairPotentials(torch.autograd.Function):
    """(f, g) of OT_eps(a, b) as they are, with their implicit derivatives in (x, a, y, b)."""

    @staticmethod
    def forward(ctx, f, g, x, a, y, b, eps, p, damping):
        ctx.save_for_backward(f, g, x, a, y, b)
        ctx.settings = (eps, p, damping)
        return f.clone(), g.clone()

    @staticmethod
    def backward(ctx, u_f, u_g):
        f, g, x, a, y, b = ctx.saved_tensors
        eps, p, lam = ctx.settings
        u_f = torch.zeros_like(f) if u_f is None else u_f
        u_g = torch.zeros_like(g) if u_g is None else u_g
        with torch.no_grad():
            def plan(v):  # P v, v (B, M)
                return _plan.plan_product(x, f, a, y, g, b, v.unsqueeze(-1), eps, p).squeeze(-1)

            def plan_t(v):  # P^T v, v (B, N)
                return _plan.plan_product(y, g, b, x, f, a, v.unsqueeze(-1), eps, p).squeeze(-1)

            rows = plan(torch.ones_like(g))
            columns = plan_t(torch.ones_like(f))
            inv_rows, inv_sqrt_columns = _inverse(rows, 1), _inverse(columns, 0.5)

            def system(z):
                h = inv_sqrt_columns * plan_t(inv_rows * plan(inv_sqrt_columns * z))
                return z - lam * lam * h

            rhs = inv_sqrt_columns * (u_g - lam * plan_t(inv_rows * u_f))
            null = None
            if lam == 1.0:
                null = columns.clamp_min(0).sqrt()
                null = null / null.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(null.dtype).tiny)
            z = _conjugate_gradients(system, rhs, null)
            w_g = columns.clamp_min(0).sqrt() * z
            w_f = u_f - lam * plan(inv_sqrt_columns.pow(2) * w_g)
        wanted = [t for t in (x, a, y, b) if t.requires_grad]
        gradients = {}
        if wanted:
            with torch.enable_grad():
                inputs = [t.detach().requires_grad_(t.requires_grad) for t in (x, a, y, b)]
                xi, ai, yi, bi = inputs
                t_f = lam * _plan.softmin(xi, yi, g, bi, eps, p)
                t_g = lam * _plan.softmin(yi, xi, f, ai, eps, p)
                needed = [t for t in inputs if t.requires_grad]
                # Only the outputs that depend on a wanted input (T_f has no a, T_g no b).
                pairs = [(t, w) for t, w in ((t_f, w_f), (t_g, w_g)) if t.requires_grad]
                grads = torch.autograd.grad([t for t, _ in pairs], needed, grad_outputs=[w for _, w in pairs],
                                            allow_unused=True)
                for tensor, grad in zip(needed, grads):
                    gradients[id(tensor)] = grad
            result = [gradients.get(id(t)) if t.requires_grad else None for t in inputs]
        else:
            result = [None] * 4
        # The gauge component of (u_f, u_g), which no shift-invariant quantity has, passes through
        # the potentials unchanged: theirs is the solve's gauge.
        return (None, None, *result, None, None, None)


class _SymmetricPotential(torch.autograd.Function):
    """f of the symmetric problem OT_eps(a, a), f = lambda T(f; x, a), with its implicit derivatives."""

    @staticmethod
    def forward(ctx, f, x, a, eps, p, damping):
        ctx.save_for_backward(f, x, a)
        ctx.settings = (eps, p, damping)
        return f.clone()

    @staticmethod
    def backward(ctx, u):
        f, x, a = ctx.saved_tensors
        eps, p, lam = ctx.settings
        with torch.no_grad():
            def plan(v):
                return _plan.plan_product(x, f, a, x, f, a, v.unsqueeze(-1), eps, p).squeeze(-1)

            rows = plan(torch.ones_like(f))
            inv_sqrt_rows = _inverse(rows, 0.5)

            # w = u - lambda P R^-1 w; w = R^(1/2) z: (I + lambda R^(-1/2) P R^(-1/2)) z = R^(-1/2) u,
            # whose matrix has eigenvalues in (0, 2] (P is symmetric, R^-1 P stochastic).
            def system(z):
                return z + lam * inv_sqrt_rows * plan(inv_sqrt_rows * z)

            z = _conjugate_gradients(system, inv_sqrt_rows * u)
            w = rows.clamp_min(0).sqrt() * z
        if not (x.requires_grad or a.requires_grad):
            return None, None, None, None, None, None
        with torch.enable_grad():
            xi = x.detach().requires_grad_(x.requires_grad)
            ai = a.detach().requires_grad_(a.requires_grad)
            t = lam * _plan.softmin(xi, xi, f, ai, eps, p)
            needed = [v for v in (xi, ai) if v.requires_grad]
            grads = dict(zip([id(v) for v in needed], torch.autograd.grad([t], needed, grad_outputs=[w],
                                                                             allow_unused=True)))
        return None, grads.get(id(xi)), grads.get(id(ai)), None, None, None


def pair_potentials(f, g, x, a, y, b, eps, p, damping):
    """The solve's (f, g), differentiable in (x, a, y, b) through the fixed point."""
    return _PairPotentials.apply(f, g, x, a, y, b, eps, p, damping)


def symmetric_potential(f, x, a, eps, p, damping):
    """The symmetric problem's f, differentiable in (x, a) through its fixed point."""
    return _SymmetricPotential.apply(f, x, a, eps, p, damping)
