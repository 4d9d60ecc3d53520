"""The loss under PyTorch's modes and signals: torch.inference_mode as torch.no_grad, and Ctrl-C
(SIGINT) arriving as KeyboardInterrupt within a sweep on every backend."""
import os
import signal
import threading
import time

import pytest
import torch

import sinkhorn


@pytest.mark.parametrize("options", [dict(), dict(backend="tensorized"), dict(backend="multiscale"),
                                     dict(loss="primal"), dict(loss="energy"), dict(blur=1e6)])
def test_inference_mode_gives_the_no_grad_values(options):
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(60, 2, generator=generator), torch.randn(50, 2, generator=generator)
    with torch.no_grad():
        expected = sinkhorn.solve(x, y, **options).value
    with torch.inference_mode():
        value = sinkhorn.solve(x.clone(), y.clone(), **options).value
        potentials = sinkhorn.SamplesLoss(**{k: v for k, v in options.items() if k != "loss"},
                                          potentials=True)(x.clone(), y.clone())
    assert value.item() == expected.item()
    assert all(torch.isfinite(p).all() for p in potentials)


@pytest.mark.parametrize("backend", ["tensorized", "online", "multiscale"])
def test_ctrl_c_interrupts_a_long_solve_within_a_second(backend):
    generator = torch.Generator().manual_seed(5)
    x, y = torch.rand(3000, 2, generator=generator), torch.rand(3000, 2, generator=generator) ** 2
    # A solve that would run for minutes: a tiny blur, a tolerance it cannot reach, 10^6 sweeps.
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sinkhorn.solve(x, y, blur=1e-3, tolerance=1e-12, max_iterations=10 ** 6, backend=backend,
                           on_unconverged="ignore")
    finally:
        timer.cancel()
    assert time.monotonic() - start < 1.5
    # The library is usable afterwards.
    assert torch.isfinite(sinkhorn.solve(x[:100], y[:100]).value)
