"""The numerics as properties over the documented range (hypothesis), against a float64 reference
written here: scale covariance from 1e-20 to 1e20, translation and permutation invariance, the
limits blur -> 0 (exact OT) and blur -> infinity (|mean difference|^2 / 2 for p = 2, the energy
distance for p = 1), S >= 0 up to rounding, S(x, x) = 0; float32 and float64, p = 1 and 2,
balanced and unbalanced; and what a solve reports when it does not converge.

Fixed seeds and a bounded number of examples in `make test`; `make test-properties` runs the
same properties with many more (SINKHORN_HYPOTHESIS_PROFILE=long).
"""
import itertools
import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import sinkhorn
from conftest import cost, logsumexp

settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=400, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SINKHORN_HYPOTHESIS_PROFILE", "ci"))


def reference_potentials(a, x, b, y, eps, p, rho=None, tol=1e-14, sweeps=100000):
    """f, g of OT_eps(a, b) [+ rho KL marginals] by damped log-domain Sinkhorn in float64."""
    c = cost(x, y, p)
    damping = 1.0 if rho is None else 1.0 / (1.0 + eps / rho)
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(sweeps):
        f_old, g_old = f, g
        f = -damping * eps * logsumexp(np.log(b)[None, :] + (g[None, :] - c) / eps, 1)
        g = -damping * eps * logsumexp(np.log(a)[:, None] + (f[:, None] - c) / eps, 0)
        if max(abs(f - f_old).max(), abs(g - g_old).max()) < tol * max(1.0, abs(f).max()):
            break
    return f, g


def reference_divergence(a, x, b, y, eps, p, rho=None):
    """S_eps: OT_ab - OT_aa / 2 - OT_bb / 2 (balanced), Sejourne et al.'s formula (unbalanced)."""
    f_ab, g_ab = reference_potentials(a, x, b, y, eps, p, rho)
    # A symmetric problem's alternating iterates split the free constant unevenly (balanced):
    # its symmetric potential is their mean.
    f_aa = sum(reference_potentials(a, x, a, x, eps, p, rho)) / 2
    g_bb = sum(reference_potentials(b, y, b, y, eps, p, rho)) / 2
    if rho is None:
        return a @ (f_ab - f_aa) + b @ (g_ab - g_bb)
    return (rho + eps / 2) * (a @ (np.exp(-f_aa / rho) - np.exp(-f_ab / rho)) +
                              b @ (np.exp(-g_bb / rho) - np.exp(-g_ab / rho)))


def max_cost(x, y, p):
    both = np.concatenate([x, y])
    return np.linalg.norm(both.max(0) - both.min(0)) ** p / p


@st.composite
def problems(draw, max_points=9):
    """Two weighted clouds in 1-3 dimensions, balanced (weights summing to one) or not."""
    seed = draw(st.integers(0, 2 ** 31 - 1))
    generator = np.random.default_rng(seed)
    d = draw(st.integers(1, 3))
    n, m = draw(st.integers(1, max_points)), draw(st.integers(1, max_points))
    x = generator.normal(size=(n, d))
    y = generator.normal(size=(m, d)) * draw(st.floats(0.3, 2.0)) + draw(st.floats(-2.0, 2.0))
    a = generator.uniform(0.2, 1.0, n)
    b = generator.uniform(0.2, 1.0, m)
    return a / a.sum(), x, b / b.sum(), y


def library(a, x, b, y, dtype=torch.float64, **options):
    as_tensor = lambda array: torch.tensor(array, dtype=dtype)  # noqa: E731
    return sinkhorn.solve(as_tensor(x), as_tensor(y), as_tensor(a), as_tensor(b), **options)


@given(problems(), st.sampled_from([1, 2]), st.floats(0.1, 10.0), st.booleans())
def test_float64_matches_the_reference(problem, p, blur_in_diameters, unbalanced):
    a, x, b, y = problem
    scale = max(np.linalg.norm(np.ptp(np.concatenate([x, y]), 0)), 1e-3)
    blur = blur_in_diameters * scale
    reach = scale if unbalanced else None
    if unbalanced:
        b = b * 1.5  # unequal masses: the formula, not the debiased combination
    eps, rho = blur ** p, (reach ** p if reach else None)
    expected = reference_divergence(a, x, b, y, eps, p, rho)
    result = library(a, x, b, y, p=p, blur=blur, reach=reach, tolerance=1e-9, max_iterations=20000)
    assert result.converged
    assert abs(result.value.item() - expected) <= 1e-7 * max_cost(x, y, p) + 1e-9 * abs(expected)


@given(problems(), st.sampled_from([1, 2]), st.floats(0.02, 5.0))
def test_float32_is_within_its_contract(problem, p, blur_in_diameters):
    a, x, b, y = problem
    scale = max(np.linalg.norm(np.ptp(np.concatenate([x, y]), 0)), 1e-3)
    blur = blur_in_diameters * scale
    expected = library(a, x, b, y, p=p, blur=blur, tolerance=1e-10, max_iterations=50000).value.item()
    value = library(a, x, b, y, dtype=torch.float32, p=p, blur=blur, on_unconverged="ignore").value.item()
    # float32 inputs are rounded (a relative 6e-8 of every coordinate) and the solve stops at 1e-4.
    assert abs(value - expected) <= 2e-3 * max_cost(x, y, p) + 1e-3 * abs(expected)


@given(problems(), st.sampled_from([1, 2]), st.sampled_from([0.05, 1.0, 30.0]),
       st.sampled_from([1e-20, 1e-13, 1e-5, 1e6, 1e14, 1e20]))
def test_scale_covariance_float64(problem, p, blur, c):
    """S(c x, c y; c blur) = c^p S(x, y; blur), also where eps is far from 1."""
    a, x, b, y = problem
    reference = library(a, x, b, y, p=p, blur=blur, tolerance=1e-8, max_iterations=20000, on_unconverged="ignore")
    scaled = library(a, c * x, b, c * y, p=p, blur=c * blur, tolerance=1e-8, max_iterations=20000,
                     on_unconverged="ignore")
    bound = 1e-6 * max_cost(x, y, p) + 1e-6 * abs(reference.value.item())
    assert abs(scaled.value.item() / c ** p - reference.value.item()) <= bound


@given(problems(), st.sampled_from([1, 2]), st.sampled_from([1e-20, 1e-6, 1e5, 1e12]))
def test_scale_covariance_float32(problem, p, c):
    """float32 holds costs up to 1e30 (larger clouds are refused, naming x or y)."""
    a, x, b, y = problem
    reference = library(a, x, b, y, p=p, blur=0.5, tolerance=1e-8).value.item()
    value = library(a, c * x, b, c * y, dtype=torch.float32, p=p, blur=c * 0.5, on_unconverged="ignore").value.item()
    assert abs(value / c ** p - reference) <= 2e-3 * max_cost(x, y, p) + 1e-3 * abs(reference)


def test_float32_clouds_beyond_its_range_are_refused():
    x, y = torch.randn(5, 2) * 1e20, torch.randn(4, 2) * 1e20
    with pytest.raises(ValueError, match="x.*beyond 1e\\+30"):
        sinkhorn.solve(x, y, blur=1e19)


@given(problems(), st.sampled_from([1, 2]), st.sampled_from([0.05, 0.5, 5.0]), st.data())
def test_translation_and_permutation_invariance(problem, p, blur, data):
    a, x, b, y = problem
    shift = np.array(data.draw(st.lists(st.floats(-1e3, 1e3), min_size=x.shape[1], max_size=x.shape[1])))
    order_x = np.random.default_rng(0).permutation(len(a))
    order_y = np.random.default_rng(1).permutation(len(b))
    options = dict(p=p, blur=blur, tolerance=1e-9, max_iterations=20000, on_unconverged="ignore")
    value = library(a, x, b, y, **options).value.item()
    moved = library(a[order_x], x[order_x] + shift, b[order_y], y[order_y] + shift, **options).value.item()
    # A shift of 1e3 rounds the coordinates to ~1e3 u: costs move by about that times the diameter.
    bound = 1e-6 * max_cost(x, y, p) + 1e-12 * (1 + abs(shift).max()) ** 2 + 1e-7 * abs(value)
    assert abs(moved - value) <= bound


@given(problems(), st.sampled_from([1, 2]), st.floats(0.01, 10.0), st.booleans(),
       st.sampled_from([torch.float32, torch.float64]))
def test_nonnegative_and_zero_on_itself(problem, p, blur, unbalanced, dtype):
    a, x, b, y = problem
    reach = 1.0 if unbalanced else None
    # The value errs by second order in the marginal error: float64 solves to 1e-9 leave rounding.
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4
    options = dict(p=p, blur=blur, reach=reach, tolerance=tolerance, max_iterations=20000, on_unconverged="ignore")
    value = library(a, x, b, y, dtype=dtype, **options).value.item()
    itself = library(a, x, a, x, dtype=dtype, **options).value.item()
    # S is a sum of terms of size max C (or rho) that cancel: allow their rounding.
    rounding = (1e-5 if dtype == torch.float32 else 1e-12) * (max_cost(x, y, p) + (reach or 0) + blur ** p)
    # Sejourne's unbalanced formula is first order in the potentials' error (eps times the
    # marginal error), where the balanced combination is second order.
    if unbalanced:
        rounding += 10 * tolerance * (blur ** p + reach ** p)
    assert value >= -rounding
    assert abs(itself) <= rounding


def exact_ot_by_assignment(x, y, p):
    """Uniform clouds of equal size: OT is the cheapest permutation."""
    c = cost(x, y, p)
    n = len(x)
    return min(sum(c[i, j] for i, j in enumerate(perm)) for perm in itertools.permutations(range(n))) / n


@given(st.integers(0, 2 ** 31 - 1), st.integers(2, 6), st.sampled_from([1, 2]))
def test_small_blur_approaches_exact_ot(seed, n, p):
    generator = np.random.default_rng(seed)
    x, y = generator.normal(size=(n, 2)), generator.normal(size=(n, 2)) + 0.5
    a = np.full(n, 1.0 / n)
    exact = exact_ot_by_assignment(x, y, p)
    scale = max_cost(x, y, p)
    eps = 1e-5 * scale
    value = library(a, x, a, y, p=p, blur=eps ** (1 / p), loss="ot_eps", tolerance=1e-6,
                    max_iterations=100000, on_unconverged="ignore").value.item()
    # <pi, C> >= OT and KL >= 0, while the optimal permutation's plan has KL(pi | a x b) = log n:
    # 0 <= OT_eps - OT <= eps log n.
    assert -1e-6 * scale <= value - exact <= eps * np.log(n) + 1e-6 * scale


@given(problems(), st.sampled_from([1e3, 1e6, 1e12, 1e40]), st.sampled_from([torch.float32, torch.float64]))
def test_large_blur_limits(problem, blur_in_diameters, dtype):
    a, x, b, y = problem
    scale = max(np.linalg.norm(np.ptp(np.concatenate([x, y]), 0)), 1e-3)
    mean_gap = ((a @ x - b @ y) ** 2).sum() / 2
    distances = lambda u, v: np.sqrt(((u[:, None] - v[None]) ** 2).sum(-1))  # noqa: E731
    energy = a @ distances(x, y) @ b - a @ distances(x, x) @ a / 2 - b @ distances(y, y) @ b / 2
    tolerance = 1e-4 if dtype == torch.float32 else 1e-7
    for p, limit in ((2, mean_gap), (1, energy)):
        blur = blur_in_diameters ** (1 / p) * scale
        value = library(a, x, b, y, dtype=dtype, p=p, blur=blur).value.item()
        # O(max C / eps) from the limit, rounding of the inputs in float32.
        assert abs(value - limit) <= tolerance * max_cost(x, y, p) + 10 * max_cost(x, y, p) / blur_in_diameters


def test_the_issue_examples_far_above_the_cost_scale():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(7, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    limit = ((x.mean(0) - y.mean(0)) ** 2).sum().item() / 2
    for blur in (1e3, 1e8, 1e10):
        assert sinkhorn.solve(x, y, blur=blur).value.item() == pytest.approx(limit, rel=1e-5)
    assert sinkhorn.solve(x.float(), y.float(), blur=1e6).value.item() == pytest.approx(limit, rel=1e-5)
    # And 1e-20 times smaller clouds at the default blur: about 1e-40.
    tiny = sinkhorn.solve(1e-20 * x, 1e-20 * y).value.item()
    assert tiny == pytest.approx(1e-40 * limit, rel=1e-5)


def test_unconverged_solves_warn_once_per_line_or_raise(clouds):
    a, x, b, y = clouds
    loss = sinkhorn.SamplesLoss("sinkhorn", blur=0.01, diameter=1e-9, max_iterations=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            loss(a, x, b, y)  # one line: one warning
    relevant = [w for w in caught if issubclass(w.category, sinkhorn.ConvergenceWarning)]
    assert len(relevant) == 1
    assert relevant[0].filename == __file__  # the caller's line, not the package's
    assert "not converged after" in str(relevant[0].message)
    with warnings.catch_warnings(record=True) as caught:  # solve too (behind torch.compiler.disable)
        warnings.simplefilter("default")
        sinkhorn.solve(x, y, a, b, blur=0.01, diameter=1e-9, max_iterations=3)
    relevant = [w for w in caught if issubclass(w.category, sinkhorn.ConvergenceWarning)]
    assert len(relevant) == 1 and relevant[0].filename == __file__
    assert "marginal error" in str(relevant[0].message)
    strict = sinkhorn.SamplesLoss("sinkhorn", blur=0.01, diameter=1e-9, max_iterations=3, on_unconverged="raise")
    with pytest.raises(sinkhorn.ConvergenceError, match="not converged"):
        strict(a, x, b, y)
    with pytest.raises(sinkhorn.ConvergenceError):
        sinkhorn.solve(x, y, a, b, blur=0.01, max_iterations=3, on_unconverged="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        silent = sinkhorn.solve(x, y, a, b, blur=0.01, max_iterations=3, on_unconverged="ignore")
    assert not silent.converged
    with pytest.raises(ValueError, match="on_unconverged"):
        sinkhorn.SamplesLoss(on_unconverged="loud")


def test_reported_error_is_that_of_the_returned_plans(clouds):
    a, x, b, y = clouds
    for tolerance in (1e-2, 1e-4):
        r = sinkhorn.solve(x, y, a, b, blur=0.3, tolerance=tolerance)
        eps = r.epsilon

        def error(u, w, f, v, z, g):
            plan = np.exp((f.numpy()[:, None] + g.numpy()[None, :] - cost(u.numpy(), v.numpy(), 2)) / eps)
            plan *= w.numpy()[:, None] * z.numpy()[None, :]
            return max(abs(plan.sum(1) - w.numpy()).sum() / w.sum().item(),
                       abs(plan.sum(0) - z.numpy()).sum() / z.sum().item())
        actual = max(error(x, a, r.f_ab, y, b, r.g_ab), error(x, a, r.f_aa, x, a, r.f_aa),
                     error(y, b, r.g_bb, y, b, r.g_bb))
        assert r.marginal_error == pytest.approx(actual, rel=1e-6, abs=1e-13)
        assert r.converged == (actual <= r.tolerance)
