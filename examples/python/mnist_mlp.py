"""The MNIST generator of Genevay, Peyre and Cuturi (2018), "Learning Generative Models with Sinkhorn
Divergences", trained with sinkhorn.SamplesLoss in a plain PyTorch loop.

The generator is the paper's MLP, as `sinkhorn train --data mnist` builds it (src/gen/recipes.cpp):
a uniform latent on [-1, 1]^d, d = 2, then 500 -> 500 softplus layers and a sigmoid output of
28 x 28 pixels. Each step draws a batch of 200 latents and 200 real digits and descends the
Sinkhorn divergence S_eps between them, with cost |x - y|^2 / 2 on the raw pixels in [0, 1] and
eps = blur^2 = 1, by Adam at 1e-3.

    build/sinkhorn-python examples/python/mnist_mlp.py --steps 2000 --out mnist_mlp.png
"""
import argparse
import gzip
import struct
import time
from pathlib import Path

import torch
from torch import nn

import sinkhorn
from picture import write_png  # examples/python/picture.py

REPO = Path(__file__).resolve().parents[2]


def read_mnist_images(folder):
    """The digits of the first IDX images file found in `folder` (raw or .gz), as (n, 784) floats in [0, 1]."""
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]:
        for path in [folder / name, folder / (name + ".gz")]:
            if path.exists():
                data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
                magic, n, rows, cols = struct.unpack(">4I", data[:16])  # IDX: big-endian header
                if magic != 0x803:
                    raise SystemExit(f"{path}: not an IDX images file (magic {magic:#x})")
                pixels = torch.frombuffer(bytearray(data[16:16 + n * rows * cols]), dtype=torch.uint8)
                return pixels.view(n, rows * cols).float() / 255
    raise SystemExit(f"no train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz] in {folder}")


def digit_grid(digits, columns):
    """Tiles (n, 784) digits in [0, 1] into one grey picture, `columns` across, 1-pixel grey borders."""
    tiles = nn.functional.pad(digits.view(-1, 28, 28), (1, 1, 1, 1), value=0.4)
    rows = len(digits) // columns
    grid = tiles.view(rows, columns, 30, 30).permute(0, 2, 1, 3).reshape(rows * 30, columns * 30)
    return (255 * grid).round().to(torch.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist",
                        help="folder with the MNIST IDX images file (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=2000, help="generator updates (default: %(default)s)")
    parser.add_argument("--latent", type=int, default=2, help="latent dimension, 2 or 10 in the paper")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("mnist_mlp.png"), help="picture of generated digits")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images = read_mnist_images(args.data)
    generator = nn.Sequential(nn.Linear(args.latent, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(),
                              nn.Linear(500, 28 * 28), nn.Sigmoid())
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    # eps = blur^p = 1 on pixels in [0, 1] (the paper's value); a solve stops at 0.1% marginal error.
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=1.0, tolerance=1e-3)
    batch, log_every, losses, start = 200, max(1, args.steps // 20), [], time.time()
    print(f"{len(images)} digits from {args.data}, {args.threads} threads")

    for step in range(1, args.steps + 1):
        z = 2 * torch.rand(batch, args.latent) - 1
        real = images[torch.randint(len(images), (batch,))]
        value = loss(generator(z), real)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
        if step % log_every == 0 or step == 1:
            print(f"step {step:5d}  S_eps {losses[-1]:8.3f}  {time.time() - start:6.1f} s", flush=True)

    with torch.no_grad():
        if args.latent == 2:  # the paper's figure: the latent square as a 15 x 15 lattice, top = +1
            axis = torch.linspace(-1, 1, 15)
            z = torch.stack(torch.meshgrid(axis, -axis, indexing="xy"), -1).reshape(-1, 2)
        else:
            z = 2 * torch.rand(100, args.latent, generator=torch.Generator().manual_seed(1)) - 1
        write_png(args.out, digit_grid(generator(z), columns=15 if args.latent == 2 else 10))
    last = losses[-max(1, len(losses) // 10):]
    print(f"S_eps {losses[0]:.3f} at step 1 -> {sum(last) / len(last):.3f} (mean of the last {len(last)} steps); "
          f"{args.steps} steps in {time.time() - start:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
