"""The wheel's PyTorch requirement, read from the PyTorch it is built against (scikit-build-core
dynamic metadata, pyproject.toml): the extension links that PyTorch's C++ ABI, so it works with
that minor release only, and says so ("torch==2.11.*"). A source install (pip install
--no-build-isolation .) pins the user's own PyTorch the same way, which pip finds installed."""


def dynamic_metadata(field, settings=None):
    if field != "dependencies":
        raise ValueError(f"torch_pin provides the dependencies only, not {field}")
    import torch

    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return [f"torch=={major}.{minor}.*"]
