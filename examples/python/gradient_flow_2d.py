"""A Wasserstein-like gradient flow in 2-D: particles x_i descend the Sinkhorn divergence S_eps
towards a target cloud, the ring of 8 Gaussians of `sinkhorn train --data ring8` (radius 2, std 0.05).

S_eps(x, y) with uniform weights 1/N gives each particle the gradient (1/N) grad F(x_i), F the
debiased dual potential; the flow moves x_i by -lr * N * gradient, i.e. along -grad F(x_i), which
for the cost |x - y|^2 / 2 points from x_i towards where the transport plan sends it. Particles are
coloured by their starting abscissa (red left, blue right) to show the transport map.

    build/sinkhorn-python examples/python/gradient_flow_2d.py --steps 100 --out gradient_flow_2d.png
"""
import argparse
import math
import time
from pathlib import Path

import torch

import sinkhorn
from picture import scatter, write_png  # examples/python/picture.py


def ring_of_gaussians(n, modes=8, radius=2.0, std=0.05):
    angle = 2 * math.pi * torch.randint(modes, (n,)) / modes
    return radius * torch.stack([angle.cos(), angle.sin()], 1) + std * torch.randn(n, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="flow steps of size --lr (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05, help="time step; the picture spans t = steps * lr")
    parser.add_argument("-n", type=int, default=1000, help="particles, and target points")
    parser.add_argument("--blur", type=float, default=0.05, help="eps = blur^2 (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("gradient_flow_2d.png"), help="picture of the flow")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    y = ring_of_gaussians(args.n)
    x = 0.5 * torch.randn(args.n, 2) + torch.tensor([-1.0, 0.5])  # a blob, off centre
    x.requires_grad_(True)
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=args.blur)
    snapshots = sorted({0, args.steps // 8, args.steps // 4, args.steps // 2, args.steps})
    frames, log_every, start = [], max(1, args.steps // 10), time.time()

    for step in range(args.steps + 1):
        value = loss(x, y)
        if step in snapshots:
            frames.append(x.detach().clone())
        if step % log_every == 0 or step == args.steps:
            print(f"step {step:4d}  t {step * args.lr:5.2f}  S_eps {value.item():.5f}", flush=True)
        if step < args.steps:
            [gradient] = torch.autograd.grad(value, [x])
            with torch.no_grad():
                x -= args.lr * len(x) * gradient  # N * gradient = grad F(x_i): the flow's velocity is -grad F

    # One 240 x 240 panel per snapshot, side by side: target in light grey, particles coloured.
    u = ((frames[0][:, 0] - frames[0][:, 0].min()) / (frames[0][:, 0].max() - frames[0][:, 0].min()))[:, None]
    colours = ((1 - u) * torch.tensor([220.0, 40, 40]) + u * torch.tensor([40.0, 60, 220])).to(torch.uint8)
    grey = torch.full((args.n, 3), 200, dtype=torch.uint8)
    panels = []
    for frame in frames:
        panel = torch.full((240, 240, 3), 255, dtype=torch.uint8)
        scatter(y, grey, panel)
        scatter(frame, colours, panel)
        panel[:, -1] = 0  # a black line between panels
        panels.append(panel)
    write_png(args.out, torch.cat(panels, 1))
    print(f"snapshots at t = {', '.join(f'{s * args.lr:g}' for s in snapshots)} (left to right); "
          f"{args.steps} steps in {time.time() - start:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
