#!/opt/sinkhorn/venv/bin/python
"""CPU comparison on the same points, in one run (issue: online CPU kernels).

Methods, each in its own process so that its peak memory (max RSS) is its own:
  sinkhorn   this project, `build/sinkhorn divergence --json --grad-x` (value + gradient), float32
  dense      a dense PyTorch implementation of the same eps-scaling divergence, written below
             (GeomLoss-style averaged updates, then iterations at blur^p to the same tolerance,
             envelope gradient by autograd through a last extrapolation), float32
  pot        POT's ot.bregman.empirical_sinkhorn_divergence (log-domain Sinkhorn), float64,
             value only; POT returns the primal form W_ab - (W_aa + W_bb)/2 = E_eps / 2, so its
             error is measured against this project's converged float64 E_eps / 2.
Relative errors are against this project's float64 solve at tolerance 1e-6 (same loss; the value
error is second order in the marginal error, ~1e-10).

  /opt/sinkhorn/venv/bin/python bench/compare_cpu.py --sizes 1000 5000 --dims 3 64 --out /tmp/compare.md

Runs in the project's environment, /opt/sinkhorn/venv (PyTorch, NumPy; POT from scripts/install-deps.sh --bench).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "sinkhorn")


def make_points(n, d, seed):
    """Two Gaussian blobs, offset along the diagonal: diameter ~ 2-4 whatever d."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * 0.5 / math.sqrt(d) * math.sqrt(3)
    y = rng.standard_normal((n, d)) * 0.3 / math.sqrt(d) * math.sqrt(3) + 0.5 / math.sqrt(d)
    return x.astype(np.float32), y.astype(np.float32)


def run_child(args, timeout):
    """Runs a command; returns (stdout, seconds, its own peak RSS in MB) or raises."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0); err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {process.returncode}"
        if seconds >= timeout:
            reason = f"timed out after {timeout:.0f} s"
        raise RuntimeError(reason)
    return stdout, seconds, usage.ru_maxrss / 1024.0


# --- the dense PyTorch implementation (child mode) ------------------------------------------

def dense_divergence(x, y, blur, scaling, tolerance, max_iterations):
    import torch

    def cost(a, b):
        return 0.5 * ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)

    def softmin(eps, c, h):
        return -eps * torch.logsumexp(h[None, :] - c / eps, dim=1)

    n, m = x.shape[0], y.shape[0]
    log_a = torch.full((n,), -math.log(n)); log_b = torch.full((m,), -math.log(m))
    centre = 0.5 * (x.mean(0) + y.mean(0)).detach()
    xc, yc = x - centre, y - centre
    with torch.no_grad():
        cxy, cxx, cyy = cost(xc, yc), cost(xc, xc), cost(yc, yc)
        diameter = (torch.cat([xc, yc]).max(0).values - torch.cat([xc, yc]).min(0).values).norm().item()
        epsilons, scale = [], diameter
        while scale > blur:
            epsilons.append(scale ** 2); scale *= scaling
        epsilons.append(blur ** 2)
        eps = epsilons[0]
        f = softmin(eps, cxy, log_b); g = softmin(eps, cxy.T, log_a)
        faa = softmin(eps, cxx, log_a); gbb = softmin(eps, cyy, log_b)
        for eps in epsilons[:-1]:
            f, g = 0.5 * (f + softmin(eps, cxy, log_b + g / eps)), 0.5 * (g + softmin(eps, cxy.T, log_a + f / eps))
            faa = 0.5 * (faa + softmin(eps, cxx, log_a + faa / eps)); gbb = 0.5 * (gbb + softmin(eps, cyy, log_b + gbb / eps))
        eps = epsilons[-1]
        for _ in range(max_iterations):
            s = softmin(eps, cxy, log_b + g / eps)
            error = (torch.exp(log_a + (f - s) / eps) - torch.exp(log_a)).abs().sum().item()
            if error < tolerance:
                break
            f = s; g = softmin(eps, cxy.T, log_a + f / eps)
            faa = 0.5 * (faa + softmin(eps, cxx, log_a + faa / eps)); gbb = 0.5 * (gbb + softmin(eps, cyy, log_b + gbb / eps))
    # Last extrapolation with autograd on: the envelope gradient (as GeomLoss does).
    f = softmin(eps, cost(xc, yc), log_b + g.detach() / eps)
    g = softmin(eps, cost(yc, xc), log_a + f.detach() / eps)
    faa = softmin(eps, cost(xc, xc), log_a + faa.detach() / eps)
    gbb = softmin(eps, cost(yc, yc), log_b + gbb.detach() / eps)
    return (torch.exp(log_a) * (f - faa)).sum() + (torch.exp(log_b) * (g - gbb)).sum()


def child_dense(x_path, y_path, blur, scaling, threads):
    import torch
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.load(x_path)).requires_grad_(True)
    y = torch.from_numpy(np.load(y_path))
    value = dense_divergence(x, y, blur, scaling, 1e-4, 1000)
    value.backward()
    print(json.dumps({"value": value.item(), "grad_norm": x.grad.norm().item()}))


def child_pot(x_path, y_path, blur, threads):
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import ot
    x = np.load(x_path).astype(np.float64) / math.sqrt(2)  # sqeuclidean(x/sqrt2, y/sqrt2) = |x-y|^2/2
    y = np.load(y_path).astype(np.float64) / math.sqrt(2)
    value = ot.bregman.empirical_sinkhorn_divergence(x, y, blur ** 2, numIterMax=1000, stopThr=1e-9,
                                                     method="sinkhorn_log", warn=False)
    print(json.dumps({"value": float(value)}))


# --- the driver -------------------------------------------------------------------------------

def ours(x_path, y_path, args, extra, dtype="float32"):
    command = [BINARY, "divergence", x_path, y_path, "--blur", str(args.blur), "--scaling", str(args.scaling),
               "--threads", str(args.threads), "--json", "--dtype", dtype] + extra
    stdout, seconds, memory = run_child(command, args.timeout)
    return json.loads(stdout), seconds, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 100000])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 64])
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--scaling", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--dense-limit-gb", type=float, default=12, help="skip dense methods needing more")
    parser.add_argument("--methods", nargs="+", default=["sinkhorn", "dense", "pot"])
    parser.add_argument("--reference-tolerance", type=float, default=1e-6,
                        help="marginal tolerance of the float64 reference solve (looser for slow high-D rows)")
    parser.add_argument("--out", default=None, help="append the markdown table here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, x_path, y_path = args.child
        if kind == "dense":
            child_dense(x_path, y_path, args.blur, args.scaling, args.threads)
        else:
            child_pot(x_path, y_path, args.blur, args.threads)
        return

    rows = ["| N = M | D | method | seconds | peak MB | value | rel. error | iterations |",
            "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as directory:
        for n in args.sizes:
            for d in args.dims:
                x, y = make_points(n, d, seed=n + d)
                x_path, y_path = os.path.join(directory, "x.npy"), os.path.join(directory, "y.npy")
                np.save(x_path, x); np.save(y_path, y)
                truth, _, _ = ours(x_path, y_path, args, ["--tolerance", str(args.reference_tolerance), "--max-iterations", "20000"], "float64")
                dense_gb = 4 * n * n * 4 / 1e9  # a few float32 N x N matrices at once
                for method in args.methods:
                    row = f"| {n} | {d} | {method} |"
                    try:
                        if method == "sinkhorn":
                            result, seconds, memory = ours(x_path, y_path, args, ["--grad-x", os.path.join(directory, "g.npy")])
                            error = abs(result["value"] - truth["value"]) / abs(truth["value"])
                            row += f" {seconds:.2f} | {memory:.0f} | {result['value']:.6g} | {error:.1e} | {result['iterations']} |"
                        elif dense_gb > args.dense_limit_gb:
                            row += f" skipped: needs ~{dense_gb:.0f} GB | | | | |"
                        elif method == "dense":
                            stdout, seconds, memory = run_child([sys.executable, __file__, "--blur", str(args.blur), "--scaling", str(args.scaling), "--threads", str(args.threads), "--child", "dense", x_path, y_path], args.timeout)
                            value = json.loads(stdout)["value"]
                            error = abs(value - truth["value"]) / abs(truth["value"])
                            row += f" {seconds:.2f} | {memory:.0f} | {value:.6g} | {error:.1e} | |"
                        else:
                            primal, _, _ = ours(x_path, y_path, args, ["--loss", "primal", "--tolerance", "1e-6", "--max-iterations", "20000"], "float64")
                            stdout, seconds, memory = run_child([sys.executable, __file__, "--blur", str(args.blur), "--threads", str(args.threads), "--child", "pot", x_path, y_path], args.timeout)
                            value = json.loads(stdout)["value"]
                            error = abs(value - primal["value"] / 2) / abs(primal["value"] / 2)
                            row += f" {seconds:.2f} (value only) | {memory:.0f} | {value:.6g} (E/2) | {error:.1e} | |"
                    except RuntimeError as failure:
                        row += f" failed: {failure} | | | | |"
                    print(row, flush=True)
                    rows.append(row)
    table = "\n".join(rows)
    if args.out:
        with open(args.out, "a") as out:
            out.write(table + "\n")


if __name__ == "__main__":
    main()
