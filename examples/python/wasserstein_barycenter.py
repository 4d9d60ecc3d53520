"""A Wasserstein barycenter of images by gradient flow (Cuturi and Doucet 2014; Feydy et al. 2019,
section 5): particles x descend sum_k w_k S_eps(x, image_k), where each image is a weighted cloud,
its pixel centres weighted by their intensities (the weights a of SamplesLoss(a, x, b, y)).

Three 64 x 64 images are drawn here (a ring, a square and a cross, no data files); the picture
shows them and, right, the barycenter with equal weights as a density of the particles. With the
cost |x - y|^2 / 2 the barycenter moves mass rather than averaging pixels: a rounded frame between
the ring and the square, with the cross's arms as four bulges, not the three images superposed.

    build/sinkhorn-python examples/python/wasserstein_barycenter.py --steps 40 --out wasserstein_barycenter.png
"""
import argparse
import time
from pathlib import Path

import torch

import sinkhorn
from picture import write_png  # examples/python/picture.py

SIDE = 64


def images():
    """A ring, a square frame and a cross, (3, SIDE, SIDE) intensities in [0, 1]."""
    coordinate = (torch.arange(SIDE) + 0.5) / SIDE * 2 - 1
    v, u = torch.meshgrid(-coordinate, coordinate, indexing="ij")  # row 0 at the top: v = +1
    radius = (u ** 2 + v ** 2).sqrt()
    ring = ((radius - 0.6).abs() < 0.12).float()
    box = torch.maximum(u.abs(), v.abs())
    square = ((box - 0.55).abs() < 0.12).float()
    cross = ((u.abs() < 0.14) & (v.abs() < 0.75) | (v.abs() < 0.14) & (u.abs() < 0.75)).float()
    return torch.stack([ring, square, cross]), torch.stack([u, v], -1).reshape(-1, 2)


def density(points, side=SIDE):
    """The particles' histogram on the image grid, scaled to [0, 1]."""
    pixel = ((points + 1) / 2 * side).floor().long().clamp(0, side - 1)
    counts = torch.zeros(side, side)
    counts.index_put_((side - 1 - pixel[:, 1], pixel[:, 0]), torch.ones(len(points)), accumulate=True)
    return counts / counts.max().clamp_min(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="flow steps (default: %(default)s)")
    parser.add_argument("-n", type=int, default=2000, help="particles (default: %(default)s)")
    parser.add_argument("--blur", type=float, default=0.02, help="eps = blur^2 (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.5, help="time step (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("wasserstein_barycenter.png"), help="the picture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    pictures, grid = images()
    clouds = []
    for picture in pictures:
        weights = picture.reshape(-1)
        keep = weights > 0
        clouds.append((weights[keep] / weights[keep].sum(), grid[keep]))  # only the lit pixels
    shares = torch.full((len(clouds),), 1.0 / len(clouds))
    x = (torch.rand(args.n, 2) * 1.6 - 0.8).requires_grad_(True)  # uniform on a square, inside the images
    uniform = torch.full((args.n,), 1.0 / args.n)
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=args.blur, scaling=0.8)
    start, log_every = time.time(), max(1, args.steps // 10)
    for step in range(args.steps + 1):
        value = sum(share * loss(uniform, x, b, y) for share, (b, y) in zip(shares, clouds))
        if step % log_every == 0 or step == args.steps:
            print(f"step {step:4d}  sum_k w_k S_eps {value.item():.6f}", flush=True)
        if step < args.steps:
            [gradient] = torch.autograd.grad(value, [x])
            with torch.no_grad():
                x -= args.lr * args.n * gradient  # each particle along -sum_k w_k grad F_k

    panels = [picture for picture in pictures] + [density(x.detach())]
    row = torch.cat([torch.cat([(255 * (1 - p)).to(torch.uint8), torch.zeros(SIDE, 1, dtype=torch.uint8)], 1)
                     for p in panels], 1)
    write_png(args.out, row.repeat_interleave(3, 0).repeat_interleave(3, 1))
    print(f"{args.steps} steps in {time.time() - start:.1f} s; wrote {args.out}: the three images and their "
          "barycenter (right)")


if __name__ == "__main__":
    main()
