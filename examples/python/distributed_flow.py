"""The 2-D gradient flow of gradient_flow_2d.py, sharded over processes with torch.distributed:
each rank holds its own share of the particles and of the target ring, and SamplesLoss with a
process_group computes S_eps between the union of the shares on every rank. Each rank's gradient
is its own particles' rows of the whole loss's gradient, so each moves its own particles; the
flow is the one a single process would run on all of them.

    torchrun --nproc_per_node 2 examples/python/distributed_flow.py --steps 50
    (or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT yourself, one process per rank)
"""
import argparse
import datetime
import math

import torch
import torch.distributed as dist

import sinkhorn


def ring_of_gaussians(n, generator, modes=8, radius=2.0, std=0.05):
    angle = 2 * math.pi * torch.randint(modes, (n,), generator=generator) / modes
    return radius * torch.stack([angle.cos(), angle.sin()], 1) + std * torch.randn(n, 2, generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("-n", type=int, default=2000, help="particles and target points, over all ranks")
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, ranks = dist.get_rank(), dist.get_world_size()

    # Every rank draws the same clouds from one seed and keeps its contiguous block of rows.
    generator = torch.Generator().manual_seed(0)
    y_all = ring_of_gaussians(args.n, generator)
    x_all = 0.5 * torch.randn(args.n, 2, generator=generator) + torch.tensor([-1.0, 0.5])
    rows = torch.arange(args.n).tensor_split(ranks)[rank]
    x = x_all[rows].clone().requires_grad_(True)
    y = y_all[rows].clone()

    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=args.blur, process_group=dist.group.WORLD)
    for step in range(args.steps + 1):
        value = loss(x, y)  # S_eps of the union, the same on every rank
        if rank == 0 and (step % max(1, args.steps // 10) == 0 or step == args.steps):
            print(f"step {step:4d}  S_eps {value.item():.5f}  ({ranks} ranks, {len(x)} particles here)", flush=True)
        if step < args.steps:
            [gradient] = torch.autograd.grad(value, [x])
            with torch.no_grad():
                x -= args.lr * args.n * gradient  # N * gradient = grad F(x_i), as in gradient_flow_2d.py
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
