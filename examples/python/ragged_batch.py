"""A batch of clouds of different sizes in one call: SamplesLoss and sinkhorn.ot.solve_sample_batch
take lists of tensors (or nested tensors, or PyTorch Geometric's points plus batch vectors) and
solve them together, padded with zero-weight copies of each entry's first point, which changes
nothing. The script checks the batch against a Python loop of separate solves (values and
gradients), times both and manual padding, and draws each entry's barycentric map.

    build/sinkhorn-python examples/python/ragged_batch.py --entries 6 --out ragged_batch.png
"""
import argparse
import math
import time
from pathlib import Path

import torch

import sinkhorn
import sinkhorn.ot
from picture import scatter, segments, write_png  # examples/python/picture.py


def shape(kind, n, generator):
    """n points of a 2-D shape: a ring, a square's outline, a segment, or a Gaussian blob."""
    t = torch.rand(n, generator=generator)
    if kind == 0:
        points = torch.stack([(2 * math.pi * t).cos(), (2 * math.pi * t).sin()], 1)
    elif kind == 1:  # walk the square's four sides: (u, -1), (1, u), (-u, 1), (-1, -u)
        side, u = (4 * t).floor().long().clamp(max=3), (4 * t) % 1 * 2 - 1
        one = torch.ones_like(u)
        abscissae, ordinates = torch.stack([u, one, -u, -one]), torch.stack([-one, u, one, -u])
        points = torch.stack([abscissae.gather(0, side[None])[0], ordinates.gather(0, side[None])[0]], 1)
    elif kind == 2:
        points = torch.stack([2 * t - 1, 0.5 * (2 * t - 1)], 1)
    else:
        points = 0.5 * torch.randn(n, 2, generator=generator)
    return 1.2 * points + 0.05 * torch.randn(n, 2, generator=generator)


def timed(function, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    return result, (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=6, help="clouds in the batch (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs=2, default=[50, 800], help="smallest and largest cloud size")
    parser.add_argument("--blur", type=float, default=0.05, help="eps = blur^2 (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each way")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("ragged_batch.png"), help="the picture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    low, high = args.sizes
    sizes = torch.randint(low, high + 1, (2, args.entries), generator=generator).tolist()
    xs = [shape(k % 4, n, generator) for k, n in enumerate(sizes[0])]
    ys = [shape((k + 1) % 4, m, generator) for k, m in enumerate(sizes[1])]
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=args.blur)

    leaves = [x.clone().requires_grad_(True) for x in xs]
    batch = loss(leaves, ys)
    batch_gradients = torch.autograd.grad(batch.sum(), leaves)
    loop = torch.stack([loss(x, y) for x, y in zip(leaves, ys)])
    loop_gradients = torch.autograd.grad(loop.sum(), leaves)
    value_gap = (batch - loop).abs().max().item()
    gradient_gap = max((g - h).abs().max().item() for g, h in zip(batch_gradients, loop_gradients))
    print(f"{args.entries} entries of {min(sizes[0] + sizes[1])} to {max(sizes[0] + sizes[1])} points; "
          f"S_eps {', '.join(f'{v:.4f}' for v in batch.tolist())}")
    print(f"batch against separate solves: values within {value_gap:.1e}, gradients within {gradient_gap:.1e}")

    def padded():
        longest_x, longest_y = max(sizes[0]), max(sizes[1])
        X = torch.stack([torch.cat([x, x[:1].expand(longest_x - len(x), 2)]) for x in xs])
        Y = torch.stack([torch.cat([y, y[:1].expand(longest_y - len(y), 2)]) for y in ys])
        A = torch.stack([torch.cat([torch.full((len(x),), 1 / len(x)), torch.zeros(longest_x - len(x))]) for x in xs])
        B = torch.stack([torch.cat([torch.full((len(y),), 1 / len(y)), torch.zeros(longest_y - len(y))]) for y in ys])
        return loss(A, X, B, Y)

    _, ragged_seconds = timed(lambda: loss(xs, ys), args.repeats)
    _, loop_seconds = timed(lambda: [loss(x, y) for x, y in zip(xs, ys)], args.repeats)
    manual, padded_seconds = timed(padded, args.repeats)
    print(f"one ragged call {ragged_seconds * 1e3:.1f} ms, a Python loop of separate solves "
          f"{loop_seconds * 1e3:.1f} ms, padding by hand {padded_seconds * 1e3:.1f} ms "
          f"(the same values: {(manual - batch).abs().max().item():.1e})")

    result = sinkhorn.ot.solve_sample_batch(xs, ys, blur=args.blur, tol=1e-5, max_iter=10000)
    panels = []
    for x, y, image in zip(xs, ys, result.a_to_b):
        panel = torch.full((200, 200, 3), 255, dtype=torch.uint8)
        segments(x, image, torch.full((len(x),), 0.35), panel, extent=2.2, colour=(120, 120, 120))
        scatter(y, torch.tensor([[40, 60, 220]], dtype=torch.uint8).expand(len(y), 3), panel, extent=2.2)
        scatter(x, torch.tensor([[220, 40, 40]], dtype=torch.uint8).expand(len(x), 3), panel, extent=2.2)
        panel[:, -1] = 0
        panels.append(panel)
    write_png(args.out, torch.cat(panels, 1))
    print(f"wrote {args.out}: one panel per entry, sources red, targets blue, each source's barycentric image")


if __name__ == "__main__":
    main()
