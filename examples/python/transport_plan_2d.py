"""The entropic transport plan and the barycentric map between two 2-D clouds, with
sinkhorn.ot.solve_sample (GeomLoss 0.3.1's and POT's call).

Two panels: left, the plan pi_ij = a_i b_j exp((f_i + g_j - |x_i - y_j|^2) / reg), every pair
drawn as a segment as dark as its share of the largest entry; right, the barycentric map
x_i -> (pi y)_i / (pi 1)_i, where each source point is sent on average. Sources red, targets blue.
A small reg gives a sharp plan close to a map; a large one spreads each point's mass.

    build/sinkhorn-python examples/python/transport_plan_2d.py --reg 0.01 --out transport_plan_2d.png
"""
import argparse
import math
import time
from pathlib import Path

import torch

import sinkhorn.ot
from picture import scatter, segments, write_png  # examples/python/picture.py


def crescent(n, generator):
    angle = math.pi * torch.rand(n, generator=generator)
    radius = 1.5 + 0.15 * torch.randn(n, generator=generator)
    return torch.stack([radius * angle.cos() - 0.5, radius * angle.sin() - 0.5], 1)


def two_blobs(n, generator):
    side = torch.randint(2, (n,), generator=generator).float() * 2 - 1
    return torch.stack([1.2 * side, -0.2 + 0.0 * side], 1) + 0.3 * torch.randn(n, 2, generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=150, help="source points (default: %(default)s)")
    parser.add_argument("-m", type=int, default=120, help="target points (default: %(default)s)")
    parser.add_argument("--reg", type=float, default=0.05, help="eps, in |x - y|^2 units (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("transport_plan_2d.png"), help="the picture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = crescent(args.n, generator), two_blobs(args.m, generator)

    start = time.time()
    result = sinkhorn.ot.solve_sample(x, y, reg=args.reg, tol=1e-6, max_iter=100000)
    plan, image = result.plan, result.a_to_b
    seconds = time.time() - start
    print(f"OT_eps {result.value.item():.5f}  <pi, C> {result.value_linear.item():.5f}  status {result.status}  "
          f"sweeps {result.n_iter}  marginal error {result.error:.2e}  ({seconds:.2f} s)")
    print(f"row sums within {(result.marginal_a - 1 / args.n).abs().max().item():.1e} of 1/N; "
          f"mean displacement {(image - x).norm(dim=1).mean().item():.3f}")

    red = torch.tensor([[220, 40, 40]], dtype=torch.uint8).expand(args.n, 3)
    blue = torch.tensor([[40, 60, 220]], dtype=torch.uint8).expand(args.m, 3)
    left = torch.full((300, 300, 3), 255, dtype=torch.uint8)
    pairs = torch.cartesian_prod(torch.arange(args.n), torch.arange(args.m))
    weights = plan[pairs[:, 0], pairs[:, 1]] / plan.max()
    keep = weights > 1e-3  # the links one can see
    segments(x[pairs[keep, 0]], y[pairs[keep, 1]], weights[keep], left, extent=2.5, colour=(90, 90, 90))
    scatter(x, red, left, extent=2.5)
    scatter(y, blue, left, extent=2.5)
    right = torch.full((300, 300, 3), 255, dtype=torch.uint8)
    segments(x, image, torch.full((args.n,), 0.6), right, extent=2.5, colour=(90, 90, 90))
    scatter(y, blue, right, extent=2.5)
    scatter(x, red, right, extent=2.5)
    scatter(image, torch.tensor([[0, 150, 0]], dtype=torch.uint8).expand(args.n, 3), right, extent=2.5)
    left[:, -1] = 0
    write_png(args.out, torch.cat([left, right], 1))
    print(f"wrote {args.out}: the plan (left), the barycentric map x -> (pi y) / (pi 1) in green (right)")


if __name__ == "__main__":
    main()
