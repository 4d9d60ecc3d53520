"""Data-parallel training on this machine (issue 33): `sinkhorn train` in one process against two
ranks (torchrun's environment on 127.0.0.1, bench/two_ranks.sh), 1 thread each, the same global
batch, with the loss gathered once per step, split or sharded (--data-parallel-solve), over batch sizes:
where the crossover between the two plans lies. Prints a Markdown table of training seconds per
step (metrics.csv's `seconds` at the last step over the steps run).

    build/sinkhorn-python bench/data_parallel.py --data ring8 --batches 200 1000 4000 --steps 20
"""
import argparse
import csv
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "sinkhorn")


def seconds_per_step(command, folder, steps):
    subprocess.run(command + ["--out", folder], check=True, capture_output=True, text=True, timeout=1800)
    with open(os.path.join(folder, "metrics.csv")) as file:
        rows = list(csv.DictReader(file))
    return float(rows[-1]["seconds"]) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="ring8")
    parser.add_argument("--batches", type=int, nargs="+", default=[200, 1000, 4000])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print("| batch | 1 rank (ms/step) | 2 ranks gathered | 2 ranks split | 2 ranks sharded | speed-up gathered | "
          "speed-up split | speed-up sharded |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for batch in args.batches:
            common = ["train", "--data", args.data, "--batch-size", str(batch), "--steps", str(args.steps),
                      "--threads", "1", "--eval-every", "1000000", "--sample-every", "0", "--checkpoint-every",
                      "1000000", "--eval-samples", "200", "--overwrite", "--lr-schedule", "constant"]
            one = seconds_per_step([BINARY] + common, os.path.join(work, "one"), args.steps)
            two = {mode: seconds_per_step(["bash", os.path.join(ROOT, "bench", "two_ranks.sh"), BINARY] + common +
                                          ["--data-parallel-solve", mode], os.path.join(work, mode), args.steps)
                   for mode in ("gathered", "split", "sharded")}
            print(f"| {batch} | {one * 1e3:.1f} | {two['gathered'] * 1e3:.1f} | {two['split'] * 1e3:.1f} | "
                  f"{two['sharded'] * 1e3:.1f} | {one / two['gathered']:.2f} | {one / two['split']:.2f} | "
                  f"{one / two['sharded']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
