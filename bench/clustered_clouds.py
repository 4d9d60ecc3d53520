#!/opt/sinkhorn/venv/bin/python
"""Clustered clouds in any dimension (issue 35): Gaussian mixtures whose modes must exchange mass.

The family `mixture` (a generator's modes against the data's): x and y each an 8-cluster Gaussian
mixture in D dimensions, centres N(0, I) (y's scaled by 0.9), spread 0.1, cluster sizes drawn at
random (their masses differ by a few percent), blur 0.5, p = 2, default tolerance. The mass that
must cross between clusters moves through kernel values near e^-240 in 64-D.

Each case runs sinkhorn.solve (float32, value + gradient of x) in its own process, with and
without coarse_correction: wall time of the solve and backward, sweeps, corrected sweeps,
convergence. With --reference the same points in float64 at tolerance 1e-7 (corrected, which
converges) give the value and gradient the float32 runs are compared with.

  /opt/sinkhorn/venv/bin/python bench/clustered_clouds.py --dims 3 16 64 --n 5000 --reference
  /opt/sinkhorn/venv/bin/python bench/clustered_clouds.py --dims 64 --n 20000
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mixture(n, dimension, seed, scale=1.0, clusters=8):
    """n points of the 8-cluster mixture: centres N(0, I) from a fixed seed (shared by x and y),
    times `scale`; cluster weights 1 + U(0, 0.1), normalised; spread 0.1."""
    centres = np.random.default_rng(11).standard_normal((clusters, dimension))
    rng = np.random.default_rng(seed)
    weights = 1.0 + 0.1 * rng.random(clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    return (scale * centres[labels] + 0.1 * rng.standard_normal((n, dimension))).astype(np.float32)


def make_pair(n, dimension):
    return mixture(n, dimension, 1), mixture(n, dimension, 2, scale=0.9)


_CHILD = r"""
import json, sys, time, warnings
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import sinkhorn
torch.set_num_threads(int(sys.argv[2]))
x = torch.from_numpy(np.load(sys.argv[3])).to(getattr(torch, sys.argv[6]))
y = torch.from_numpy(np.load(sys.argv[4])).to(x.dtype)
options = json.loads(sys.argv[5])
x.requires_grad_(True)
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    solution = sinkhorn.solve(x, y, **options)
(gradient,) = torch.autograd.grad(solution.value, x)
seconds = time.perf_counter() - start
np.save(sys.argv[7], gradient.double().numpy())
print(json.dumps({"seconds": seconds, "value": solution.value.item(), "iterations": solution.iterations,
                  "corrected_sweeps": solution.corrected_sweeps, "converged": solution.converged,
                  "marginal_error": solution.marginal_error, "backend": solution.backend}))
"""


def run(folder, name, options, dtype, threads):
    gradient_file = os.path.join(folder, f"{name}_{dtype}_{len(options)}_grad.npy")
    result = subprocess.run([sys.executable, "-c", _CHILD, os.path.join(ROOT, "build", "python"), str(threads),
                             os.path.join(folder, f"{name}_x.npy"), os.path.join(folder, f"{name}_y.npy"),
                             json.dumps(options), dtype, gradient_file], check=True, capture_output=True, text=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["gradient"] = np.load(gradient_file)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 16, 64])
    parser.add_argument("--n", type=int, nargs="+", default=[5000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", action="store_true", help="compare with a float64 solve at tolerance 1e-7")
    parser.add_argument("--skip-plain", action="store_true", help="only the default (corrected) solve")
    parser.add_argument("--folder", default="/tmp/sinkhorn-clustered-clouds")
    parser.add_argument("--out", help="also write the table here")
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    lines = ["| case | coarse_correction | seconds | sweeps | corrected | converged | value | value error | gradient error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in args.n:
        for dimension in args.dims:
            name = f"mixture{dimension}-{n}"
            x, y = make_pair(n, dimension)
            np.save(os.path.join(args.folder, f"{name}_x.npy"), x)
            np.save(os.path.join(args.folder, f"{name}_y.npy"), y)
            reference = None
            if args.reference:
                reference = run(args.folder, name, {"blur": 0.5, "tolerance": 1e-7, "max_iterations": 100000},
                                "float64", args.threads)
            for corrected in ([True] if args.skip_plain else [True, False]):
                report = run(args.folder, name, {"blur": 0.5, "coarse_correction": corrected}, "float32", args.threads)
                value_error = gradient_error = "-"
                if reference:
                    value_error = f"{abs(report['value'] - reference['value']) / abs(reference['value']):.1e}"
                    scale = np.abs(reference["gradient"]).max()
                    gradient_error = f"{np.abs(report['gradient'] - reference['gradient']).max() / scale:.1e}"
                lines.append(f"| {name} | {corrected} | {report['seconds']:.2f} | {report['iterations']} | "
                             f"{report['corrected_sweeps']} | {report['converged']} | {report['value']:.6g} | "
                             f"{value_error} | {gradient_error} |")
                print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
