#!/opt/sinkhorn/venv/bin/python
"""Large clouds on four families (issue 14): N = M points in 3-D, S_eps, p = 2, value + gradient.

Families (the points a user brings are rarely Gaussian blobs):
  cube    x, y uniform in [0, 1]^3
  blobs   x ~ N(0, 0.5^2 I), y ~ N(0.29, 0.3^2 I)
  sphere  uniform on the sphere of radius 0.5; y shifted by 0.1 along every axis
  torus   uniform angles on the torus R = 0.5, r = 0.15; y rotated by 37 degrees about the first axis
Each run is `build/sinkhorn divergence X Y --blur B --grad-x G --json --threads T` in its own
process (float32 points, default options): wall time, the process's own peak RSS, sweeps and
the truncation's statistics from its JSON. With --reference, the same points in float64 at
tolerance 1e-6 (--reference-tolerance) give the value and gradient the float32 run is compared
with (the multiscale truncation drops at most 1e-7 of each row's mass, docs/numerics.md; the
value's error is second order in the marginal error, the gradient's first order).

  /opt/sinkhorn/venv/bin/python bench/large_clouds.py --n 100000 --reference --out /tmp/large.md
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ("cube", "blobs", "sphere", "torus")


def sphere(rng, n):
    v = rng.standard_normal((n, 3))
    return 0.5 * v / np.linalg.norm(v, axis=1, keepdims=True)


def torus(rng, n, big=0.5, small=0.15):
    u, v = rng.random(n) * 2 * math.pi, rng.random(n) * 2 * math.pi
    ring = big + small * np.cos(v)
    return np.stack([ring * np.cos(u), ring * np.sin(u), small * np.sin(v)], axis=1)


def make_family(name, n, seed=1):
    rng = np.random.default_rng(seed)
    if name == "cube":
        x, y = rng.random((n, 3)), rng.random((n, 3))
    elif name == "blobs":
        x = rng.standard_normal((n, 3)) * 0.5
        y = rng.standard_normal((n, 3)) * 0.3 + 0.29
    elif name == "sphere":
        x, y = sphere(rng, n), sphere(rng, n) + 0.1
    elif name == "torus":
        x, y = torus(rng, n), torus(rng, n)
        angle = math.radians(37)
        rotation = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]])
        y = y @ rotation.T
    else:
        raise ValueError(f"--families: unknown family {name!r} (expected one of {', '.join(FAMILIES)})")
    return x, y


def run(binary, x_path, y_path, grad_path, extra, timeout):
    """One solve in its own process: (JSON result, seconds, its own peak RSS in MB from wait4)."""
    args = [binary, "divergence", x_path, y_path, "--grad-x", grad_path, "--json"] + extra
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.perf_counter() > deadline:
                process.kill()
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"{' '.join(args)}: {stderr.strip() or f'exit {code}'}")
    return json.loads(stdout), seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="points per cloud")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), help="which families")
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", action="store_true", help="also a float64 solve for the errors")
    parser.add_argument("--reference-tolerance", type=float, default=1e-6)
    parser.add_argument("--extra", default="", help="more flags for the float32 runs, e.g. '--cluster-scale 0.07'")
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "sinkhorn"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per solve")
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args()
    if args.n < 10:
        parser.error("--n: needs at least 10 points per cloud")
    common = ["--blur", str(args.blur), "--threads", str(args.threads)]
    rows = ["| family | N = M | wall time | peak RSS | sweeps | pairs visited | rebuilds | value | rel. error value | rel. error gradient |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for family in args.families:
            x, y = make_family(family, args.n)
            paths = {}
            for dtype in ("float32", "float64"):
                paths[dtype] = (os.path.join(folder, f"x_{dtype}.npy"), os.path.join(folder, f"y_{dtype}.npy"))
                np.save(paths[dtype][0], x.astype(dtype))
                np.save(paths[dtype][1], y.astype(dtype))
            grad32, grad64 = os.path.join(folder, "g32.npy"), os.path.join(folder, "g64.npy")
            result, seconds, rss = run(args.binary, *paths["float32"], grad32, common + args.extra.split(),
                                                args.timeout)
            value_error = gradient_error = "-"
            if args.reference:
                reference, _, _ = run(args.binary, *paths["float64"], grad64, common + ["--tolerance", str(args.reference_tolerance)],
                                               args.timeout)
                value_error = f"{abs(result['value'] - reference['value']) / abs(reference['value']):.1e}"
                g32, g64 = np.load(grad32).astype(np.float64), np.load(grad64)
                gradient_error = f"{np.linalg.norm(g32 - g64) / np.linalg.norm(g64):.1e}"
            row = (f"| {family} | {args.n:,} | {seconds:.1f} s | {rss:.0f} MB | {result['iterations']} | "
                   f"{100 * result['visited_pairs_fraction']:.0f}% | {result['truncation_rebuilds']} | "
                   f"{result['value']:.6g} | {value_error} | {gradient_error} |")
            rows.append(row)
            print(row, flush=True)
    table = "\n".join(rows)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
