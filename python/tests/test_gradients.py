"""Gradients through PyTorch's autograd for x, y, a and b: gradcheck in float64 (envelope and
unrolled), torch.autograd.grad as GeomLoss's examples use it, float32 against float64; and the
solve releasing the GIL."""
import threading
import time

import pytest
import torch

import sinkhorn


def small(seed, n=9, m=7, d=2):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = torch.randn(m, d, generator=generator, dtype=torch.float64) + 0.3
    a = torch.rand(n, generator=generator, dtype=torch.float64) + 0.5
    b = torch.rand(m, generator=generator, dtype=torch.float64) + 0.5
    return a / a.sum(), x, b / b.sum(), y


@pytest.mark.parametrize("p", [1, 2])
def test_gradcheck_envelope_in_points_and_weights(p):
    a, x, b, y = small(p)
    loss = sinkhorn.SamplesLoss(p=p, blur=0.7, tolerance=1e-13, max_iterations=100000)
    inputs = [t.clone().requires_grad_(True) for t in (x, y)]
    assert torch.autograd.gradcheck(lambda x, y: loss(a, x, b, y), inputs, eps=1e-6, atol=1e-7)
    # Weights: unbalanced transport (reach), where the loss is defined off the simplex too.
    unbalanced = sinkhorn.SamplesLoss(p=p, blur=0.7, reach=1.0, tolerance=1e-13, max_iterations=100000)
    weights = [t.clone().requires_grad_(True) for t in (a, b)]
    assert torch.autograd.gradcheck(lambda a, b: unbalanced(a, x, b, y), weights, eps=1e-6, atol=1e-7)


def test_gradcheck_unrolled_fixed_l():
    # The paper's mode: exactly L iterations, differentiated through (the loss of L iterations, not
    # of the limit): gradcheck holds at any L.
    a, x, b, y = small(5)
    for name in ("sinkhorn", "primal"):
        loss = sinkhorn.SamplesLoss(name, blur=0.5, iterations=10, gradient="unrolled")
        inputs = [t.clone().requires_grad_(True) for t in (x, y)]
        assert torch.autograd.gradcheck(lambda x, y: loss(a, x, b, y), inputs, eps=1e-6, atol=1e-7)


def test_gradgradcheck_unrolled():
    # Unrolled gradients are differentiable again (a gradient penalty, a Hessian-vector product):
    # the second derivatives through the loop, the reductions' own backward included, against
    # finite differences of the first. p = 2 (p = 1 costs come from ATen's cdist, which has no
    # second derivative).
    a, x, b, y = small(7, 6, 5)
    for name in ("sinkhorn", "primal"):
        loss = sinkhorn.SamplesLoss(name, p=2, blur=0.5, iterations=5, gradient="unrolled")
        inputs = [t.clone().requires_grad_(True) for t in (a, x, y)]
        assert torch.autograd.gradgradcheck(lambda a, x, y: loss(a, x, b, y), inputs, eps=1e-6, atol=1e-6)


def test_envelope_and_unrolled_agree_at_convergence():
    a, x, b, y = small(11, 30, 25, 3)
    grads = []
    for mode in ("envelope", "unrolled"):
        leaf = x.clone().requires_grad_(True)
        value = sinkhorn.SamplesLoss(blur=0.5, gradient=mode, tolerance=1e-12, max_iterations=100000)(a, leaf, b, y)
        grads.append(torch.autograd.grad(value, [leaf])[0])
    torch.testing.assert_close(grads[0], grads[1], atol=1e-8, rtol=1e-6)


def test_backward_and_autograd_grad_agree_in_float32_and_float64():
    a, x, b, y = small(2, 200, 150, 3)
    reference = x.clone().requires_grad_(True)
    sinkhorn.SamplesLoss(blur=0.2, tolerance=1e-10)(a, reference, b, y).backward()
    for dtype in (torch.float32, torch.float64):
        leaf = x.to(dtype).requires_grad_(True)
        value = sinkhorn.SamplesLoss(blur=0.2)(a.to(dtype), leaf, b.to(dtype), y.to(dtype))
        [gradient] = torch.autograd.grad(value, [leaf])
        assert gradient.dtype == dtype and leaf.grad is None
        gap = (gradient.double() - reference.grad).norm() / reference.grad.norm()
        assert gap.item() < 1e-3


def test_gradients_reach_all_four_inputs_and_flow_through_a_graph():
    a, x, b, y = small(3, 20, 15, 2)
    weights = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    logits_a = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    y_leaf = y.clone().requires_grad_(True)
    value = sinkhorn.SamplesLoss(blur=0.3, reach=2.0)(torch.softmax(logits_a, 0), x @ weights, b, y_leaf)
    value.backward()
    for tensor in (weights, logits_a, y_leaf):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_the_solve_releases_the_gil():
    # A Python thread counts while a solve of a few hundred milliseconds runs: with the GIL held
    # for the whole call it could not count at all.
    x = torch.rand(3000, 3)
    y = torch.rand(3000, 3) * 0.5
    counts, running = [0], [True]

    def count():
        while running[0]:
            counts[0] += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.01)
    before = counts[0]
    start = time.perf_counter()
    sinkhorn.SamplesLoss(blur=0.01, backend="online", tolerance=1e-6)(x, y)
    elapsed = time.perf_counter() - start
    during = counts[0] - before
    running[0] = False
    counter.join()
    assert elapsed > 0.05, "the solve was too quick to tell"
    assert during >= 5, f"the counting thread ran {during} times during a {elapsed:.2f} s solve"
