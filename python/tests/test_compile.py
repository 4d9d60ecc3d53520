"""The solve as a PyTorch operator (sinkhorn::solve, python/sinkhorn/_ops.py): torch.library's
own checks of its schema, fake implementation and autograd formula; torch.compile(fullgraph=True)
of a training step's forward with SamplesLoss (no graph break, the eager value and gradients);
torch.export of a module that calls the loss; torch.func transforms refused with a message."""
import json

import pytest
import torch

import sinkhorn
import sinkhorn.ot
from sinkhorn import _ops, _solve


def problem(batch=None, dtype=torch.float64):
    generator = torch.Generator().manual_seed(8)
    shape = (batch,) if batch else ()
    x = torch.randn(*shape, 31, 2, generator=generator, dtype=dtype)
    y = torch.randn(*shape, 24, 2, generator=generator, dtype=dtype) + 0.5
    a = torch.rand(*shape, 31, generator=generator, dtype=dtype) + 0.5
    b = torch.rand(*shape, 24, generator=generator, dtype=dtype) + 0.5
    return a / a.sum(-1, keepdim=True), x, b / b.sum(-1, keepdim=True), y


@pytest.mark.parametrize("loss,batch,dtype,wanted", [
    ("divergence", None, torch.float64, [False, True, False, False]),
    ("divergence", 2, torch.float64, [True, True, True, True]),
    ("ot_eps", None, torch.float32, [False, True, False, True]),
    ("primal", None, torch.float64, [False, True, False, False]),
    ("energy", None, torch.float64, [True, True, False, False]),
    ("ot", None, torch.float64, [False, True, False, False]),
])
def test_the_operator_passes_torch_library_opcheck(loss, batch, dtype, wanted):
    a, x, b, y = problem(batch, dtype)
    inputs = [t.requires_grad_(w) for t, w in zip((a, x, b, y), wanted)]
    options = json.dumps(_solve.checked_options(loss=loss, blur=0.3), sort_keys=True)
    result = torch.library.opcheck(_ops.solve_op, (*inputs, options, wanted))
    assert all(outcome == "SUCCESS" for outcome in result.values()), result


def test_the_operator_takes_missing_weights_as_uniform():
    _, x, _, y = problem()
    x.requires_grad_(True)
    options = json.dumps(_solve.checked_options(blur=0.3), sort_keys=True)
    result = torch.library.opcheck(_ops.solve_op, (None, x, None, y, options, [False, True, False, False]))
    assert all(outcome == "SUCCESS" for outcome in result.values()), result
    value = _ops.solve_op(None, x, None, y, options, [False, True, False, False])[0]
    assert value.item() == pytest.approx(sinkhorn.SamplesLoss(blur=0.3)(x, y).item(), rel=1e-12)


def generator_and_loss():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Softplus(), torch.nn.Linear(64, 2)).double()
    return net, sinkhorn.SamplesLoss("sinkhorn", p=2, blur=0.1, tolerance=1e-6)


def test_a_compiled_training_step_has_no_graph_break_and_the_eager_numbers():
    net, loss = generator_and_loss()
    z = torch.rand(200, 2, dtype=torch.float64) * 2 - 1
    y = torch.randn(150, 2, dtype=torch.float64)

    def forward(z):
        return loss(net(z), y)

    eager = forward(z)
    eager_gradients = torch.autograd.grad(eager, list(net.parameters()))
    compiled = torch.compile(forward, fullgraph=True)  # fails on any graph break
    value = compiled(z)
    gradients = torch.autograd.grad(value, list(net.parameters()))
    assert value.item() == pytest.approx(eager.item(), rel=1e-12)
    for got, want in zip(gradients, eager_gradients):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # A second call with new points reuses the graph and stays right.
    z2 = torch.rand(200, 2, dtype=torch.float64) * 2 - 1
    assert compiled(z2).item() == pytest.approx(forward(z2).item(), rel=1e-12)


def test_export_sees_the_operator():
    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.loss = generator_and_loss()

        def forward(self, z, y):
            return self.loss(self.net(z), y)

    module = Step()
    z, y = torch.randn(40, 2, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)
    exported = torch.export.export(module, (z, y))
    targets = [str(node.target) for node in exported.graph.nodes if node.op == "call_function"]
    assert "sinkhorn.solve.default" in targets, targets
    assert exported.module()(z, y).item() == pytest.approx(module(z, y).item(), rel=1e-12)


def test_second_derivatives_are_refused_not_zero():
    # A gradient penalty through the compiled path must not be silently 0.
    _, x, _, y = problem()
    x.requires_grad_(True)
    options = json.dumps(_solve.checked_options(blur=0.3), sort_keys=True)
    value = _ops.solve_op(None, x, None, y, options, [False, True, False, False])[0]
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(value, x, create_graph=True)


def test_the_eager_only_entries_stay_eager_under_compile():
    # sinkhorn.solve and sinkhorn.ot.solve_sample return Python numbers: compiled code calls them
    # eagerly (a graph break), with the eager results.
    _, x, _, y = problem()
    compiled = torch.compile(lambda x, y: sinkhorn.solve(x, y, blur=0.3).value, backend="eager")
    assert compiled(x, y).item() == pytest.approx(sinkhorn.solve(x, y, blur=0.3).value.item(), rel=1e-12)
    compiled_ot = torch.compile(lambda x, y: sinkhorn.ot.solve_sample(x, y, reg=0.1).value, backend="eager")
    assert compiled_ot(x, y).item() == pytest.approx(sinkhorn.ot.solve_sample(x, y, reg=0.1).value.item(), rel=1e-12)


def test_torch_func_transforms_are_refused_with_the_way_round():
    _, x, _, y = problem()
    for transform in (torch.func.grad, torch.func.vmap):
        with pytest.raises(NotImplementedError, match="use loss.backward"):
            transform(lambda u: sinkhorn.SamplesLoss()(u, y))(x if transform is torch.func.grad else x[None])
