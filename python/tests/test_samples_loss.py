"""sinkhorn.SamplesLoss and sinkhorn.solve against a NumPy float64 oracle, the C++ command line and
GeomLoss's conventions on cases computable by hand."""
import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import sinkhorn
from conftest import cost, divergence, ot_eps

TIGHT = dict(tolerance=1e-12, max_iterations=100000)


def numpy_of(*tensors):
    return [t.detach().numpy() for t in tensors]


@pytest.mark.parametrize("p, blur", [(2, 0.5), (2, 0.3), (1, 0.3)])
def test_divergence_matches_the_numpy_oracle(clouds, p, blur):
    a, x, b, y = clouds
    value = sinkhorn.SamplesLoss("sinkhorn", p=p, blur=blur, **TIGHT)(a, x, b, y)
    assert value.dtype == torch.float64 and value.shape == ()
    expected = divergence(*numpy_of(a, x, b, y), blur ** p, p)
    assert value.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_debias_false_is_ot_eps_with_geomloss_potentials(clouds):
    a, x, b, y = clouds
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=0.4, debias=False, **TIGHT)
    expected, f, g = ot_eps(*numpy_of(a, x, b, y), 0.16, 2)
    assert loss(a, x, b, y).item() == pytest.approx(expected, rel=1e-9)
    F, G = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=0.4, debias=False, potentials=True, **TIGHT)(a, x, b, y)
    F, G = F.squeeze(0), G.squeeze(0)  # GeomLoss's (1, N) for one pair of clouds
    # Balanced potentials are defined up to (f + c, g - c): compare after fixing <a, F> to the oracle's.
    shift = (a @ F).item() - a.numpy() @ f
    np.testing.assert_allclose(F.numpy() - shift, f, atol=1e-9)
    np.testing.assert_allclose(G.numpy() + shift, g, atol=1e-9)


def test_debiased_potentials_are_the_differences_of_the_solves_and_sum_to_the_value(clouds):
    a, x, b, y = clouds
    F, G = sinkhorn.SamplesLoss(blur=0.3, potentials=True, **TIGHT)(a, x, b, y)
    F, G = F.squeeze(0), G.squeeze(0)
    solution = sinkhorn.solve(x, y, a, b, blur=0.3, **TIGHT)
    torch.testing.assert_close(F, solution.f_ab - solution.f_aa)
    torch.testing.assert_close(G, solution.g_ab - solution.g_bb)
    # GeomLoss's formula for the value: S_eps = <a, F> + <b, G>.
    assert (a @ F + b @ G).item() == pytest.approx(solution.value.item(), rel=1e-9)
    # F is the gradient of S_eps in a, up to a constant (the weights live on the simplex).
    a_leaf = a.clone().requires_grad_(True)
    sinkhorn.SamplesLoss(blur=0.3, **TIGHT)(a_leaf, x, b, y).backward()
    torch.testing.assert_close(a_leaf.grad - a_leaf.grad.mean(), F - F.mean(), atol=1e-8, rtol=0)


def test_a_translated_cloud_is_at_half_the_squared_shift_whatever_eps():
    # |x - y - t|^2 / 2 = |x - y|^2 / 2 - <x - y, t> + |t|^2 / 2, and every plan between a cloud and
    # its translate pays the middle term's mean, 0: OT_eps(a, a + t) = OT_eps(a, a) + |t|^2 / 2.
    x = torch.randn(40, 2, dtype=torch.float64)
    t = torch.tensor([0.3, -0.4], dtype=torch.float64)
    for blur in (0.1, 0.5, 3.0):
        assert sinkhorn.SamplesLoss(blur=blur, tolerance=1e-9)(x, x + t).item() == pytest.approx(0.125, rel=1e-7)
        biased = sinkhorn.SamplesLoss(blur=blur, debias=False, tolerance=1e-9)(x, x + t).item()
        assert biased > 0.125  # OT_eps(a, a) > 0: the bias debias removes


def test_two_diracs():
    x, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert sinkhorn.SamplesLoss(p=2)(x, y).item() == pytest.approx(12.5, rel=1e-6)
    assert sinkhorn.SamplesLoss(p=1)(x, y).item() == pytest.approx(5.0, rel=1e-6)


def test_call_forms_shapes_and_dtypes(clouds):
    a, x, b, y = clouds
    loss = sinkhorn.SamplesLoss(blur=0.3)
    uniform_x, uniform_y = torch.full((23,), 1 / 23, dtype=torch.float64), torch.full((17,), 1 / 17, dtype=torch.float64)
    torch.testing.assert_close(loss(x, y), loss(uniform_x, x, uniform_y, y))
    torch.testing.assert_close(loss(a, x, b, y), loss(a[:, None], x, b[:, None], y))  # (N, 1) weights
    for dtype in (torch.float32, torch.float64):
        value = loss(x.to(dtype), y.to(dtype))
        assert value.dtype == dtype and value.shape == () and value.device == x.device
    # Batches: (B, N, D) with (B, N) or (B, N, 1) weights give (B,), entry by entry the single solves.
    xb, yb = torch.stack([x, x * 0.5]), torch.stack([y, y + 1])
    ab, bb = torch.stack([a, uniform_x]), torch.stack([b, b])
    batched = loss(ab, xb, bb, yb)
    assert batched.shape == (2,)
    for k in range(2):
        assert batched[k].item() == pytest.approx(loss(ab[k], xb[k], bb[k], yb[k]).item(), rel=1e-6)
    torch.testing.assert_close(loss(ab[..., None], xb, bb[..., None], yb), batched)
    # Potentials shaped as GeomLoss 0.3.1 returns them (checked against it in test_geomloss_parity.py).
    F, G = sinkhorn.SamplesLoss(blur=0.3, potentials=True)(ab[..., None], xb, bb, yb)
    assert F.shape == (2, 23) and G.shape == (2, 17)
    F, G = sinkhorn.SamplesLoss(blur=0.3, potentials=True)(x, y)
    assert F.shape == (1, 23) and G.shape == (1, 17)
    F, G = sinkhorn.SamplesLoss(blur=0.3, potentials=True, backend="multiscale")(x, y)
    assert F.shape == (23,) and G.shape == (17,)


@pytest.mark.parametrize("name", ["energy", "gaussian", "laplacian"])
def test_kernel_losses_have_geomloss_values_and_potentials(clouds, name):
    a, x, b, y = clouds
    blur = 0.7
    distance = lambda u, v: np.sqrt(((u[:, None] - v[None]) ** 2).sum(-1))
    kernel = {"energy": lambda u, v: -distance(u, v),
              "gaussian": lambda u, v: np.exp(-distance(u, v) ** 2 / (2 * blur ** 2)),
              "laplacian": lambda u, v: np.exp(-distance(u, v) / blur)}[name]
    an, xn, bn, yn = numpy_of(a, x, b, y)
    # GeomLoss's kernel_tensorized: 0.5 <a, K_xx a> + 0.5 <b, K_yy b> - <a, K_xy b>.
    expected = 0.5 * an @ kernel(xn, xn) @ an + 0.5 * bn @ kernel(yn, yn) @ bn - an @ kernel(xn, yn) @ bn
    assert sinkhorn.SamplesLoss(name, blur=blur)(a, x, b, y).item() == pytest.approx(expected, rel=1e-10)
    F, G = sinkhorn.SamplesLoss(name, blur=blur, potentials=True)(a, x, b, y)
    F, G = F.squeeze(0), G.squeeze(0)
    np.testing.assert_allclose(F.numpy(), kernel(xn, xn) @ an - kernel(xn, yn) @ bn, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(G.numpy(), kernel(yn, yn) @ bn - kernel(yn, xn) @ an, rtol=1e-10, atol=1e-12)


def test_the_library_losses_by_name(clouds):
    a, x, b, y = clouds
    for name in ("primal", "ot", "gaussian_mixture"):
        value = sinkhorn.SamplesLoss(name, blur=0.5)(a, x, b, y)
        assert torch.isfinite(value) and value.item() > 0, name
    # Exact OT is the eps -> 0 end of OT_eps: within eps log(N M) of it.
    exact = sinkhorn.SamplesLoss("ot")(a, x, b, y).item()
    assert sinkhorn.SamplesLoss(blur=0.01, debias=False, **TIGHT)(a, x, b, y).item() == pytest.approx(exact, abs=1e-3)


def test_solve_reports_its_diagnostics(clouds):
    a, x, b, y = clouds
    solution = sinkhorn.solve(x, y, a, b, blur=0.2, tolerance=1e-6)
    assert solution.converged and solution.marginal_error <= solution.tolerance
    assert solution.iterations >= solution.schedule_length > 1
    assert solution.epsilon == pytest.approx(0.04)
    assert solution.backend in ("tensorized", "online", "multiscale")
    assert solution.f_ab.shape == (23,) and solution.g_bb.shape == (17,)
    unconverged = sinkhorn.solve(x, y, a, b, blur=0.01, tolerance=1e-12, max_iterations=2)
    assert not unconverged.converged
    fixed = sinkhorn.solve(x, y, a, b, blur=0.2, iterations=7)
    assert fixed.iterations == 7 and fixed.schedule_length == 1


def test_agrees_with_the_command_line(tmp_path):
    binary = os.path.join(os.path.dirname(__file__), "..", "..", "build", "sinkhorn")
    if not os.path.exists(binary):
        pytest.skip("no build/sinkhorn next to this package")
    generator = np.random.default_rng(3)
    x, y = generator.random((300, 3)), generator.random((250, 3)) * 0.5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    output = subprocess.run([binary, "divergence", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--blur", "0.1",
                             "--json", "--threads", "1"], capture_output=True, text=True, check=True).stdout
    expected = json.loads(output)["value"]
    value = sinkhorn.SamplesLoss(blur=0.1)(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value == pytest.approx(expected, rel=1e-6)


def test_module_behaviour():
    loss = sinkhorn.SamplesLoss("sinkhorn", p=1, blur=0.1, reach=2.0)
    assert loss.to(torch.float64) is loss and loss.double() is loss
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    text = repr(loss)
    assert text.startswith("SamplesLoss(") and "p=1" in text and "reach=2.0" in text and "blur=0.1" in text
    clone = copy.deepcopy(loss)
    x, y = torch.randn(30, 2), torch.randn(20, 2)
    torch.testing.assert_close(clone(x, y), loss(x, y))

    class Pair(torch.nn.Module):
        def forward(self, x):
            return x, x.flip(0) + 1

    pipeline = torch.nn.Sequential(Pair(), sinkhorn.SamplesLoss(blur=0.3))
    assert pipeline(x).item() == pytest.approx(sinkhorn.SamplesLoss(blur=0.3)(x, x.flip(0) + 1).item())


def test_verbose_prints_the_diagnostics(capsys):
    sinkhorn.SamplesLoss(blur=0.3, verbose=True)(torch.randn(10, 2), torch.randn(12, 2))
    assert "sweeps, marginal error" in capsys.readouterr().out


def test_a_short_training_loop_lowers_the_loss():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(300, 2, generator=generator) * 0.3 + torch.tensor([2.0, -1.0])
    source = torch.randn(300, 2, generator=generator)
    shift = torch.zeros(2, requires_grad=True)
    scale = torch.ones(1, requires_grad=True)
    optimiser = torch.optim.Adam([shift, scale], lr=0.05)
    loss = sinkhorn.SamplesLoss(blur=0.05)
    values = []
    for _ in range(120):
        optimiser.zero_grad()
        value = loss(source * scale + shift, target)
        value.backward()
        optimiser.step()
        values.append(value.item())
    assert values[-1] < 0.05 * values[0]
    torch.testing.assert_close(shift.detach(), torch.tensor([2.0, -1.0]), atol=0.15, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (or no CUDA in this PyTorch)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [3, 64])
def test_cuda_tensors_match_the_cpu(dtype, d):
    generator = torch.Generator().manual_seed(d)
    x = torch.rand(700, d, generator=generator, dtype=torch.float64)
    y = torch.rand(500, d, generator=generator, dtype=torch.float64) * 0.8
    blur = 0.1 * (d / 3) ** 0.5
    expected = sinkhorn.solve(x, y, blur=blur, tolerance=1e-9)
    x_gpu = x.to("cuda", dtype).requires_grad_(True)
    value = sinkhorn.SamplesLoss(blur=blur, tolerance=1e-5 if dtype == torch.float32 else 1e-9)(x_gpu, y.to("cuda", dtype))
    assert value.device.type == "cuda" and value.dtype == dtype
    value.backward()
    x_cpu = x.clone().requires_grad_(True)
    sinkhorn.SamplesLoss(blur=blur, tolerance=1e-9)(x_cpu, y).backward()
    tolerance = 1e-8 if dtype == torch.float64 else 2e-3
    assert value.item() == pytest.approx(expected.value.item(), rel=tolerance)
    gap = (x_gpu.grad.cpu().double() - x_cpu.grad).norm() / x_cpu.grad.norm()
    assert gap.item() < (1e-6 if dtype == torch.float64 else 2e-2)


def test_the_cuda_module_loads_wherever_it_was_built():
    # The kernels live in libsinkhorn_cuda.so, loaded at import (beside the extension once pip
    # installed, in the build tree here): a build that made it must find it, GPU or not.
    if sinkhorn._C.cuda_module_built:
        assert sinkhorn._C.cuda_kernels, sinkhorn._C.cuda_kernels_problem
    else:
        assert not sinkhorn._C.cuda_kernels and "no CUDA kernels" in sinkhorn._C.cuda_kernels_problem


def test_corrected_sweeps_stop_a_crawling_ring_and_a_64d_mixture_at_their_values():
    """Two samples of the ring of 8 Gaussians, and two 8-blob mixtures in 64-D, whose modes hold
    slightly different masses: the plain loop (coarse_correction=False) crawls on the mass moving
    between modes and stops off the converged value; the default corrected sweeps
    (docs/numerics.md) stop within the tolerance's reach of it in a fraction of the sweeps, and
    say so (corrected_sweeps)."""
    import math
    torch.manual_seed(8)

    def ring(n):
        angle = torch.randint(0, 8, (n,)).double() * (math.pi / 4)
        return 2.0 * torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, dtype=torch.float64)

    def mixture(n, scale, seed):
        centres = torch.randn(8, 64, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        labels = torch.multinomial(1.0 + 0.1 * torch.rand(8, generator=generator), n, replacement=True,
                                   generator=generator)
        return scale * centres[labels] + 0.1 * torch.randn(n, 64, generator=generator, dtype=torch.float64)

    cases = [(ring(500), ring(500), dict(loss="ot_eps", blur=0.1, tolerance=1e-3), 1e-3),
             (mixture(600, 1.0, 1), mixture(600, 0.9, 2), dict(loss="ot_eps", blur=0.5, tolerance=1e-4), 1e-4)]
    for x, y, options, tolerance in cases:
        plain = sinkhorn.solve(x, y, **options, coarse_correction=False, on_unconverged="ignore")
        corrected = sinkhorn.solve(x, y, **options)
        assert corrected.value.item() == sinkhorn.solve(x, y, **options, coarse_correction=True).value.item()
        converged = sinkhorn.solve(x, y, **{**options, "tolerance": 1e-9}, max_iterations=200000)
        assert converged.converged and corrected.converged
        value = converged.value.item()
        assert corrected.value.item() == pytest.approx(value, rel=10 * tolerance)
        assert corrected.corrected_sweeps > 0 and plain.corrected_sweeps == 0
        assert 3 * corrected.iterations < plain.iterations
    # The ring through SamplesLoss, with its gradient.
    x, y, _, _ = cases[0]
    value = sinkhorn.solve(x, y, loss="ot_eps", blur=0.1, tolerance=1e-9, max_iterations=200000).value.item()
    xg = x.clone().requires_grad_()
    loss = sinkhorn.SamplesLoss("sinkhorn", blur=0.1, debias=False, tolerance=1e-3)
    loss(xg, y).backward()
    assert torch.isfinite(xg.grad).all()
    assert loss(x, y).item() == pytest.approx(value, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available() or not sinkhorn._C.cuda_kernels, reason="needs a GPU and the CUDA kernels")
def test_corrected_sweeps_on_cuda_match_the_cpu(monkeypatch):
    """Corrected sweeps on CUDA tensors (off there until this check has run them on a GPU:
    SINKHORN_CUDA_CORRECTED_SWEEPS=1) take the CPU's sweeps on a 16-D mixture and reach its value."""
    monkeypatch.setenv("SINKHORN_CUDA_CORRECTED_SWEEPS", "1")
    centres = torch.randn(8, 16, generator=torch.Generator().manual_seed(11))
    generator = torch.Generator().manual_seed(1)
    labels = torch.multinomial(1.0 + 0.1 * torch.rand(8, generator=generator), 2000, replacement=True,
                               generator=generator)
    x = centres[labels] + 0.1 * torch.randn(2000, 16, generator=generator)
    y = 0.9 * centres[labels.flip(0)[:1800]] + 0.1 * torch.randn(1800, 16, generator=generator)
    cpu = sinkhorn.solve(x, y, blur=0.5)
    cuda = sinkhorn.solve(x.cuda(), y.cuda(), blur=0.5)
    assert cpu.corrected_sweeps > 0 and cuda.corrected_sweeps > 0 and cuda.converged
    assert cuda.value.item() == pytest.approx(cpu.value.item(), rel=1e-4)
