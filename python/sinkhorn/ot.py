"""sinkhorn.ot: GeomLoss 0.3.1's and POT's solve_sample, with OT results, plans and ragged batches.

    import torch, sinkhorn.ot
    result = sinkhorn.ot.solve_sample(x, y, reg=0.01)       # |x - y|^2 cost, eps = reg
    result.value, result.value_linear                       # OT_eps (with its entropic term), <pi, C>
    result.potential_a, result.potential_b                  # f, g: pi = a b^T exp((f + g^T - C) / reg)
    result.plan_operator @ v, result.plan_operator.T @ u     # linear memory, any device
    result.a_to_b                                           # the barycentric map of x

Conventions are GeomLoss 0.3.1's solve_sample (docs/python.md, "OT results"): cost "sqeuclidean"
is |x - y|^2 (no 1/2), "euclidean" is |x - y|; reg is eps in that cost's units; blur gives
reg = p blur^p and reach gives unbalanced = p reach^p, so blur and reach mean what they mean in
SamplesLoss. The solve itself is sinkhorn.solve's (eps-scaling, a marginal-error stopping rule).
"""
import torch

from . import _implicit, _plan
from ._arguments import check_flag, check_number, check_pair, check_points, check_weights, fail
from ._convergence import check_on_unconverged, report_convergence
from ._ragged import ragged_inputs, solve_packed, unpack
from ._solve import checked_options, run

__all__ = ["OTResult", "solve_sample", "solve_sample_batch"]

# cost name -> (p, the factor between that cost and the library's: |x - y|^2 = 2 (|x - y|^2 / 2))
_COSTS = {"sqeuclidean": (2, 2.0), "euclidean": (1, 1.0)}
# A dense plan above this many bytes is refused: plan_operator computes the same products in
# linear memory.
MAX_DENSE_PLAN_BYTES = 1 << 30

_CITATION = """Cuturi, Sinkhorn distances: lightspeed computation of optimal transport, NeurIPS 2013.
Genevay, Peyre, Cuturi, Learning generative models with Sinkhorn divergences, AISTATS 2018.
Feydy et al., Interpolating between optimal transport and MMD using Sinkhorn divergences, AISTATS 2019."""


class OTResult:
    """The solution of an entropic OT problem between point clouds, in the units of its cost.

    value: OT_eps(a, b) = <pi, C> + reg KL(pi | a x b) (balanced), or the debiased Sinkhorn
        divergence with debias=True; the unbalanced problems' value with unbalanced / reach.
        A 0-d tensor, (B,) for a batch; differentiable in the points and the weights.
    value_linear: <pi, C>, the plan's transport cost (debiased: <pi_ab, C> - (<pi_aa, C> +
        <pi_bb, C>) / 2, as POT's debias). Differentiable.
    potential_a, potential_b: the dual potentials f, g, with pi_ij = a_i b_j exp((f_i + g_j - C_ij) / reg)
        (GeomLoss's potential_a / potential_b; POT returns log-scalings, f / reg - ... , docs/python.md).
        Differentiable: their derivatives are the implicit ones of the fixed point they solve
        (conjugate gradients on products with the plan, in linear memory), so that every quantity
        built from them that the constant shift (f - c, g + c) leaves unchanged (the plan,
        value_linear, marginals, maps, differences of potentials) has exact gradients at
        convergence; the potentials' own values carry the solve's gauge, which has no derivative.
    potential_aa, potential_bb: the symmetric problems' potentials (debias=True only).
    plan: pi as a dense (N, M) tensor, refused above MAX_DENSE_PLAN_BYTES.
    plan_operator, lazy_plan: pi as an operator in linear memory: plan @ v, plan.T @ u.
    marginal_a, marginal_b: pi 1 and pi^T 1.
    a_to_b, b_to_a: the barycentric maps, (pi y)_i / (pi 1)_i and (pi^T x)_j / (pi^T 1)_j.
    status: "converged", or "max_iterations" when the solve stopped above its tolerance; n_iter:
        its sweeps; error: its marginal error; diagnostics: everything sinkhorn.solve reports.
    potentials, marginals: POT's pairs.

    For a ragged batch (solve_sample_batch with lists of clouds) the per-point results are lists,
    one tensor per entry; value and value_linear are (B,).
    """

    def __init__(self, x, a, y, b, f, g, f_aa, g_bb, value, diagnostics, *, p, unit, eps, rho, debias, batched,
                 sizes=None):
        self._x, self._a, self._y, self._b = x, a, y, b
        self._solved = (f, g)
        self._symmetric = (f_aa, g_bb)
        self._value = value
        self._p, self._unit, self._eps, self._rho = p, unit, eps, rho
        self._debias, self._batched, self._sizes = debias, batched, sizes
        self.diagnostics = diagnostics
        self._cache = {}

    # --- helpers -------------------------------------------------------------------------------
    def _cached(self, key, compute):
        # Only results without a graph are kept: a graph is built anew at each access, so that a
        # property read under no_grad first, or a second backward, sees its own graph.
        if any(t.requires_grad for t in (self._x, self._a, self._y, self._b)):
            return compute()
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _out(self, tensor, sizes=None):
        """The caller's layout: squeezed batch for one cloud pair, lists for a ragged batch."""
        if self._sizes is not None:
            return unpack(tensor, sizes)
        return tensor if self._batched else tensor.squeeze(0)

    def _damping(self):
        return 1.0 if self._rho is None else 1.0 / (1.0 + self._eps / self._rho)

    def _potentials(self):
        """(f, g) in the library's units: the solve's values, differentiable in the points and
        weights through the fixed point they solve (_implicit.py)."""
        def compute():
            f, g = self._solved
            x, a, y, b = self._x, self._a, self._y, self._b
            if not _plan._needs_graph(x, y, a, b) or f.is_inference():
                return f, g
            return _implicit.pair_potentials(f, g, x, a, y, b, self._eps, self._p, self._damping())
        return self._cached("potentials", compute)

    def _symmetric_potentials(self):
        def compute():
            f_aa, g_bb = self._symmetric
            x, a, y, b = self._x, self._a, self._y, self._b
            if f_aa is None or f_aa.is_inference():
                return f_aa, g_bb
            if _plan._needs_graph(x, a):
                f_aa = _implicit.symmetric_potential(f_aa, x, a, self._eps, self._p, self._damping())
            if _plan._needs_graph(y, b):
                g_bb = _implicit.symmetric_potential(g_bb, y, b, self._eps, self._p, self._damping())
            return f_aa, g_bb
        return self._cached("symmetric", compute)

    def _operator(self):
        f, g = self._potentials()
        return _plan.PlanOperator(self._x, f, self._a, self._y, g, self._b, self._eps, self._p, batched=True)

    def _ones(self, points):
        return torch.ones(points.shape[:2], dtype=points.dtype, device=points.device)

    # --- GeomLoss 0.3.1 / POT attributes ------------------------------------------------------
    @property
    def value(self):
        return self._value

    @property
    def value_linear(self):
        def compute():
            f, g = self._potentials()
            x, a, y, b = self._x, self._a, self._y, self._b
            linear = _plan.plan_cost(x, f, a, y, g, b, self._eps, self._p)
            if self._debias:
                f_aa, g_bb = self._symmetric_potentials()
                linear = linear - 0.5 * (_plan.plan_cost(x, f_aa, a, x, f_aa, a, self._eps, self._p) +
                                         _plan.plan_cost(y, g_bb, b, y, g_bb, b, self._eps, self._p))
            linear = self._unit * linear
            return linear if self._batched or self._sizes is not None else linear.squeeze(0)
        return self._cached("value_linear", compute)

    @property
    def potential_a(self):
        return self._out(self._unit * self._potentials()[0], self._sizes and self._sizes[0])

    @property
    def potential_b(self):
        return self._out(self._unit * self._potentials()[1], self._sizes and self._sizes[1])

    @property
    def potentials(self):
        return self.potential_a, self.potential_b

    def _symmetric_potential(self, which):
        if not self._debias:
            fail("debias", f"potential_{which} is the symmetric problem's potential, solved with debias=True only")
        index = 0 if which == "aa" else 1
        return self._out(self._unit * self._symmetric_potentials()[index], self._sizes and self._sizes[index])

    @property
    def potential_aa(self):
        return self._symmetric_potential("aa")

    @property
    def potential_bb(self):
        return self._symmetric_potential("bb")

    @property
    def plan_operator(self):
        if self._sizes is not None:
            fail("plan_operator", "a ragged batch has one plan per entry: index the batch's entries with plans()")
        operator = self._operator()
        return operator if self._batched else _plan.PlanOperator(*operator._args, self._eps, self._p, batched=False)

    @property
    def lazy_plan(self):
        return self.plan_operator

    @property
    def plan(self):
        x, y = self._x, self._y
        size = x.shape[0] * x.shape[1] * y.shape[1] * x.element_size()
        if size > MAX_DENSE_PLAN_BYTES:
            fail("plan", f"a dense {x.shape[1]} x {y.shape[1]} plan{'s' if x.shape[0] > 1 else ''} would take "
                         f"{size / 2 ** 30:.1f} GiB (more than sinkhorn.ot.MAX_DENSE_PLAN_BYTES): use "
                         "plan_operator (plan @ v, plan.T @ u in linear memory) or a_to_b")
        f, g = self._potentials()
        dense = _plan.dense_plan(x, f, self._a, y, g, self._b, self._eps, self._p)
        if self._sizes is not None:
            return [dense[k, :n, :m] for k, (n, m) in enumerate(zip(*self._sizes))]
        return dense if self._batched else dense.squeeze(0)

    def plans(self):
        """One PlanOperator per batch entry (the padding cut off for a ragged batch)."""
        f, g = self._potentials()
        operators = []
        for k in range(self._x.shape[0]):
            n = self._sizes[0][k] if self._sizes is not None else self._x.shape[1]
            m = self._sizes[1][k] if self._sizes is not None else self._y.shape[1]
            operators.append(_plan.PlanOperator(self._x[k:k + 1, :n], f[k:k + 1, :n], self._a[k:k + 1, :n],
                                                self._y[k:k + 1, :m], g[k:k + 1, :m], self._b[k:k + 1, :m],
                                                self._eps, self._p, batched=False))
        return operators

    @property
    def marginal_a(self):
        return self._out(self._cached("marginal_a", lambda: self._operator() @ self._ones(self._y)),
                         self._sizes and self._sizes[0])

    @property
    def marginal_b(self):
        return self._out(self._cached("marginal_b", lambda: self._operator().T @ self._ones(self._x)),
                         self._sizes and self._sizes[1])

    @property
    def marginals(self):
        return self.marginal_a, self.marginal_b

    def _barycentres(self, transposed):
        operator = self._operator()
        operator = operator.T if transposed else operator
        targets = self._x if transposed else self._y
        moved = operator @ targets
        mass = operator @ self._ones(targets)
        # A point of weight 0 (padding) carries no mass and has no image: 0 there, not NaN.
        positive = mass > 0
        return torch.where(positive.unsqueeze(-1), moved / torch.where(positive, mass, 1).unsqueeze(-1), 0)

    @property
    def a_to_b(self):
        return self._out(self._cached("a_to_b", lambda: self._barycentres(False)), self._sizes and self._sizes[0])

    @property
    def b_to_a(self):
        return self._out(self._cached("b_to_a", lambda: self._barycentres(True)), self._sizes and self._sizes[1])

    @property
    def status(self):
        return "converged" if self.diagnostics["converged"] else "max_iterations"

    @property
    def n_iter(self):
        return self.diagnostics["iterations"]

    @property
    def error(self):
        return self.diagnostics["marginal_error"]

    @property
    def converged(self):
        return self.diagnostics["converged"]

    @property
    def log(self):
        return self.diagnostics

    @property
    def citation(self):
        return _CITATION

    def __repr__(self):
        value = self.value
        shown = f"{value.item():.6g}" if value.dim() == 0 else f"tensor of shape {tuple(value.shape)}"
        return f"OTResult(value={shown}, status={self.status!r}, n_iter={self.n_iter}, error={self.error:.3g})"


def _regularisation(cost, reg, blur, unbalanced, reach, unbalanced_type, method):
    """GeomLoss 0.3.1's arguments as the library's (p, unit, blur, reach, backend)."""
    if not isinstance(cost, str) or cost not in _COSTS:
        fail("cost", f"must be one of {', '.join(repr(c) for c in _COSTS)} (|x - y|^2 or |x - y|), got {cost!r}")
    p, unit = _COSTS[cost]
    if reg is not None and blur is not None:
        fail("reg", "reg and blur are redundant: give one (reg = p * blur**p)")
    if unbalanced is not None and reach is not None:
        fail("unbalanced", "unbalanced and reach are redundant: give one (unbalanced = p * reach**p)")
    # The library's problem is the cost divided by `unit`: eps and rho divide with it.
    if reg is not None:
        reg = check_number("reg", reg)
        if not reg > 0:
            fail("reg", f"must be positive, got {reg}")
        library_blur = (reg / unit) ** (1 / p)
    else:
        library_blur = 0.05 if blur is None else check_number("blur", blur)
    library_reach = None
    if unbalanced is not None:
        unbalanced = check_number("unbalanced", unbalanced)
        if not unbalanced > 0:
            fail("unbalanced", f"must be positive (None: balanced), got {unbalanced}")
        library_reach = (unbalanced / unit) ** (1 / p)
    elif reach is not None:
        library_reach = check_number("reach", reach)
    if not isinstance(unbalanced_type, str) or unbalanced_type.upper() != "KL":
        fail("unbalanced_type", f"only 'KL' is supported, got {unbalanced_type!r}")
    backends = ("auto", "tensorized", "online", "multiscale")
    if method not in backends:
        fail("method", f"must be one of {', '.join(repr(m) for m in backends)} (the library's backends), "
                       f"got {method!r}")
    return p, unit, library_blur, library_reach, method


def _solve(X, A, Y, B, *, cost, debias, reg, unbalanced, unbalanced_type, method, max_iter, tol, blur, reach,
           scaling, on_unconverged, batched, sizes, caller):
    p, unit, library_blur, library_reach, backend = _regularisation(cost, reg, blur, unbalanced, reach,
                                                                    unbalanced_type, method)
    check_flag("debias", debias)
    check_on_unconverged(on_unconverged)
    options = checked_options(loss="divergence" if debias else "ot_eps", p=p, blur=library_blur, reach=library_reach,
                              scaling=scaling, tolerance=1e-4 if tol is None else tol,
                              max_iterations=1000 if max_iter is None else max_iter, backend=backend)
    if sizes is None:
        value, f_ab, g_ab, f_aa, g_bb, diagnostics = run(A, X, B, Y, options)
    else:
        value, f_ab, g_ab, f_aa, g_bb, diagnostics = solve_packed(run, X, A, Y, B, sizes, options)
    report_convergence(diagnostics, options, on_unconverged, caller)
    eps = library_blur ** p
    rho = None if library_reach is None else library_reach ** p
    # The library's values and potentials in the cost's units.
    value = unit * value
    if not batched:
        X, Y = X.unsqueeze(0), Y.unsqueeze(0)
    A = _full_weights(A, X)
    B = _full_weights(B, Y)
    lift = (lambda t: t) if batched else (lambda t: None if t is None else t.unsqueeze(0))
    return OTResult(X, A, Y, B, lift(f_ab), lift(g_ab), lift(f_aa), lift(g_bb), value, diagnostics, p=p, unit=unit,
                    eps=eps, rho=rho, debias=debias, batched=batched, sizes=sizes)


def _full_weights(weights, points):
    """(B, N) weights for (B, N, D) points: uniform 1/N where None."""
    if weights is None:
        return torch.full(points.shape[:2], 1.0 / points.shape[1], dtype=points.dtype, device=points.device)
    weights = weights.reshape(points.shape[:2]) if weights.dim() == 1 else weights
    return weights.to(points.dtype)


@torch.compiler.disable  # an OTResult holds Python numbers: eager only (docs/python.md)
def solve_sample(X_a, X_b, a=None, b=None, cost="sqeuclidean", debias=False, reg=None, unbalanced=None,
                 unbalanced_type="KL", method="auto", max_iter=None, tol=None, blur=None, reach=None, *,
                 scaling=0.5, on_unconverged="warn"):
    """Entropic OT between the clouds (a, X_a) and (b, X_b): an OTResult.

    GeomLoss 0.3.1's signature and conventions (docs/python.md, "OT results"):
      X_a (N, D), X_b (M, D) (or (B, N, D), (B, M, D): a batch of problems); a (N,), b (M,) (None:
        uniform weights 1/N, 1/M).
      cost: "sqeuclidean" (|x - y|^2, GeomLoss's and POT's) or "euclidean" (|x - y|).
      reg: eps, in the cost's units; or blur, with reg = p * blur**p (give one; neither: blur 0.05,
        SamplesLoss's default, where GeomLoss raises an error).
      unbalanced: rho, in the cost's units (None: balanced); or reach, with unbalanced = p * reach**p.
      unbalanced_type: "KL". debias: value is the Sinkhorn divergence (plan and potentials are the
        OT_eps(a, b) problem's, as in GeomLoss and POT).
      method: "auto", or one of the library's backends ("tensorized", "online", "multiscale").
      max_iter: the most Sinkhorn sweeps (None: 1000; GeomLoss's max_iter counts eps-annealing steps).
      tol: the stopping tolerance on the plan's relative marginal error (None: 1e-4; GeomLoss accepts
        none). scaling: eps-annealing factor. on_unconverged: "warn", "raise" or "ignore".
    Raises ValueError naming the argument on bad input.
    """
    check_points("X_a", X_a)
    check_points("X_b", X_b)
    check_pair(X_a, X_b)
    a = check_weights("a", a, X_a, "X_a")
    b = check_weights("b", b, X_b, "X_b")
    return _solve(X_a, a, X_b, b, cost=cost, debias=debias, reg=reg, unbalanced=unbalanced,
                  unbalanced_type=unbalanced_type, method=method, max_iter=max_iter, tol=tol, blur=blur, reach=reach,
                  scaling=scaling, on_unconverged=on_unconverged, batched=X_a.dim() == 3, sizes=None,
                  caller="sinkhorn.ot.solve_sample")


@torch.compiler.disable
def solve_sample_batch(X_a, X_b, a=None, b=None, cost="sqeuclidean", debias=False, reg=None, unbalanced=None,
                       unbalanced_type="KL", method="auto", max_iter=None, tol=None, blur=None, reach=None, *,
                       batch_a=None, batch_b=None, scaling=0.5, on_unconverged="warn"):
    """solve_sample over a batch of problems: an OTResult whose value is (B,).

    The batch: (B, N, D) and (B, M, D) tensors; lists of (N_k, D) and (M_k, D) tensors (clouds of
    different sizes, with a and b lists of weights or None); nested tensors; or (N, D) and (M, D)
    points with batch_a and batch_b, PyTorch Geometric's vectors of each point's entry (one padded
    solve on a GPU, entry by entry on the CPU: docs/python.md). Ragged batches return per-point results (potentials, marginals, maps, plans) as lists, one tensor per
    entry; each entry's value equals its own solve_sample to the tolerance.
    """
    ragged = ragged_inputs(X_a, X_b, a, b, batch_a, batch_b)
    if ragged is None:
        if not isinstance(X_a, torch.Tensor) or X_a.dim() != 3:
            fail("X_a", "expected a (B, N, D) tensor, a list of (N_k, D) tensors, a nested tensor, or points with "
                        "batch_a")
        return solve_sample(X_a, X_b, a, b, cost, debias, reg, unbalanced, unbalanced_type, method, max_iter, tol,
                            blur, reach, scaling=scaling, on_unconverged=on_unconverged)
    X, A, x_sizes, Y, B, y_sizes = ragged
    check_points("X_a", X)
    check_points("X_b", Y)
    check_pair(X, Y)
    return _solve(X, A, Y, B, cost=cost, debias=debias, reg=reg, unbalanced=unbalanced,
                  unbalanced_type=unbalanced_type, method=method, max_iter=max_iter, tol=tol, blur=blur, reach=reach,
                  scaling=scaling, on_unconverged=on_unconverged, batched=True, sizes=(x_sizes, y_sizes),
                  caller="sinkhorn.ot.solve_sample_batch")
