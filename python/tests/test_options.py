"""The Python keywords against the library's option table (src/api/option_table.h): every option
is a keyword of solve and of SamplesLoss with the table's default, and each reaches the library
with the value given (an option the binding dropped would come back at its default)."""
import inspect

import pytest
import torch

import sinkhorn
from sinkhorn import _C
from sinkhorn._solve import OPTION_TABLE, checked_options


def test_every_option_is_a_keyword_with_the_tables_default():
    solve = inspect.signature(sinkhorn.solve).parameters
    samples_loss = inspect.signature(sinkhorn.SamplesLoss).parameters
    for name, _kind, default, doc, _applies, _sample in OPTION_TABLE:
        assert name in solve and name in samples_loss, name
        if name != "loss":  # SamplesLoss takes GeomLoss's names ("sinkhorn")
            assert solve[name].default == default, name
            assert samples_loss[name].default == default, name
        assert doc


def test_every_option_reaches_the_library_with_its_value():
    samples = {name: sample for name, _kind, _default, _doc, _applies, sample in OPTION_TABLE}
    options = checked_options(**samples)
    lines = dict(line.split("=", 1) for line in _C.options_fingerprint(options).splitlines())
    assert set(lines) == set(samples)
    for name, sample in samples.items():
        expected = {True: "true", False: "false", None: "none"}.get(sample, sample) \
            if isinstance(sample, (bool, type(None))) else sample
        if isinstance(sample, float):
            assert float(lines[name]) == sample, name
        else:
            assert lines[name] == str(expected), name


def test_options_the_loss_ignores_are_refused_by_the_library():
    x, y = torch.randn(6, 2), torch.randn(5, 2)
    with pytest.raises(ValueError, match=r"^reach: does not apply to the kernel loss energy"):
        sinkhorn.solve(x, y, loss="energy", reach=1.0)
    with pytest.raises(ValueError, match=r"^gradient: does not apply to the exact OT loss"):
        sinkhorn.solve(x, y, loss="ot", gradient="unrolled")
    with pytest.raises(ValueError, match=r"^p: does not apply"):
        sinkhorn.SamplesLoss("gaussian", p=1)
    assert torch.isfinite(sinkhorn.SamplesLoss("energy", backend="tensorized", blur=0.3)(x, y))
