"""The training step, as users run it (issue 14): this project's step against the same step in plain PyTorch.

Every workload trains a small generator for a fixed number of steps from the same seed and reports
steps per second over the whole loop (sampling, generator forward and backward, the loss with its
gradient, the optimiser step). Methods:
  ours-cli        `build/sinkhorn train` itself (MNIST only: the project's main job), its own step
                  time from metrics.csv (the `seconds` column counts the steps alone, no evaluation,
                  pictures or checkpoints, all of which are switched off but the final ones)
  ours-cli-tol1e-2  the same with --tolerance 1e-2 (the trainer's default is 1e-3)
  ours            the loop below in Python with sinkhorn.SamplesLoss (the trainer's settings:
                  tolerance 1e-3)
  ours-plain      the same with coarse_correction=False (no corrected sweeps on clusters of
                  points, docs/numerics.md; on by default since 2026-12)
  geomloss        the same loop with geomloss.SamplesLoss(backend="tensorized") at its defaults
                  (scaling 0.5, one sweep per eps, no tolerance): the issue's baseline
  dense           (E_eps only) the paper's Algorithm 1 written in this script: L log-domain
                  Sinkhorn iterations on dense cost matrices, differentiated by autograd
Workloads (batch, dimension D of the loss, loss):
  mnist           the paper's MLP (2-D uniform latent, 500-500 softplus, sigmoid), batch 200 of
                  MNIST digits (D = 784), S_eps p = 2 blur 1, Adam 1e-3 (src/gen/recipes.cpp)
  mnist-eeps      the same with the paper's E_eps, L = 50 unrolled iterations at eps = blur^2
  toy-500/2000    an MLP (2-D Gaussian latent, 128-128 ReLU) on the ring of 8 Gaussians, batches of
                  500 and 2,000 points (D = 2), S_eps p = 2 blur 0.1, Adam 5e-3
  features-16/64  an MLP generator (8-D latent, 128-128 ReLU) against a Gaussian mixture in D = 16
                  and 64 (the shape of a learned cost's critic features), batch 200, S_eps p = 1
                  blur 0.05 (the learned cost's defaults)
The last column: the relative L2 error of the loss's gradient (in the generated points) on one batch of
the trained generator, against a converged float64 S_eps (ours, tolerance 1e-9), i.e. what each
step's gradient is worth where the run ended.
Threads: --threads (default 2) for PyTorch and the CLI. Run on a quiet machine: with 2 threads on
2 cores, a third busy process slows every step many-fold.

  build/sinkhorn-python bench/training_step.py --out /tmp/training_step.md
"""
import argparse
import csv
import gzip
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mnist_images(path):
    name = os.path.join(path, "t10k-images-idx3-ubyte.gz") if os.path.isdir(path) else path
    raw = gzip.open(name).read() if name.endswith(".gz") else open(name, "rb").read()
    count = int.from_bytes(raw[4:8], "big")
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, 784).astype(np.float32) / 255
    return torch.from_numpy(images[:-1000])  # the trainer holds the last 1,000 out


def mlp(sizes, activation, last=None):
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k + 2 < len(sizes):
            layers.append(activation())
    if last:
        layers.append(last())
    return torch.nn.Sequential(*layers)


def ring8(count, generator):
    angles = torch.randint(0, 8, (count,), generator=generator).float() * (2 * math.pi / 8)
    centres = torch.stack([angles.cos(), angles.sin()], 1) * 2
    return centres + 0.02 * torch.randn(count, 2, generator=generator)


def mixture(dim):
    centres = torch.randn(10, dim, generator=torch.Generator().manual_seed(1))

    def draw(count, generator):
        picks = torch.randint(0, 10, (count,), generator=generator)
        return centres[picks] + 0.1 * torch.randn(count, dim, generator=generator)
    return draw


def workload(name, data_path):
    """(generator network, latent sampler, data sampler, loss settings, learning rate)."""
    if name.startswith("mnist"):
        images = mnist_images(data_path)
        net = mlp([2, 500, 500, 784], torch.nn.Softplus, torch.nn.Sigmoid)
        latent = lambda n, g: torch.rand(n, 2, generator=g) * 2 - 1
        data = lambda n, g: images[torch.randint(0, images.shape[0], (n,), generator=g)]
        loss = dict(p=2, blur=1.0, eeps=name == "mnist-eeps")
        return net, latent, data, loss, 1e-3, 200
    if name.startswith("toy"):
        net = mlp([2, 128, 128, 2], torch.nn.ReLU)
        latent = lambda n, g: torch.randn(n, 2, generator=g)
        return net, latent, ring8, dict(p=2, blur=0.1, eeps=False), 5e-3, int(name.split("-")[1])
    if name.startswith("features"):
        dim = int(name.split("-")[1])
        net = mlp([8, 128, 128, dim], torch.nn.ReLU)
        latent = lambda n, g: torch.randn(n, 8, generator=g)
        return net, latent, mixture(dim), dict(p=1, blur=0.05, eeps=False), 1e-3, 200
    raise ValueError(name)


def dense_eeps(x, y, blur, iterations):
    """The paper's E_eps = 2 W(x, y) - W(x, x) - W(y, y), W = <P_L, C>, P_L after L log-domain
    Sinkhorn iterations from g = 0 at eps = blur^2 (Algorithm 1), differentiated by autograd."""
    eps = blur ** 2

    def primal(u, v):
        cost = 0.5 * torch.cdist(u, v) ** 2
        log_a = torch.full((u.shape[0],), -math.log(u.shape[0]))
        log_b = torch.full((v.shape[0],), -math.log(v.shape[0]))
        g = torch.zeros(v.shape[0])
        for _ in range(iterations):
            f = -eps * torch.logsumexp(log_b + g / eps - cost / eps, 1)
            g = -eps * torch.logsumexp(log_a[:, None] + f[:, None] / eps - cost / eps, 0)
        plan = torch.exp(log_a[:, None] + log_b + (f[:, None] + g - cost) / eps)
        return (plan * cost).sum()
    return 2 * primal(x, y) - primal(x, x) - primal(y, y)


def make_loss(method, settings):
    p, blur, eeps = settings["p"], settings["blur"], settings["eeps"]
    if method in ("ours", "ours-plain"):
        sys.path.insert(0, os.path.join(ROOT, "build", "python"))
        import sinkhorn
        if eeps:
            return sinkhorn.SamplesLoss("primal", p=p, blur=blur, iterations=50, gradient="unrolled")
        return sinkhorn.SamplesLoss("sinkhorn", p=p, blur=blur, tolerance=1e-3,
                                    coarse_correction=method != "ours-plain")
    if method == "geomloss":
        import geomloss
        if eeps:
            return None  # GeomLoss has no unrolled E_eps
        return geomloss.SamplesLoss("sinkhorn", p=p, blur=blur, backend="tensorized")
    if method == "dense":
        return (lambda x, y: dense_eeps(x, y, blur, 50)) if eeps else None
    raise ValueError(method)


def python_loop(name, method, steps, data_path):
    torch.manual_seed(0)
    net, latent, data, settings, lr, batch = workload(name, data_path)
    loss = make_loss(method, settings)
    if loss is None:
        return None
    optimizer = torch.optim.Adam(net.parameters(), lr)
    generator = torch.Generator().manual_seed(0)

    def step():
        x = net(latent(batch, generator))
        value = loss(x, data(batch, generator))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        return value.item()
    for _ in range(3):  # warm-up: thread pools, allocator, first-call work
        step()
    started = time.perf_counter()
    for _ in range(steps):
        last = step()
    rate = steps / (time.perf_counter() - started)
    # The loss's gradient on a batch of the trained generator, against a converged float64 S_eps
    # (ours at tolerance 1e-9): what each step's gradient is worth at the end of the run.
    error = None
    if not settings["eeps"]:
        with torch.no_grad():
            x = net(latent(batch, generator))
        y = data(batch, generator)
        reference = reference_gradient(x, y, settings)
        x = x.clone().requires_grad_(True)
        [gradient] = torch.autograd.grad(loss(x, y), [x])
        error = ((gradient.double() - reference).norm() / reference.norm()).item()
    return rate, last, error


def reference_gradient(x, y, settings):
    sys.path.insert(0, os.path.join(ROOT, "build", "python"))
    import sinkhorn
    x = x.double().requires_grad_(True)
    value = sinkhorn.SamplesLoss("sinkhorn", p=settings["p"], blur=settings["blur"], tolerance=1e-9,
                                 max_iterations=100000)(x, y.double())
    return torch.autograd.grad(value, [x])[0]


# The command-line trainer's variants: its defaults, and the --tolerance a user may trade for speed.
CLI_VARIANTS = {"ours-cli": [], "ours-cli-tol1e-2": ["--tolerance", "1e-2"]}


def cli_loop(steps, data_path, threads, *flags):
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "run")
        subprocess.run([os.path.join(ROOT, "build", "sinkhorn"), "train", "--data", "mnist", "--data-path", data_path,
                        "--split", "test", "--steps", str(steps), "--threads", str(threads), "--out", out,
                        "--eval-every", str(10 * steps), "--sample-every", "0", "--checkpoint-every", str(10 * steps), *flags],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(out, "metrics.csv")) as file:
            rows = [row for row in csv.DictReader(file) if row["loss"]]
        return steps / float(rows[-1]["seconds"]), float(rows[-1]["loss"]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+",
                        default=["mnist", "mnist-eeps", "toy-500", "toy-2000", "features-16", "features-64"])
    parser.add_argument("--methods", nargs="+", default=["ours-cli", "ours-cli-tol1e-2", "ours", "geomloss", "dense"])
    parser.add_argument("--steps", type=int, default=400, help="steps per run (mnist-eeps: a quarter, toy-2000: a tenth)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each method, interleaved (A B A B ...): the median is reported, "
                             "and the ratio to geomloss is the median of the per-round ratios")
    parser.add_argument("--data-path", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = ["| workload | method | steps | steps/s (median) | min - max | vs geomloss (median) | last loss | "
             "gradient error at the end |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.workloads:
        steps = {"mnist-eeps": args.steps // 4, "toy-2000": args.steps // 10}.get(name, args.steps)
        methods = [m for m in sorted(args.methods, key=lambda m: m != "geomloss") if m not in CLI_VARIANTS or name == "mnist"]
        rates = {m: [] for m in methods}
        losses, errors = {}, {}
        for _ in range(args.repeats):
            for method in methods:
                result = cli_loop(steps, args.data_path, args.threads, *CLI_VARIANTS[method]) if method in CLI_VARIANTS \
                    else python_loop(name, method, steps, args.data_path)
                if result is not None:
                    rates[method].append(result[0])
                    losses[method] = result[1]
                    errors[method] = result[2]
        baseline = rates.get("geomloss")
        for method in methods:
            if not rates[method]:
                continue
            rate = float(np.median(rates[method]))
            ratio = f"{np.median([r / g for r, g in zip(rates[method], baseline)]):.2f}x" if baseline else ""
            error = f"{errors[method]:.1e}" if errors.get(method) is not None else ""
            line = (f"| {name} | {method} | {steps} | {rate:.1f} | {min(rates[method]):.1f} - {max(rates[method]):.1f} | "
                    f"{ratio} | {losses[method]:.4g} | {error} |")
            lines.append(line)
            print(line, flush=True)
    if args.out:
        with open(args.out, "w") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
