#!/opt/sinkhorn/venv/bin/python
"""Sweep counts on the problems users solve, for comparing changes to the loop (issue 14).

Sweep counts are deterministic (same points, same binary, same result), so two versions of the
loop compare exactly on a machine whose speed drifts. The problems:
  mnist-S, toy-500-S, features-16-S  a batch of generated against a batch of real samples after S
      training steps of bench/training_step.py's workloads (Python loop, sinkhorn.SamplesLoss at
      tolerance 1e-3): MNIST (D = 784, blur 1), ring8 (D = 2, blur 0.1), a 16-D mixture (p = 1,
      blur 0.05); solved at tolerance 1e-3 as the trainer does
  toy-ring500, toy-ring2000  two independent samples of the ring of 8 Gaussians (blur 0.1)
  cube/blobs/sphere/torus at 2,000 and 5,000 points  bench/large_clouds.py's families (defaults:
      blur 0.05, tolerance 1e-4; 5,000 points take the multiscale backend)
  near-cube2000, near-mnist  near-identical clouds (a copy with noise), where averaged updates win
  mixture3-5000, mixture16-5000, mixture64-5000  bench/clustered_clouds.py's 8-cluster mixtures
      (blur 0.5): modes that must exchange mass through kernel values down to e^-240 (issue 35)
Each line: the problem, `iterations` and `value` from `sinkhorn divergence ... --json`.

  /opt/sinkhorn/venv/bin/python bench/sweep_counts.py --binary build/sinkhorn --out /tmp/new.txt
  /opt/sinkhorn/venv/bin/python bench/sweep_counts.py --binary /tmp/old/sinkhorn --problems /tmp/problems
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
import clustered_clouds  # noqa: E402
import large_clouds  # noqa: E402
import training_step  # noqa: E402

MIXTURE_DIMENSIONS = (3, 16, 64)
TRAINING = {"mnist": (0, 50, 200, 600, 1200), "toy-500": (0, 100, 400, 1000), "features-16": (0, 200, 600)}


def flags_for(name):
    if name.startswith("mnist") or name.startswith("near-mnist"):
        return ["--blur", "1", "--tolerance", "1e-3"]
    if name.startswith("toy"):
        return ["--blur", "0.1", "--tolerance", "1e-3"]
    if name.startswith("features"):
        return ["--p", "1", "--blur", "0.05", "--tolerance", "1e-3"]
    if name.startswith("mixture"):
        return ["--blur", "0.5"]
    return []


def save(folder, name, x, y):
    np.save(os.path.join(folder, f"{name}_x.npy"), np.asarray(x, np.float32))
    np.save(os.path.join(folder, f"{name}_y.npy"), np.asarray(y, np.float32))


def make_problems(folder, data_path):
    sys.path.insert(0, os.path.join(os.path.dirname(ROOT), "build", "python"))
    import sinkhorn
    os.makedirs(folder, exist_ok=True)
    for family in large_clouds.FAMILIES:
        for n in (2000, 5000):
            save(folder, f"{family}{n}", *large_clouds.make_family(family, n))
    for name, steps in TRAINING.items():
        torch.manual_seed(0)
        net, latent, data, settings, rate, batch = training_step.workload(name, data_path)
        loss = sinkhorn.SamplesLoss("sinkhorn", p=settings["p"], blur=settings["blur"], tolerance=1e-3)
        optimizer = torch.optim.Adam(net.parameters(), rate)
        generator = torch.Generator().manual_seed(0)
        for step in range(max(steps) + 1):
            x, y = net(latent(batch, generator)), data(batch, generator)
            if step in steps:
                save(folder, f"{name}-{step}", x.detach(), y)
            value = loss(x, y)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
    generator = torch.Generator().manual_seed(3)
    for n in (500, 2000):
        save(folder, f"toy-ring{n}", training_step.ring8(n, generator), training_step.ring8(n, generator))
    rng = np.random.default_rng(5)
    x = np.load(os.path.join(folder, "cube2000_x.npy"))
    save(folder, "near-cube2000", x, x + 0.01 * rng.standard_normal(x.shape))
    y = np.load(os.path.join(folder, "mnist-600_y.npy"))
    save(folder, "near-mnist", y, np.clip(y + 0.05 * rng.standard_normal(y.shape), 0, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(ROOT), "build", "sinkhorn"))
    parser.add_argument("--problems", default="/tmp/sinkhorn-sweep-problems",
                        help="folder of the problems' .npy files (made when missing)")
    parser.add_argument("--data-path", default=os.path.join(os.path.dirname(ROOT), "..", "shared", "data", "mnist"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the lines here")
    args = parser.parse_args()
    if not os.path.isdir(args.problems) or not os.listdir(args.problems):
        make_problems(args.problems, args.data_path)
    for dimension in MIXTURE_DIMENSIONS:  # added later than the others: made where missing
        name = f"mixture{dimension}-5000"
        if not os.path.exists(os.path.join(args.problems, f"{name}_x.npy")):
            save(args.problems, name, *clustered_clouds.make_pair(5000, dimension))
    names = sorted(f[:-6] for f in os.listdir(args.problems) if f.endswith("_x.npy"))
    lines, total = [], 0
    for name in names:
        x, y = (os.path.join(args.problems, f"{name}_{side}.npy") for side in "xy")
        result = subprocess.run([args.binary, "divergence", x, y, "--json", "--threads", str(args.threads),
                                 *flags_for(name)], check=True, capture_output=True, text=True)
        report = json.loads(result.stdout)
        total += report["iterations"]
        lines.append(f"{name:16s} {report['iterations']:6d} {report['value']:.9g}")
        print(lines[-1], flush=True)
    lines.append(f"{'total':16s} {total:6d}")
    print(lines[-1])
    if args.out:
        with open(args.out, "w") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
