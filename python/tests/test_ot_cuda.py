"""sinkhorn.ot on CUDA tensors against the same call on the CPU: the value, products with the plan
(blocks of rows in PyTorch, on the points' device), the maps and the implicit gradients. Skipped
without a GPU; scripts/gpu/check.sh runs it on a lent one. (No peer imports here: the GPU machine
has no GeomLoss or POT.)"""
import pytest
import torch

import sinkhorn.ot

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (or no CUDA in this PyTorch)")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ot_results_on_cuda_match_the_cpu(dtype):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    y = torch.randn(200, 3, generator=generator, dtype=torch.float64) + 0.5
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    results = {}
    for device in ("cpu", "cuda"):
        xd = x.to(device, dtype).requires_grad_(True)
        result = sinkhorn.ot.solve_sample(xd, y.to(device, dtype), reg=0.1, tol=tolerance, max_iter=100000)
        v = torch.ones(200, 2, dtype=dtype, device=device)
        gradient = torch.autograd.grad(result.value_linear + result.a_to_b.sum(), xd)[0]
        results[device] = [t.detach().cpu().double() for t in (result.value, result.value_linear,
                                                                 result.plan_operator @ v, result.a_to_b, gradient)]
        assert result.a_to_b.device.type == device
    close = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-8, atol=1e-10)
    for cpu, cuda in zip(results["cpu"], results["cuda"]):
        torch.testing.assert_close(cuda, cpu, **close)


def test_a_ragged_batch_on_cuda_matches_the_cpu():
    generator = torch.Generator().manual_seed(3)
    xs = [torch.randn(n, 2, generator=generator, dtype=torch.float64) for n in (40, 90, 10)]
    ys = [torch.randn(m, 2, generator=generator, dtype=torch.float64) for m in (30, 5, 70)]
    cpu = sinkhorn.ot.solve_sample_batch(xs, ys, reg=0.1, tol=1e-10, max_iter=100000)
    cuda = sinkhorn.ot.solve_sample_batch([x.cuda() for x in xs], [y.cuda() for y in ys], reg=0.1, tol=1e-10,
                                          max_iter=100000)
    torch.testing.assert_close(cuda.value.cpu(), cpu.value, rtol=1e-8, atol=1e-10)
    for a, b in zip(cuda.a_to_b, cpu.a_to_b):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-8, atol=1e-10)
