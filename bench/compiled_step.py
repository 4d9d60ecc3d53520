"""The paper's MNIST training step (examples/python/mnist_mlp.py's: an MLP 2 -> 500 -> 500 -> 784
with softplus and a sigmoid, S_eps p = 2 blur 1 on batches of 200, Adam 1e-3) eager against
torch.compile(fullgraph=True) of its forward (generator and loss; the loss is the operator
sinkhorn::solve, python/sinkhorn/_ops.py), backward and optimiser step as usual.

Prints the steady steps per second (after --warmup steps, which for the compiled mode include the
compilation) and the whole run's time; docs/python.md quotes it with farm-bench over whole runs:

  farm-bench -n 3 --timeout 900 --vs 'build/sinkhorn-python bench/compiled_step.py --mode eager' \\
      -- build/sinkhorn-python bench/compiled_step.py --mode compiled
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch

import sinkhorn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digits(folder):
    """The MNIST images of `folder` as (N, 784) float32 in [0, 1], or random blobs when absent."""
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        for suffix in ("", ".gz"):
            path = os.path.join(folder, name + suffix)
            if os.path.exists(path):
                raw = gzip.open(path).read() if suffix else open(path, "rb").read()
                count = int.from_bytes(raw[4:8], "big")
                return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(count, 784).astype(np.float32) / 255)
    return torch.rand(10000, 784).pow(4)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("eager", "compiled"), default="eager")
    parser.add_argument("--steps", type=int, default=150, help="steps after the warm-up (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = digits(args.data)
    generator = torch.nn.Sequential(torch.nn.Linear(2, 500), torch.nn.Softplus(), torch.nn.Linear(500, 500),
                                    torch.nn.Softplus(), torch.nn.Linear(500, 784), torch.nn.Sigmoid())
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=1.0, tolerance=1e-3)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)

    def forward(z, real):
        return loss(generator(z), real)

    step_forward = torch.compile(forward, fullgraph=True) if args.mode == "compiled" else forward
    start = time.perf_counter()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            steady = time.perf_counter()
        z = torch.rand(200, 2) * 2 - 1
        real = data[torch.randint(len(data), (200,))]
        value = step_forward(z, real)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    end = time.perf_counter()
    print(f"{args.mode}: {args.steps / (end - steady):.1f} steps/s steady, {end - start:.1f} s in all "
          f"(last S_eps {value.item():.3f})")


if __name__ == "__main__":
    main()
