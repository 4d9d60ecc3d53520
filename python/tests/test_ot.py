"""sinkhorn.ot.solve_sample: OT results against a float64 oracle (conftest.py, written here),
against GeomLoss 0.3.1's and POT 0.9.7's solve_sample from PyPI, exact gradients through the
potentials (implicit differentiation), ragged batches, and refusals."""
import geomloss.ot
import numpy as np
import ot as pot
import pytest
import torch

import sinkhorn.ot
from sinkhorn import _plan
from conftest import cost as oracle_cost, logsumexp, ot_eps

TIGHT = dict(tol=1e-12, max_iter=200000)


def unbalanced_oracle(a, x, b, y, eps, rho, p, sweeps=200000):
    """Unbalanced (KL) potentials: f = lambda softmin(g), g = lambda softmin(f), lambda = 1/(1 + eps/rho)."""
    c = oracle_cost(x, y, p)
    lam = 1 / (1 + eps / rho)
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(sweeps):
        f_new = -lam * eps * logsumexp(np.log(b)[None, :] + (g[None, :] - c) / eps, 1)
        g_new = -lam * eps * logsumexp(np.log(a)[:, None] + (f_new[:, None] - c) / eps, 0)
        done = max(abs(f_new - f).max(), abs(g_new - g).max()) < 1e-15
        f, g = f_new, g_new
        if done:
            break
    plan = np.exp((f[:, None] + g[None, :] - c) / eps) * a[:, None] * b[None, :]
    return f, g, plan


def primal(plan, c, a, b, eps, rho=None):
    """<pi, C> + eps KL(pi | a x b) (+ rho KL of each marginal), KL with its mass terms."""
    def kl(p, q):
        return (p * np.log(p / q) - p + q).sum()
    value = (plan * c).sum() + eps * kl(plan, a[:, None] * b[None, :])
    if rho is not None:
        value += rho * (kl(plan.sum(1), a) + kl(plan.sum(0), b))
    return value


@pytest.mark.parametrize("cost,p,unit", [("sqeuclidean", 2, 2.0), ("euclidean", 1, 1.0)])
def test_balanced_result_matches_the_oracle(clouds, cost, p, unit):
    a, x, b, y = clouds
    reg = 0.3
    result = sinkhorn.ot.solve_sample(x, y, a, b, cost=cost, reg=reg, **TIGHT)
    an, xn, bn, yn = (t.numpy() for t in (a, x, b, y))
    # The oracle works in the library's cost (|x - y|^2 / 2 for p = 2): the cost, eps and the
    # potentials of `cost` are `unit` times its.
    value, f, g = ot_eps(an, xn, bn, yn, reg / unit, p)
    c = unit * oracle_cost(xn, yn, p)
    plan = np.exp((unit * f[:, None] + unit * g[None, :] - c) / reg) * an[:, None] * bn[None, :]
    assert result.status == "converged" and result.error <= 1e-12
    assert result.value.item() == pytest.approx(unit * value, rel=1e-10)
    assert result.value.item() == pytest.approx(primal(plan, c, an, bn, reg), rel=1e-9)
    assert result.value_linear.item() == pytest.approx((plan * c).sum(), rel=1e-9)
    np.testing.assert_allclose(result.plan.numpy(), plan, atol=1e-12)
    np.testing.assert_allclose(result.marginal_a.numpy(), an, atol=1e-11)
    np.testing.assert_allclose(result.marginal_b.numpy(), bn, atol=1e-11)
    # Potentials up to their constant shift (f - c, g + c).
    shift = result.potential_a.numpy()[0] - unit * f[0]
    np.testing.assert_allclose(result.potential_a.numpy(), unit * f + shift, atol=1e-8)
    np.testing.assert_allclose(result.potential_b.numpy(), unit * g - shift, atol=1e-8)
    np.testing.assert_allclose(result.a_to_b.numpy(), (plan @ yn) / plan.sum(1, keepdims=True), atol=1e-10)
    np.testing.assert_allclose(result.b_to_a.numpy(), (plan.T @ xn) / plan.sum(0)[:, None], atol=1e-10)
    v = torch.randn(17, 4, dtype=torch.float64)
    np.testing.assert_allclose((result.plan_operator @ v).numpy(), plan @ v.numpy(), atol=1e-12)
    u = torch.randn(23, dtype=torch.float64)
    np.testing.assert_allclose((result.plan_operator.T @ u).numpy(), plan.T @ u.numpy(), atol=1e-12)
    assert result.plan_operator.shape == (23, 17) and result.plan_operator.T.shape == (17, 23)


def test_unbalanced_and_debiased_results_match_the_oracle(clouds):
    a, x, b, y = clouds
    an, xn, bn, yn = (t.numpy() for t in (a, x, b, y))
    reg, rho = 0.3, 0.7
    result = sinkhorn.ot.solve_sample(x, y, a, b, reg=reg, unbalanced=rho, **TIGHT)
    f, g, plan = unbalanced_oracle(an, xn, bn, yn, reg / 2, rho / 2, 2)
    c = 2 * oracle_cost(xn, yn, 2)
    np.testing.assert_allclose(result.plan.numpy(), plan, atol=1e-12)
    np.testing.assert_allclose(result.potential_a.numpy(), 2 * f, atol=1e-9)
    np.testing.assert_allclose(result.potential_b.numpy(), 2 * g, atol=1e-9)
    # GeomLoss's unbalanced value: the primal with the marginals' generalised KL.
    assert result.value.item() == pytest.approx(primal(plan, c, an, bn, reg, rho), rel=1e-9)
    # reach gives unbalanced = p reach^p, blur gives reg = p blur^p (GeomLoss 0.3.1).
    same = sinkhorn.ot.solve_sample(x, y, a, b, blur=(reg / 2) ** 0.5, reach=(rho / 2) ** 0.5, **TIGHT)
    assert same.value.item() == pytest.approx(result.value.item(), rel=1e-12)

    debiased = sinkhorn.ot.solve_sample(x, y, a, b, reg=reg, debias=True, **TIGHT)
    ab, f_ab, _ = ot_eps(an, xn, bn, yn, reg / 2, 2)
    # The symmetric problems' potential is the symmetric pair (f + g) / 2 of the oracle's.
    aa, f_aa, g_aa = ot_eps(an, xn, an, xn, reg / 2, 2)
    bb, f_bb, g_bb = ot_eps(bn, yn, bn, yn, reg / 2, 2)
    assert debiased.value.item() == pytest.approx(2 * (ab - aa / 2 - bb / 2), rel=1e-9)
    np.testing.assert_allclose(debiased.potential_aa.numpy(), f_aa + g_aa, atol=1e-8)
    np.testing.assert_allclose(debiased.potential_bb.numpy(), f_bb + g_bb, atol=1e-8)
    # Plan and potentials stay the OT_eps(a, b) problem's, as in GeomLoss and POT.
    np.testing.assert_allclose(debiased.plan.numpy(), sinkhorn.ot.solve_sample(x, y, a, b, reg=reg, **TIGHT).plan.numpy(),
                               atol=1e-12)


def test_pot_agrees_where_both_converge(clouds):
    a, x, b, y = clouds
    an, xn, bn, yn = (t.numpy() for t in (a, x, b, y))
    ours = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.2, **TIGHT)
    theirs = pot.solve_sample(xn, yn, an, bn, reg=0.2, tol=1e-12, max_iter=100000)
    assert ours.value.item() == pytest.approx(theirs.value, rel=1e-9)
    assert ours.value_linear.item() == pytest.approx(theirs.value_linear, rel=1e-9)
    np.testing.assert_allclose(ours.plan.numpy(), theirs.plan, atol=1e-12)
    # POT's potentials are log-scalings: plan = exp(u_i + v_j - C_ij / reg), u = f / reg + log a (+ c).
    u = theirs.potential_a
    np.testing.assert_allclose(np.diff(ours.potential_a.numpy() / 0.2 + np.log(an)), np.diff(u), atol=1e-7)
    debiased = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.2, debias=True, **TIGHT)
    theirs = pot.solve_sample(xn, yn, an, bn, reg=0.2, tol=1e-12, max_iter=100000, debias=True)
    # POT's symmetric problems stop on its own criterion a little earlier (1.3e-9 here); the
    # oracle checks ours to 1e-9 (test_unbalanced_and_debiased_results_match_the_oracle).
    assert debiased.value.item() == pytest.approx(theirs.value, rel=1e-8)
    assert debiased.value_linear.item() == pytest.approx(theirs.value_linear, rel=1e-8)


def test_geomloss_is_within_its_own_stopping_error_of_the_oracle(clouds):
    # GeomLoss 0.3.1 runs a fixed eps-annealing schedule (max_iter steps) with no tolerance; where
    # it and we differ, the float64 oracle decides.
    a, x, b, y = clouds
    an, xn, bn, yn = (t.numpy() for t in (a, x, b, y))
    for debias in (False, True):
        ours = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.2, debias=debias, **TIGHT)
        theirs = geomloss.ot.solve_sample(x, y, a, b, reg=0.2, debias=debias, max_iter=2000)
        ab = ot_eps(an, xn, bn, yn, 0.1, 2)[0]
        reference = 2 * ab if not debias else 2 * (ab - ot_eps(an, xn, an, xn, 0.1, 2)[0] / 2 -
                                                     ot_eps(bn, yn, bn, yn, 0.1, 2)[0] / 2)
        ours_error = abs(ours.value.item() - reference)
        theirs_error = abs(float(theirs.value) - reference)
        assert ours_error <= 1e-9 * abs(reference)
        assert ours_error <= theirs_error + 1e-12
        assert ours.value.item() == pytest.approx(float(theirs.value), rel=1e-3)
        _, f, g = ot_eps(an, xn, bn, yn, 0.1, 2)
        plan = np.exp((f[:, None] + g[None, :] - oracle_cost(xn, yn, 2)) / 0.1) * an[:, None] * bn[None, :]
        ours_gap, theirs_gap = abs(ours.plan.numpy() - plan).max(), abs(theirs.plan.numpy() - plan).max()
        assert ours_gap <= 1e-11 and ours_gap <= theirs_gap
        np.testing.assert_allclose(ours.marginal_a.numpy(), theirs.marginal_a.numpy(), atol=5e-3)
    # blur means the same in both: reg = 2 blur^2 for the squared Euclidean cost.
    ours = sinkhorn.ot.solve_sample(x, y, a, b, blur=0.3, **TIGHT)
    theirs = geomloss.ot.solve_sample(x, y, a, b, blur=0.3, max_iter=2000)
    assert ours.value.item() == pytest.approx(float(theirs.value), rel=1e-4)


def gauge_free(result):
    """Differences of the potentials and their sums: what the constant shift leaves unchanged."""
    f, g = result.potential_a, result.potential_b
    return f - f[0], g + f[0]


@pytest.mark.parametrize("quantity", ["value", "value_linear", "a_to_b", "marginal_b", "potentials"])
def test_gradients_are_exact_at_convergence(quantity):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(12, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(9, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    w = torch.rand(12, generator=generator, dtype=torch.float64) + 0.5

    def compute(x, y, w):
        result = sinkhorn.ot.solve_sample(x, y, w / w.sum(), reg=0.2, **TIGHT)
        return gauge_free(result) if quantity == "potentials" else getattr(result, quantity)

    assert torch.autograd.gradcheck(compute, (x, y, w.requires_grad_(True)), eps=1e-6, atol=1e-6)


def test_gradients_are_exact_unbalanced_debiased_and_for_p1():
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(10, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(8, 2, generator=generator, dtype=torch.float64)
    b = (torch.rand(8, generator=generator, dtype=torch.float64) + 0.5).requires_grad_(True)
    cases = [dict(unbalanced=0.5), dict(debias=True), dict(cost="euclidean")]
    for case in cases:
        def compute(x, b):
            result = sinkhorn.ot.solve_sample(x, y, None, b / b.sum() if "unbalanced" not in case else b, reg=0.2,
                                              **case, **TIGHT)
            extra = (result.potential_aa,) if case.get("debias") else (result.potential_a,)
            return (result.value_linear, result.a_to_b) + (extra if "debias" in case or "unbalanced" in case else ())
        assert torch.autograd.gradcheck(compute, (x, b), eps=1e-6, atol=1e-6), case


def test_a_property_read_without_a_graph_first_keeps_the_exact_gradient(clouds):
    # Reading a result under no_grad first must not leave later reads without the implicit part
    # of their gradient, and two backward passes through two properties must both work.
    a, x, b, y = clouds
    x = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3, **TIGHT).value_linear, x)[0]
    result = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3, **TIGHT)
    with torch.no_grad():
        result.marginal_a
        result.value_linear
    torch.testing.assert_close(torch.autograd.grad(result.value_linear, x)[0], expected)
    result.plan.sum().backward()
    result.a_to_b.sum().backward()


def test_products_with_the_plan_run_in_blocks(monkeypatch, clouds):
    # Blocks of 7 rows (not a divisor of 23): every product and the potentials' gradients as one block.
    a, x, b, y = clouds
    whole = sinkhorn.ot.solve_sample(x.requires_grad_(True), y, a, b, reg=0.3, **TIGHT)
    v = torch.randn(17, 2, dtype=torch.float64)
    expected = (whole.plan_operator @ v, whole.value_linear, whole.a_to_b)
    grad = torch.autograd.grad(whole.value_linear + whole.a_to_b.sum(), x)[0]
    monkeypatch.setattr(_plan, "_BLOCK_ENTRIES", 7 * 17 * 3)
    blocked = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3, **TIGHT)
    for got, want in zip((blocked.plan_operator @ v, blocked.value_linear, blocked.a_to_b), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.autograd.grad(blocked.value_linear + blocked.a_to_b.sum(), x)[0], grad,
                               rtol=1e-10, atol=1e-12)


def ragged_clouds(dtype=torch.float64):
    generator = torch.Generator().manual_seed(11)
    xs = [torch.randn(n, 2, generator=generator, dtype=dtype) for n in (5, 17, 9)]
    ys = [torch.randn(m, 2, generator=generator, dtype=dtype) * 0.5 + 1 for m in (11, 4, 20)]
    return xs, ys


def test_ragged_batches_equal_their_separate_solves():
    xs, ys = ragged_clouds()
    xs = [x.requires_grad_(True) for x in xs]
    batch = sinkhorn.ot.solve_sample_batch(xs, ys, reg=0.1, **TIGHT)
    assert batch.value.shape == (3,)
    gradients = torch.autograd.grad(batch.value.sum() + batch.value_linear.sum(), xs)
    for k, (x, y) in enumerate(zip(xs, ys)):
        alone = sinkhorn.ot.solve_sample(x, y, reg=0.1, **TIGHT)
        assert batch.value[k].item() == pytest.approx(alone.value.item(), rel=1e-9)
        torch.testing.assert_close(batch.plan[k], alone.plan, rtol=0, atol=1e-12)
        torch.testing.assert_close(batch.a_to_b[k], alone.a_to_b, rtol=0, atol=1e-10)
        assert batch.marginal_b[k].shape == (len(y),)
        own = torch.autograd.grad(alone.value + alone.value_linear, x)[0]
        torch.testing.assert_close(gradients[k], own, rtol=1e-6, atol=1e-9)
    # The same batch as PyTorch Geometric's points and batch vectors (in shuffled order), and as
    # nested tensors.
    points_x, points_y = torch.cat([x.detach() for x in xs]), torch.cat(ys)
    index_x = torch.cat([torch.full((len(x),), k) for k, x in enumerate(xs)])
    index_y = torch.cat([torch.full((len(y),), k) for k, y in enumerate(ys)])
    order = torch.randperm(len(points_x), generator=torch.Generator().manual_seed(0))
    indexed = sinkhorn.ot.solve_sample_batch(points_x[order], points_y, reg=0.1, batch_a=index_x[order],
                                             batch_b=index_y, **TIGHT)
    torch.testing.assert_close(indexed.value, batch.value.detach(), rtol=1e-12, atol=0)
    nested = sinkhorn.ot.solve_sample_batch(torch.nested.nested_tensor([x.detach() for x in xs]),
                                            torch.nested.nested_tensor(ys), reg=0.1, **TIGHT)
    torch.testing.assert_close(nested.value, batch.value.detach(), rtol=1e-12, atol=0)


def test_the_padded_batch_is_one_solve_equal_to_the_separate_ones():
    # The GPU's path (one padded solve, zero-weight padding) run here on the CPU, where a ragged
    # batch is otherwise solved entry by entry: the same values, potentials (up to their shift)
    # and gradients.
    from sinkhorn import _ragged
    from sinkhorn._solve import checked_options, run
    xs, ys = ragged_clouds()
    xs = [x.requires_grad_(True) for x in xs]
    X, A, x_sizes, Y, B, y_sizes = _ragged.ragged_inputs(xs, ys, None, None)
    options = checked_options(blur=0.3, tolerance=1e-11, max_iterations=100000)
    one = _ragged.solve_packed(run, X, A, Y, B, (x_sizes, y_sizes), options, one_solve=True)
    each = _ragged.solve_packed(run, X, A, Y, B, (x_sizes, y_sizes), options, one_solve=False)
    torch.testing.assert_close(one[0], each[0], rtol=1e-9, atol=1e-12)
    for k, (n, m) in enumerate(zip(x_sizes, y_sizes)):
        shift = (one[1][k, :n] - each[1][k, :n]).mean()
        torch.testing.assert_close(one[1][k, :n] - shift, each[1][k, :n], rtol=0, atol=1e-8)
        torch.testing.assert_close(one[2][k, :m] + shift, each[2][k, :m], rtol=0, atol=1e-8)
    for g, h in zip(torch.autograd.grad(one[0].sum(), xs), torch.autograd.grad(each[0].sum(), xs)):
        torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-9)


def test_bad_arguments_are_refused_naming_them(clouds):
    a, x, b, y = clouds
    cases = [
        (dict(cost="cityblock"), "cost"),
        (dict(reg=0.1, blur=0.1), "reg"),
        (dict(reg=-1.0), "reg"),
        (dict(unbalanced=1.0, reach=1.0), "unbalanced"),
        (dict(unbalanced_type="TV"), "unbalanced_type"),
        (dict(method="sinkhorn_log"), "method"),
    ]
    for arguments, name in cases:
        with pytest.raises(ValueError, match=f"^{name}: "):
            sinkhorn.ot.solve_sample(x, y, a, b, **arguments)
    result = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3)
    with pytest.raises(ValueError, match="^debias: "):
        result.potential_aa
    with pytest.raises(ValueError, match=r"^plan @ v: v must have shape \(17,\)"):
        result.plan_operator @ torch.ones(23, dtype=torch.float64)
    xs, ys = ragged_clouds()
    with pytest.raises(ValueError, match="^y: has 2 entries where x has 3"):
        sinkhorn.ot.solve_sample_batch(xs, ys[:2], reg=0.1)
    with pytest.raises(ValueError, match="^x: entry 1 is empty"):
        sinkhorn.ot.solve_sample_batch([xs[0], xs[1][:0], xs[2]], ys, reg=0.1)
    with pytest.raises(ValueError, match="^a: entry 0 has shape"):
        sinkhorn.ot.solve_sample_batch(xs, ys, a=[torch.ones(4), torch.ones(17), torch.ones(9)], reg=0.1)
    with pytest.raises(ValueError, match="^debias: "):
        sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3, debias="yes")
    with pytest.raises(ValueError, match="^batch_x: expected a"):
        sinkhorn.ot.solve_sample_batch(torch.cat(xs), torch.cat(ys), reg=0.1, batch_a=[0] * 31,
                                       batch_b=torch.zeros(35, dtype=torch.int64))


def test_a_dense_plan_above_the_bound_is_refused(monkeypatch, clouds):
    a, x, b, y = clouds
    result = sinkhorn.ot.solve_sample(x, y, a, b, reg=0.3)
    monkeypatch.setattr(sinkhorn.ot, "MAX_DENSE_PLAN_BYTES", 23 * 17 * 8 - 1)
    with pytest.raises(ValueError, match="^plan: a dense 23 x 17 plan would take .* use plan_operator"):
        result.plan
    assert (result.plan_operator @ torch.ones(17, dtype=torch.float64)).shape == (23,)
