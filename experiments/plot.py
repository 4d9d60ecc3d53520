#!/opt/sinkhorn/venv/bin/python
"""Draws the figures of docs/reproduction.md from the CSV tables of `sinkhorn experiment`.

Usage: /opt/sinkhorn/venv/bin/python experiments/plot.py interpolation RESULTS_DIR OUT_DIR
       /opt/sinkhorn/venv/bin/python experiments/plot.py sample_complexity RESULTS_DIR OUT_DIR
       /opt/sinkhorn/venv/bin/python experiments/plot.py toy_learning RESULTS_DIR OUT_DIR   (after experiments/toy_learning.sh)
       /opt/sinkhorn/venv/bin/python experiments/plot.py learned_cost RESULTS_DIR OUT_DIR   (after experiments/learned_cost.sh)
Runs in the project's environment, /opt/sinkhorn/venv, with matplotlib from scripts/install-deps.sh --bench.
"""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def interpolation(results, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, p in zip(axes, (1, 2)):
        rows = read(f"{results}/interpolation_p{p}.csv")
        ratio = np.array([float(r["eps_over_diameter_p"]) for r in rows])
        s = np.array([float(r["S_eps"]) for r in rows])
        e = np.array([float(r["E_eps"]) for r in rows])
        ot, mmd = float(rows[0]["OT"]), float(rows[0]["MMD"])
        ax.semilogx(ratio, s, "o-", label=r"$S_\varepsilon$ (debiased divergence)")
        ax.semilogx(ratio, e / 2, "s-", label=r"$\bar W_\varepsilon / 2$ (the paper's loss, halved)")
        ax.axhline(ot, color="k", ls="--", lw=1, label="exact OT (network simplex)")
        ax.axhline(mmd / 2, color="gray", ls=":", lw=1.5,
                   label=r"$\frac{1}{2}\mathrm{MMD}_{-C}$" + (" = energy distance" if p == 1 else r" = $\frac{1}{2}|\Delta\mathrm{mean}|^2$"))
        ax.set_xlabel(r"$\varepsilon$ / diameter$^p$")
        ax.set_title(f"p = {p}: C(x,y) = " + ("|x-y|" if p == 1 else "|x-y|^2/2"))
        ax.legend(fontsize=8)
    fig.suptitle("From optimal transport (eps -> 0) to MMD (eps -> infinity): ring vs blob, 200 points each")
    fig.tight_layout()
    fig.savefig(f"{out}/interpolation.png", dpi=110)


def sample_complexity(results, out):
    rows = read(f"{results}/sample_complexity.csv")
    dims = sorted({int(r["dimension"]) for r in rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4.2))
    slopes = []
    for ax, d in zip(np.atleast_1d(axes), dims):
        for loss, eps in sorted({(r["loss"], float(r["eps"])) for r in rows if int(r["dimension"]) == d},
                                key=lambda k: (k[0] != "ot", k[0] == "mmd", k[1])):
            sel = [r for r in rows if int(r["dimension"]) == d and r["loss"] == loss and float(r["eps"]) == eps]
            n = np.array([int(r["n"]) for r in sel])
            mean = np.array([float(r["mean"]) for r in sel])
            # Slope of log(mean) against log(n) over the larger half of the sizes.
            half = n >= np.median(n)
            slope = np.polyfit(np.log(n[half]), np.log(np.abs(mean[half])), 1)[0]
            label = "OT" if loss == "ot" else "MMD (eps=inf)" if loss == "mmd" else f"S_eps, eps={eps:g}"
            slopes.append((d, label, slope))
            ax.loglog(n, np.abs(mean), "o-", label=f"{label}: slope {slope:.2f}")
        ax.set_title(f"U([0,1]^{d}): two independent n-samples")
        ax.set_xlabel("n")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/sample_complexity.png", dpi=110)
    with open(f"{out}/sample_complexity_slopes.csv", "w") as f:
        f.write("dimension,loss,slope\n")
        for d, label, slope in slopes:
            f.write(f"{d},{label},{slope:.3f}\n")


def toy_learning(results, out):
    """Tiles the scatter_final.png of each (blur, L) run of experiments/toy_learning.sh."""
    blurs, iterations = ("0.1", "0.5", "2"), ("1", "10", "100")
    fig, axes = plt.subplots(len(blurs), len(iterations), figsize=(9, 9.4))
    for r, blur in enumerate(blurs):
        for c, L in enumerate(iterations):
            folder = f"{results}/blur{blur}_L{L}"
            ax = axes[r][c]
            ax.imshow(plt.imread(f"{folder}/scatter_final.png"))
            ax.set_xticks([])
            ax.set_yticks([])
            last = read(f"{folder}/metrics.csv")[-1]
            ax.set_title(f"blur {blur}, L = {L}: S = {float(last['eval_divergence']):.3f}", fontsize=9)
    fig.suptitle("Ring of 8 Gaussians fitted with the paper's E_eps (blue: data, red: samples)")
    fig.tight_layout()
    fig.savefig(f"{out}/toy_learning.png", dpi=100)


def learned_cost(results, out):
    """Evaluation curves and final samples of the runs of experiments/learned_cost.sh."""
    blurs = sorted((float(os.path.basename(os.path.normpath(d))[len("sinkhorn_blur"):]), d) for d in glob.glob(f"{results}/sinkhorn_blur*/"))
    runs = [(d, f"S_eps, learned cost, blur {blur:g}") for blur, d in blurs]
    runs.append((f"{results}/mmd/", "MMD, Gaussian mixture, same critic"))
    fig = plt.figure(figsize=(3.4 * (len(runs) + 1), 3.9))
    curve = fig.add_subplot(1, len(runs) + 1, 1)
    for k, (folder, label) in enumerate(runs):
        rows = [r for r in read(f"{folder}/metrics.csv") if r["eval_divergence"]]
        curve.plot([int(r["step"]) for r in rows], [float(r["eval_divergence"]) for r in rows], "o-", ms=3, label=label)
        ax = fig.add_subplot(1, len(runs) + 1, 2 + k)
        ax.imshow(plt.imread(f"{folder}/samples_final.png"), cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)
    curve.set_yscale("log")
    curve.set_xlabel("generator step")
    curve.set_ylabel("held-out S_eps on pixels (blur 1)")
    curve.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/learned_cost.png", dpi=100)


EXPERIMENTS = {"learned_cost": learned_cost, "interpolation": interpolation, "sample_complexity": sample_complexity, "toy_learning": toy_learning}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in EXPERIMENTS:
        sys.exit(__doc__)
    EXPERIMENTS[sys.argv[1]](sys.argv[2], sys.argv[3])
