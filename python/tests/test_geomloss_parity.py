"""SamplesLoss beside GeomLoss 0.3.1's own (from PyPI): the same attributes, potentials of the same
shapes for every call form, numbers given as 0-d tensors, and ragged batches (which GeomLoss
lacks) equal to their separate solves."""
import geomloss
import pytest
import torch

import sinkhorn
from conftest import ot_eps

GEOMLOSS_ATTRIBUTES = ("loss", "backend", "p", "blur", "reach", "truncate", "diameter", "scaling", "cost", "kernel",
                       "cluster_scale", "debias", "potentials", "verbose")


def clouds(batch=None):
    generator = torch.Generator().manual_seed(5)
    shape = (batch,) if batch else ()
    x = torch.randn(*shape, 23, 3, generator=generator, dtype=torch.float64)
    y = torch.randn(*shape, 17, 3, generator=generator, dtype=torch.float64) * 0.8 + 0.3
    a = torch.rand(*shape, 23, generator=generator, dtype=torch.float64) + 0.2
    b = torch.rand(*shape, 17, generator=generator, dtype=torch.float64) + 0.2
    return a / a.sum(-1, keepdim=True), x, b / b.sum(-1, keepdim=True), y


def test_the_attributes_are_geomloss_s():
    ours, theirs = sinkhorn.SamplesLoss(), geomloss.SamplesLoss()
    for name in GEOMLOSS_ATTRIBUTES:
        assert getattr(ours, name) == getattr(theirs, name), name
    # Setting one checks it again and takes effect at the next call, as GeomLoss reads them there.
    a, x, b, y = clouds()
    before = ours(x, y)
    ours.blur = 0.5
    assert ours.blur == 0.5 and ours(x, y).item() != pytest.approx(before.item(), rel=1e-3)
    with pytest.raises(ValueError, match="^blur: "):
        ours.blur = -1.0
    with pytest.raises(ValueError, match="^p: "):
        ours.p = 3


def oracle_potentials(a, x, b, y, eps):
    """GeomLoss's debiased potentials F = f_ab - f_aa, G = g_ab - g_bb from the float64 oracle
    (conftest.py), one entry at a time; f_ab, g_ab up to their constant shift."""
    if x.dim() == 3:
        pairs = [oracle_potentials(a[k], x[k], b[k], y[k], eps) for k in range(x.shape[0])]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    an, xn, bn, yn = (t.reshape(t.shape[0], -1).squeeze(-1).numpy() for t in (a, x, b, y))
    _, f_ab, g_ab = ot_eps(an, xn, bn, yn, eps, 2)
    _, f_a, g_a = ot_eps(an, xn, an, xn, eps, 2)
    _, f_b, g_b = ot_eps(bn, yn, bn, yn, eps, 2)
    return torch.from_numpy(f_ab - (f_a + g_a) / 2), torch.from_numpy(g_ab - (f_b + g_b) / 2)


def gap_to(F, G, F_ref, G_ref):
    """How far (F, G) is from (F_ref, G_ref) up to the shift (F - c, G + c)."""
    shift = (F - F_ref).mean(-1, keepdim=True)
    return max((F - F_ref - shift).abs().max().item(), (G - G_ref + shift).abs().max().item())


@pytest.mark.parametrize("form", ["points", "weights", "column weights", "batch", "batch weights"])
@pytest.mark.parametrize("loss", ["sinkhorn", "energy"])
def test_potentials_have_geomloss_s_shapes_and_values(form, loss):
    a, x, b, y = clouds(batch=2 if form.startswith("batch") else None)
    uniform = form in ("points", "batch")
    args = {"points": (x, y), "weights": (a, x, b, y), "column weights": (a[:, None], x, b[:, None], y),
            "batch": (x, y), "batch weights": (a, x, b, y)}[form]
    options = dict(blur=0.5, potentials=True)
    F, G = sinkhorn.SamplesLoss(loss, **options, **({"tolerance": 1e-11} if loss == "sinkhorn" else {}))(*args)
    F_ref, G_ref = geomloss.SamplesLoss(loss, **options, backend="tensorized")(*args)
    assert F.shape == F_ref.shape and G.shape == G_ref.shape
    if loss == "energy":  # closed forms: the same to GeomLoss's rounding of its distances (sqrt of
        # |x|^2 + |y|^2 - 2 x.y near 0 on the diagonal)
        torch.testing.assert_close(F, F_ref, rtol=0, atol=1e-4)
        torch.testing.assert_close(G, G_ref, rtol=0, atol=1e-4)
        return
    # GeomLoss's eps-annealing stops at the end of its schedule, percents away at this blur; the
    # float64 oracle decides.
    if uniform:
        a, b = (torch.full(t.shape[:-1], 1.0 / t.shape[-2], dtype=t.dtype) for t in (x, y))
    F_oracle, G_oracle = oracle_potentials(a, x, b, y, 0.25)
    F_oracle, G_oracle = F_oracle.reshape(F.shape), G_oracle.reshape(G.shape)
    ours, theirs = gap_to(F, G, F_oracle, G_oracle), gap_to(F_ref, G_ref, F_oracle, G_oracle)
    assert ours <= 1e-8 and ours <= theirs


def test_numbers_may_be_0d_tensors():
    a, x, b, y = clouds()
    given = dict(p=torch.tensor(2), blur=torch.tensor(0.2), scaling=torch.tensor(0.7), cluster_scale=torch.tensor(0.3),
                 reach=torch.tensor(2.0), diameter=torch.tensor(10.0))
    plain = {k: v.item() for k, v in given.items()}
    torch.testing.assert_close(sinkhorn.SamplesLoss(**given, backend="multiscale")(a, x, b, y),
                               sinkhorn.SamplesLoss(**plain, backend="multiscale")(a, x, b, y))


def test_ragged_batches_equal_their_separate_solves():
    generator = torch.Generator().manual_seed(9)
    xs = [torch.randn(n, 2, generator=generator, dtype=torch.float64, requires_grad=True) for n in (7, 30, 12)]
    ys = [torch.randn(m, 2, generator=generator, dtype=torch.float64) + 0.5 for m in (9, 5, 25)]
    loss = sinkhorn.SamplesLoss(blur=0.2, tolerance=1e-11)
    values = loss(xs, ys)
    assert values.shape == (3,)
    gradients = torch.autograd.grad(values.sum(), xs)
    for k in range(3):
        alone = loss(xs[k], ys[k])
        assert values[k].item() == pytest.approx(alone.item(), rel=1e-9, abs=1e-12)
        torch.testing.assert_close(gradients[k], torch.autograd.grad(alone, xs[k])[0], rtol=1e-6, atol=1e-10)
    # PyTorch Geometric's form, nested tensors, solve() and the potentials of each entry.
    points_x, points_y = torch.cat([x.detach() for x in xs]), torch.cat(ys)
    index_x = torch.repeat_interleave(torch.arange(3), torch.tensor([7, 30, 12]))
    index_y = torch.repeat_interleave(torch.arange(3), torch.tensor([9, 5, 25]))
    torch.testing.assert_close(loss(points_x, points_y, batch_x=index_x, batch_y=index_y), values.detach())
    # With PyG-shaped (N,) weights, split by the same vectors.
    weights_x = torch.cat([torch.full((n,), 1.0 / n, dtype=torch.float64) for n in (7, 30, 12)])
    weights_y = torch.cat([torch.full((m,), 1.0 / m, dtype=torch.float64) for m in (9, 5, 25)])
    torch.testing.assert_close(loss(weights_x, points_x, weights_y, points_y, batch_x=index_x, batch_y=index_y),
                               values.detach())
    nested = loss(torch.nested.nested_tensor([x.detach() for x in xs]), torch.nested.nested_tensor(ys))
    torch.testing.assert_close(nested, values.detach())
    solution = sinkhorn.solve([x.detach() for x in xs], ys, blur=0.2, tolerance=1e-11)
    torch.testing.assert_close(solution.value, values.detach())
    assert [f.shape for f in solution.f_ab] == [(7,), (30,), (12,)]
    F, G = sinkhorn.SamplesLoss(blur=0.2, tolerance=1e-11, potentials=True)(xs, ys)
    assert [f.shape for f in F] == [(7,), (30,), (12,)] and [g.shape for g in G] == [(9,), (5,), (25,)]
    F1, G1 = sinkhorn.SamplesLoss(blur=0.2, tolerance=1e-11, potentials=True)(xs[1], ys[1])
    assert gap_to(F[1], G[1], F1.reshape(-1), G1.reshape(-1)) <= 1e-8  # up to f_ab's constant shift
