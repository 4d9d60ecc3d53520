"""1 rank x 1 thread against P ranks x 1 thread for one sharded solve (issue 15), on this machine.

Runs `build/sinkhorn divergence X Y --json --threads 1 --backend online` in one process and
under a torchrun environment with P processes (127.0.0.1), in interleaved pairs on several input
families, and prints a Markdown table: medians of whole-process and solve seconds (rank 0's
JSON), sweeps, the median paired speed-up, and the value's relative difference. Also times the collective the solve repeats (an all-gather
of O(N) floats over Gloo) to check the cost model t(P) = t(1) / P + reductions * t_collective.

    build/sinkhorn-python bench/distributed_scaling.py --n 20000 --d 8 --ranks 2
"""
import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "sinkhorn")


def family(name, n, d, generator):
    if name == "uniform":
        return generator.random((n, d))
    if name == "clustered":
        centres = generator.random((10, d))
        return centres[generator.integers(0, 10, n)] + 0.03 * generator.normal(size=(n, d))
    if name == "sphere":
        points = generator.normal(size=(n, d))
        return 0.5 + 0.5 * points / np.linalg.norm(points, axis=1, keepdims=True)
    raise ValueError(name)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(arguments, ranks):
    start = time.perf_counter()
    if ranks == 1:
        out = subprocess.run([BINARY] + arguments, capture_output=True, text=True, check=True).stdout
    else:
        port = free_port()
        processes = [subprocess.Popen([BINARY] + arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, RANK=str(r), WORLD_SIZE=str(ranks), LOCAL_RANK=str(r),
                                               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)))
                     for r in range(ranks)]
        outputs = [p.communicate(timeout=3600) for p in processes]
        for p, (_, err) in zip(processes, outputs):
            if p.returncode != 0:
                raise RuntimeError(err)
        out = outputs[0][0]
    return time.perf_counter() - start, json.loads(out)


def collective_seconds(n, ranks, calls=200):
    """Median seconds of one all-gather of n float32 over Gloo with `ranks` processes."""
    code = f"""
import datetime, os, time, torch, torch.distributed as dist
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
torch.set_num_threads(1)
block = torch.zeros({n} // {ranks}); out = torch.empty(block.numel() * {ranks}); times = []
for _ in range({calls}):
    t = time.perf_counter(); dist.all_gather_into_tensor(out, block); times.append(time.perf_counter() - t)
if dist.get_rank() == 0: print(sorted(times)[len(times) // 2])
dist.destroy_process_group()
"""
    port = free_port()
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RANK=str(r), WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                                           MASTER_PORT=str(port)))
                 for r in range(ranks)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    return float(outputs[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--families", default="uniform,clustered,sphere")
    parser.add_argument("--repeats", type=int, default=3,
                        help="pairs of runs (1 rank, then P ranks) per family; medians and the median paired ratio")
    args = parser.parse_args()
    generator = np.random.default_rng(0)
    print(f"N = M = {args.n}, D = {args.d}, blur {args.blur}, float32, online backend, 1 thread per rank")
    print()
    print("| family | 1 rank: process s (solve s) | %d ranks: process s (solve s) | sweeps | speed-up, process (solve) "
          "| value rel. diff |" % args.ranks)
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.families.split(","):
            x = family(name, args.n, args.d, generator).astype(np.float32)
            y = family(name, args.n, args.d, generator).astype(np.float32)
            np.save(os.path.join(folder, "x.npy"), x)
            np.save(os.path.join(folder, "y.npy"), y)
            arguments = ["divergence", os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy"), "--json",
                         "--threads", "1", "--backend", "online", "--blur", str(args.blur), "--timeout", "600"]
            # Interleaved pairs: this machine's speed drifts by up to 30% over minutes.
            pairs = [(run(arguments, 1), run(arguments, args.ranks)) for _ in range(args.repeats)]
            median = lambda values: float(np.median(values))
            wall1 = median([one[0] for one, _ in pairs])
            wallp = median([many[0] for _, many in pairs])
            solve1 = median([one[1]["seconds"] for one, _ in pairs])
            solvep = median([many[1]["seconds"] for _, many in pairs])
            ratio = median([one[0] / many[0] for one, many in pairs])
            ratio_solve = median([one[1]["seconds"] / many[1]["seconds"] for one, many in pairs])
            one, many = pairs[0][0][1], pairs[0][1][1]
            difference = abs(many["value"] - one["value"]) / abs(one["value"])
            print(f"| {name} | {wall1:.1f} ({solve1:.1f}) | {wallp:.1f} ({solvep:.1f}) | {one['iterations']} / "
                  f"{many['iterations']} | {ratio:.2f}x ({ratio_solve:.2f}x) | {difference:.1e} |", flush=True)
    latency = collective_seconds(args.n, args.ranks)
    print()
    print(f"all-gather of {args.n} float32 over Gloo, {args.ranks} ranks: {latency * 1e3:.3f} ms (median of 200)")


if __name__ == "__main__":
    main()
