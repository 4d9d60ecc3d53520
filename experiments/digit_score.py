#!/opt/sinkhorn/venv/bin/python
"""Scores MNIST generators with a digit classifier: the MNIST analogue of the inception score.

Usage: /opt/sinkhorn/venv/bin/python experiments/digit_score.py MNIST_DIR OUT_CSV RUN_DIR [RUN_DIR ...]

A small CNN is trained on the first 9,000 digits of MNIST_DIR's test split (the same digits the
runs of experiments/learned_cost.sh train on) and checked on its last 1,000 (their held-out set).
Each run's generator then draws 5,000 samples (`sinkhorn sample`), which are scored:
  score      exp(E_x KL(p(y|x) || p(y))), between 1 (one class, or unrecognisable) and 10 (ten
             classes, each sample recognised with certainty) -- Salimans et al.'s inception score
             with this classifier in place of Inception;
  confident  the fraction of samples whose top class has probability > 0.9;
  rarest     the share of the least generated class (0.1 when all ten are balanced).
The held-out real digits are scored alike as the ceiling. Pixel-space divergences reward blurry
averages of digits; this score rewards recognisable, varied ones, so the two read together.
Runs in the project's environment, /opt/sinkhorn/venv (PyTorch, NumPy; scripts/install-deps.sh).
"""
import csv
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

TRAINING_DIGITS = 9000
SAMPLES = 5000


def read_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = [int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
            return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    sys.exit(f"digit_score: no {stem}[.gz] in '{folder}'")


def classifier():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


def train(images, labels):
    torch.manual_seed(0)
    model = classifier()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for epoch in range(6):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 100):
            batch = order[start:start + 100]
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def probabilities(model, images):
    with torch.no_grad():
        return torch.cat([model(images[k:k + 1000]).softmax(1) for k in range(0, len(images), 1000)])


def score(p):
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    counts = torch.bincount(p.argmax(1), minlength=10).double() / len(p)
    return {"score": kl.mean().exp().item(), "confident": (p.max(1).values > 0.9).double().mean().item(),
            "rarest": counts.min().item()}


def generated(run, sinkhorn):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "samples.npy")
        subprocess.run([sinkhorn, "sample", "--checkpoint", run, "--n", str(SAMPLES), "--out", path, "--seed", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        samples = np.load(path)
    if samples.shape[1:] != (1, 28, 28):
        sys.exit(f"digit_score: '{run}' generates {samples.shape[1:]}, not 28 x 28 digits")
    return torch.from_numpy(samples.astype(np.float32))


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    mnist, out_csv, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
    images = torch.from_numpy(read_idx(mnist, "t10k-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
    labels = torch.from_numpy(read_idx(mnist, "t10k-labels-idx1-ubyte").astype(np.int64))
    model = train(images[:TRAINING_DIGITS], labels[:TRAINING_DIGITS])
    heldout = probabilities(model, images[TRAINING_DIGITS:])
    accuracy = (heldout.argmax(1) == labels[TRAINING_DIGITS:]).double().mean().item()
    print(f"classifier accuracy on the 1,000 held-out digits: {accuracy:.4f}")
    rows = [{"run": "held-out real digits", **score(heldout)}]
    sinkhorn = os.environ.get("SINKHORN", "build/sinkhorn")
    rows += [{"run": run, **score(probabilities(model, generated(run, sinkhorn)))} for run in runs]
    with open(out_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["run", "score", "confident", "rarest"])
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(f"{row['run']}: score {row['score']:.2f}, confident {row['confident']:.3f}, rarest {row['rarest']:.3f}")


if __name__ == "__main__":
    main()
