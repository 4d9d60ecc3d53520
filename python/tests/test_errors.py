"""Every bad input is a ValueError whose message starts with the argument's name."""
import pytest
import torch

import sinkhorn

x, y = torch.randn(10, 2), torch.randn(8, 2)


def raises(argument, call):
    with pytest.raises(ValueError) as failure:
        call()
    assert str(failure.value).startswith(argument + ":"), str(failure.value)
    return str(failure.value)


@pytest.mark.parametrize("argument, options", [
    ("loss", dict(loss="wasserstein")),
    ("loss", dict(loss=3)),
    ("p", dict(p=3)),
    ("p", dict(p=1.5)),
    ("blur", dict(blur=-0.1)),
    ("blur", dict(blur=float("nan"))),
    ("blur", dict(blur="0.1")),
    ("reach", dict(reach=0.0)),
    ("diameter", dict(diameter=-1.0)),
    ("scaling", dict(scaling=1.5)),
    ("cluster_scale", dict(cluster_scale=0.0)),
    ("tolerance", dict(tolerance=0.0)),
    ("max_iterations", dict(max_iterations=-1)),
    ("iterations", dict(iterations=-2)),
    ("iterations", dict(iterations=2 ** 31)),  # was a pybind TypeError with a signature dump
    ("max_iterations", dict(max_iterations=2 ** 40)),
    ("gradient", dict(gradient="backprop")),
    ("backend", dict(backend="keops")),
    ("coarse_correction", dict(coarse_correction="yes")),
    ("debias", dict(debias="yes")),
    ("potentials", dict(potentials=1)),
    ("cost", dict(cost=lambda a, b: (a - b).abs())),
    ("cost", dict(cost="SqDist(X,Y)")),
    ("kernel", dict(kernel=lambda a, b: a @ b.T)),
    ("truncate", dict(truncate="3")),
])
def test_bad_options_name_the_option(argument, options):
    # Some are refused when the loss is built, the others (ranges the library checks) at the call.
    raises(argument, lambda: sinkhorn.SamplesLoss(**options)(x, y))
    raises(argument, lambda: sinkhorn.solve(x, y, **{k: v for k, v in options.items()
                                                      if k not in ("debias", "potentials", "cost", "kernel", "truncate")})) \
        if argument not in ("debias", "potentials", "cost", "kernel", "truncate") else None


def test_truncate_is_ignored_with_a_warning_that_can_be_silenced():
    # GeomLoss ignores truncate outside its multiscale mode; the multiscale backend here bounds its
    # truncation itself, so it is ignored everywhere, and said once per calling line.
    with pytest.warns(sinkhorn.IgnoredArgumentWarning, match="truncate=3 is ignored"):
        loss = sinkhorn.SamplesLoss(truncate=3)
    assert loss.truncate == 3
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", category=sinkhorn.IgnoredArgumentWarning)
        sinkhorn.SamplesLoss(truncate=torch.tensor(1.0))(x, y)
        sinkhorn.SamplesLoss(truncate=None)(x, y)


def test_what_is_not_supported_says_so():
    assert "hausdorff" in raises("loss", lambda: sinkhorn.SamplesLoss("hausdorff"))
    raises("reach", lambda: sinkhorn.SamplesLoss("energy", reach=1.0))
    raises("p", lambda: sinkhorn.SamplesLoss("gaussian", p=1))
    raises("debias", lambda: sinkhorn.SamplesLoss("primal", debias=False))
    raises("potentials", lambda: sinkhorn.SamplesLoss("ot", potentials=True))
    raises("args", lambda: sinkhorn.SamplesLoss()(x))
    raises("args", lambda: sinkhorn.SamplesLoss()(x, y, x))
    raises("args", lambda: sinkhorn.SamplesLoss()(None, None, None, None, None, None))


@pytest.mark.parametrize("argument, args", [
    ("x", ([[0.0, 1.0]], y)),
    ("x", (torch.randn(10), y)),
    ("x", (torch.randn(2, 3, 4, 5), y)),
    ("x", (torch.ones(10, 2, dtype=torch.int64), y)),
    ("y", (x, torch.randn(8, 3))),
    ("y", (x, torch.randn(1, 8, 2))),
    ("y", (torch.randn(2, 10, 2), torch.randn(3, 8, 2))),
    ("x", (torch.full((10, 2), float("nan")), y)),
    ("y", (x, torch.full((8, 2), float("inf")))),
    ("x", (torch.empty(0, 2), y)),
])
def test_bad_points_name_the_argument(argument, args):
    raises(argument, lambda: sinkhorn.SamplesLoss()(*args))


@pytest.mark.parametrize("argument, a, b", [
    ("a", torch.ones(9), torch.ones(8)),
    ("a", torch.ones(10, 2), torch.ones(8)),
    ("a", -torch.ones(10), torch.ones(8)),
    ("a", torch.zeros(10), torch.ones(8)),
    ("b", torch.ones(10), torch.full((8,), float("nan"))),
    ("b", torch.ones(10), [1.0] * 8),
])
def test_bad_weights_name_the_argument(argument, a, b):
    raises(argument, lambda: sinkhorn.SamplesLoss()(a, x, b, y))


def test_unbalanced_masses_are_refused_for_balanced_transport():
    with pytest.raises(ValueError, match="^a and b must have the same total mass.*set reach"):
        sinkhorn.SamplesLoss()(torch.ones(10) / 10, x, torch.ones(8), y)


@pytest.mark.parametrize("argument, args", [
    ("x", (torch.randn(0, 6, 2), torch.randn(0, 5, 2))),  # an empty batch (was an IndexError from amin)
    ("x", (torch.randn(6, 2, device="meta"), torch.randn(5, 2, device="meta"))),
    ("x", (torch.randn(6, 2).to_sparse(), torch.randn(5, 2))),
    ("y", (torch.randn(6, 2), torch.randn(5, 2).to_sparse())),
])
def test_tensors_without_values_name_the_argument(argument, args):
    raises(argument, lambda: sinkhorn.solve(*args))


def test_sparse_weights_name_the_argument():
    raises("a", lambda: sinkhorn.solve(x, y, torch.full((10,), 0.1).to_sparse(), None))


def test_torch_func_transforms_are_refused_with_the_way_round():
    loss = sinkhorn.SamplesLoss()
    for transform in (lambda: torch.func.grad(lambda p: loss(p, y))(x),
                      lambda: torch.func.vmap(lambda p: loss(p, y))(torch.randn(3, 10, 2))):
        with pytest.raises(NotImplementedError, match="torch.func transform.*loss.backward"):
            transform()
