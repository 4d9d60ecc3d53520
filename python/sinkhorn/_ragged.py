"""Batches of clouds of different sizes: lists of tensors, nested tensors, or PyTorch Geometric's
points plus a batch-index vector. They are packed into one padded batch: each entry's points are
padded with copies of its first point at weight 0, which changes neither its value nor its
gradients (a zero weight removes a point from every sum of the problem) nor the batch's bounding
box. On a GPU the padded batch is one solve (one kernel launch per sweep); on the CPU each entry
is solved on its own rows (solve_packed says why).
"""
import torch

from ._arguments import fail


def is_ragged(points):
    """A non-empty list or tuple of tensors, or a nested tensor (a list of numbers is not: it is
    refused as points are)."""
    if isinstance(points, (list, tuple)):
        return len(points) > 0 and all(isinstance(p, torch.Tensor) for p in points)
    return isinstance(points, torch.Tensor) and points.is_nested


def entries(points, name, index=None, index_name=None, count=None):
    """The entries of a ragged argument as a list of (N_k, D) tensors.

    points: a list or tuple of (N_k, D) tensors, a nested tensor, or (N, D) points with `index`,
    a (N,) integer tensor giving each point's entry (PyTorch Geometric's `batch` vector; entries
    0 .. count - 1, in any order), its type checked by ragged_inputs."""
    if index is not None:
        if not isinstance(points, torch.Tensor) or points.is_nested or points.dim() != 2:
            fail(name, f"with {index_name}, expected points of shape (N, D), got "
                       f"{type(points).__name__ if not isinstance(points, torch.Tensor) else tuple(points.shape)}")
        if index.shape[0] != points.shape[0]:
            fail(index_name, f"has {index.shape[0]} entries for the {points.shape[0]} points of {name}")
        if index.numel() and int(index.min()) < 0:
            fail(index_name, "entry numbers must be >= 0")
        index = index.to(points.device, torch.int64)
        order = torch.argsort(index, stable=True)
        sizes = torch.bincount(index, minlength=count or 0).tolist()
        return list(torch.split(points[order], sizes))
    if isinstance(points, torch.Tensor) and points.is_nested:
        return list(points.unbind())
    if not isinstance(points, (list, tuple)) or not all(isinstance(p, torch.Tensor) for p in points):
        fail(name, "expected a list of tensors, a nested tensor, or points with a batch-index vector")
    return list(points)


def pack(points, weights, name, weights_name):
    """(B, N_max, D) points and (B, N_max) weights from lists of entries (weights: a list of (N_k,)
    tensors, or None for uniform weights 1/N_k), and the entries' sizes."""
    if not points:
        fail(name, "an empty batch (no entries)")
    dimension = points[0].shape[-1] if points[0].dim() == 2 else None
    for k, entry in enumerate(points):
        if entry.dim() != 2 or entry.shape[-1] != dimension:
            fail(name, f"entry {k} has shape {tuple(entry.shape)}; every entry must be (N_k, D) with the same D")
        if entry.shape[0] == 0:
            fail(name, f"entry {k} is empty")
        if entry.dtype != points[0].dtype or entry.device != points[0].device:
            fail(name, f"entry {k} is {entry.dtype} on {entry.device} where entry 0 is {points[0].dtype} on "
                       f"{points[0].device}")
    if weights is not None:
        weights = entries(weights, weights_name)
        if len(weights) != len(points):
            fail(weights_name, f"has {len(weights)} entries for the {len(points)} of {name}")
        for k, (w, p) in enumerate(zip(weights, points)):
            if w.dim() == 2 and w.shape[-1] == 1:
                w = w.squeeze(-1)
            if tuple(w.shape) != (p.shape[0],):
                fail(weights_name, f"entry {k} has shape {tuple(w.shape)} for the {p.shape[0]} points of {name}")
            weights[k] = w
    sizes = [entry.shape[0] for entry in points]
    longest = max(sizes)
    padded_points, padded_weights = [], []
    for k, entry in enumerate(points):
        pad = longest - sizes[k]
        padded_points.append(torch.cat([entry, entry[:1].expand(pad, -1)]) if pad else entry)
        w = weights[k] if weights is not None else torch.full((sizes[k],), 1.0 / sizes[k], dtype=entry.dtype,
                                                                device=entry.device)
        padded_weights.append(torch.cat([w, w.new_zeros(pad)]) if pad else w)
    return torch.stack(padded_points), torch.stack(padded_weights), sizes


def unpack(batch, sizes):
    """The entries of a padded (B, N_max, ...) tensor, each cut to its size."""
    return [batch[k, :size] for k, size in enumerate(sizes)]


def ragged_inputs(x, y, a, b, batch_x=None, batch_y=None):
    """(X, A, x_sizes, Y, B, y_sizes) for a ragged call, or None when x and y are plain tensors."""
    if batch_x is not None or batch_y is not None:
        if batch_x is None or batch_y is None:
            fail("batch_x" if batch_x is None else "batch_y", "batch_x and batch_y go together")
        for name, index in (("batch_x", batch_x), ("batch_y", batch_y)):
            if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
                fail(name, "expected a (N,) tensor of integer entry numbers")
        count = 1 + max(int(batch_x.max()) if batch_x.numel() else -1, int(batch_y.max()) if batch_y.numel() else -1)
        xs = entries(x, "x", batch_x, "batch_x", count)
        ys = entries(y, "y", batch_y, "batch_y", count)
        # Weights in PyG's form are (N,) or (N, 1): split as columns of one.
        column = lambda w: w.unsqueeze(-1) if w.dim() == 1 else w
        a = entries(column(a), "a", batch_x, "batch_x", count) if isinstance(a, torch.Tensor) else a
        b = entries(column(b), "b", batch_y, "batch_y", count) if isinstance(b, torch.Tensor) else b
    elif is_ragged(x) or is_ragged(y):
        if not (is_ragged(x) and is_ragged(y)):
            fail("y" if is_ragged(x) else "x", "a ragged batch needs both x and y as lists (or nested tensors)")
        xs, ys = entries(x, "x"), entries(y, "y")
    else:
        return None
    if len(xs) != len(ys):
        fail("y", f"has {len(ys)} entries where x has {len(xs)}")
    X, A, x_sizes = pack(xs, a, "x", "a")
    Y, B, y_sizes = pack(ys, b, "y", "b")
    return X, A, x_sizes, Y, B, y_sizes


@torch.compiler.disable  # eager: it reads the diagnostics of each entry
def solve_packed(run, X, A, Y, B, sizes, options, process_group=None, one_solve=None):
    """run(a, x, b, y, options, process_group) over a packed ragged batch: (value (B,), f_ab, g_ab,
    f_aa, g_bb padded to (B, N_max) / (B, M_max) or None, diagnostics).

    On a GPU (and in a sharded solve) the padded batch is one solve: one launch per sweep. On the
    CPU each entry is solved on its own rows: the padded batch computes N_max x M_max pairs per
    entry and its sweeps are the slowest entry's, with one over-relaxation for all (docs/python.md,
    "Ragged batches", measured), while the entries' own solves cost their own pairs and sweeps.
    Either way each entry's value is its own solve's, to the tolerance. one_solve forces the choice
    (None: by device)."""
    if one_solve is None:
        one_solve = X.is_cuda or process_group is not None
    if one_solve:
        return run(A, X, B, Y, options, process_group)
    x_sizes, y_sizes = sizes
    results = [run(A[k, :n], X[k, :n], B[k, :m], Y[k, :m], options, None)
               for k, (n, m) in enumerate(zip(x_sizes, y_sizes))]

    def padded(index, longest):
        if results[0][index] is None:
            return None
        return torch.stack([torch.cat([r[index], r[index].new_zeros(longest - r[index].shape[0])]) for r in results])

    value = torch.stack([r[0] for r in results])
    diagnostics = dict(results[0][5])
    for r in results[1:]:
        d = r[5]
        diagnostics["iterations"] = max(diagnostics["iterations"], d["iterations"])
        diagnostics["schedule_length"] = max(diagnostics["schedule_length"], d["schedule_length"])
        diagnostics["marginal_error"] = max(diagnostics["marginal_error"], d["marginal_error"])
        diagnostics["converged"] = diagnostics["converged"] and d["converged"]
        diagnostics["diameter"] = max(diagnostics["diameter"], d["diameter"])
        diagnostics["tolerance"] = min(diagnostics["tolerance"], d["tolerance"])
    diagnostics["truncation_rebuilds"] = sum(r[5]["truncation_rebuilds"] for r in results)
    diagnostics["corrected_sweeps"] = sum(r[5]["corrected_sweeps"] for r in results)
    backends = sorted({r[5]["backend"] for r in results})
    diagnostics["backend"] = backends[0] if len(backends) == 1 else "mixed: " + ", ".join(backends)
    diagnostics["entries"] = [r[5] for r in results]
    return (value, padded(1, X.shape[1]), padded(2, Y.shape[1]), padded(3, X.shape[1]), padded(4, Y.shape[1]),
            diagnostics)
