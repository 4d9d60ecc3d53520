"""Data-parallel training on paper (issue 33): a cost model of one training step under each plan
(gathered, split, sharded; docs/distributed.md), fed by costs measured here, checked against
measured 2-rank runs, then evaluated for 8 ranks on one machine and for 4 machines x 8 GPUs.

Measured here (1 thread, this machine):
  - each phase of a step, from `sinkhorn train --timings` in one process (the recipe's defaults,
    --steps STEPS): generate + backward (W, split P ways by any plan), solve (S), update (U), and
    the learned cost's critic updates;
  - the share of the solve that is OT(a, b) (rho: a split solve's rank 0 does that much), from
    sinkhorn.SamplesLoss with and without the symmetric problems on the recipe's batch shape;
  - the collectives of this machine's Gloo on 127.0.0.1 (2 processes, each busy between
    collectives as in training): latency alpha (median of 1-number all-reduces) and bandwidth beta
    (from an all-reduce of the MNIST generator's 644,784 gradients).
Model of a step on P ranks (ring collectives: all-gather (P - 1)(alpha + s / (P beta)), all-reduce
twice that, s the bytes of the whole result):
  gathered  W / P + S + U + allgather(batch) + allreduce(parameters)
  split     W / P + max(rho, 1 - rho) S + U + allgather(batch) + allgather(potentials) + allreduce(parameters)
  sharded   W / P + S / P + U + sweeps x 3 x allgather(rows) + allreduce(parameters)
with the critic's updates (learned cost) counted like the generator's: their networks split, their
solves not, two all-gathers and an all-reduce each; on more than one rank every cost is multiplied
by the sharing factor measured here (two copies of the 1-rank run at once: cores that share caches,
memory and the VM's scheduler). The 2-rank rows of the first table are measured
(bench/two_ranks.sh, the same flags) beside the model's figure for them.

GPU cluster (4 machines x 8 GPUs; not measured: no multi-GPU machine has been lent): NCCL alpha 10 us
within a machine (NVLink, 300 GB/s) and 25 us across (25 GB/s, the issue's network), hierarchical
all-reduce; per-GPU costs from the H100 run of docs/benchmarks.md ("Training on the GPU": MNIST 45
steps/s, i.e. 22 ms a step, of which the generator's share is its FLOPs at 50 TFLOP/s plus 40
kernel launches of 5 us, the rest the solve's launches and per-sweep host synchronisation).

    build/sinkhorn-python bench/data_parallel_model.py --steps 100
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "sinkhorn")
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")
FLAGS = ["--threads", "1", "--eval-every", "1000000", "--sample-every", "0", "--checkpoint-every", "1000000",
         "--eval-samples", "200", "--timings", "--overwrite"]
# Parameters of the recipes' generators (gen/models/networks.cpp), for the gradient all-reduce.
PARAMETERS = {"ring8": 2 * 128 + 128 + 128 * 128 + 128 + 128 * 2 + 2,
              "mnist": 2 * 500 + 500 + 500 * 500 + 500 + 500 * 784 + 784}
DIMENSION = {"ring8": 2, "mnist": 784, "learned": 2}


def recipe_flags(name, data_path):
    if name == "ring8":
        return ["--data", "ring8"]
    if name == "mnist":
        return ["--data", "mnist", "--data-path", data_path, "--split", "test"]
    if name == "learned":
        return ["--data", "ring8", "--cost", "learned", "--batch-size", "100"]
    raise ValueError(name)


def timings(stderr, rank=None):
    """{phase: ms per step} from --timings lines (the given rank's under torchrun)."""
    for line in stderr.splitlines():
        if "time per step" not in line or (rank is not None and f"rank {rank}:" not in line):
            continue
        return {name: float(value) for name, value in re.findall(r"(\w+) ([0-9.]+)", line.split("in ms:")[1])}
    raise RuntimeError("no --timings line in:\n" + stderr)


def train(flags, work, ranks, plan=None):
    out = os.path.join(work, f"run{ranks}{plan or ''}")
    command = [BINARY, "train"] + flags + FLAGS + ["--out", out]
    if ranks == 1:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr
        return timings(done.stderr)
    done = subprocess.run(["bash", os.path.join(ROOT, "bench", "two_ranks.sh")] + command +
                          ["--data-parallel-solve", plan], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return timings(done.stderr, rank=0)


def cross_share(dimension, batch, blur):
    """rho: the time of OT(a, b) alone over the debiased divergence's (value and gradient)."""
    import torch
    import sinkhorn
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, dimension, generator=generator)
    y = torch.rand(batch, dimension, generator=generator) * 0.8 + 0.1
    seconds = {}
    for debias in (False, True):
        loss = sinkhorn.SamplesLoss(loss="sinkhorn", debias=debias, blur=blur, tolerance=1e-3)
        runs = []
        for _ in range(7):
            xx = x.clone().requires_grad_()
            start = time.perf_counter()
            loss(xx, y).backward()
            runs.append(time.perf_counter() - start)
        seconds[debias] = np.median(runs)
    return seconds[False] / seconds[True]


GLOO_PROBE = r"""
import sys, time, torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group("gloo")
one, big = torch.zeros(1), torch.zeros(int(sys.argv[1]))
work = torch.randn(200, 200)
def timed(tensor, busy):
    runs = []
    for _ in range(60):
        start = time.perf_counter()
        while busy and time.perf_counter() - start < 0.005:
            work @ work
        start = time.perf_counter()
        dist.all_reduce(tensor)
        runs.append(time.perf_counter() - start)
    runs.sort()
    return runs[len(runs) // 2], sum(runs) / len(runs)
idle, _ = timed(one, False)
median, mean = timed(one, True)
big_median, _ = timed(big, True)
if dist.get_rank() == 0:
    print(idle, median, mean, big_median)
dist.destroy_process_group()
"""


def gloo_costs(floats):
    """(alpha idle, alpha busy median, alpha busy mean, seconds of an all-reduce of `floats`)."""
    port = 20000 + int(time.time() * 1000) % 20000
    processes = [subprocess.Popen([sys.executable, "-c", GLOO_PROBE, str(floats)], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                           MASTER_PORT=str(port)))
                 for r in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    return [float(v) for v in outputs[0].split()]


class Network:
    """Ring collectives: alpha per hop, beta bytes per second; `machines` of `per_machine` ranks
    (hierarchical all-reduce across machines at the slower link)."""

    def __init__(self, alpha, beta, per_machine=None, alpha_across=None, beta_across=None):
        self.alpha, self.beta = alpha, beta
        self.per_machine, self.alpha_across, self.beta_across = per_machine, alpha_across, beta_across

    def allgather(self, ranks, nbytes):
        if ranks == 1:
            return 0.0
        if self.per_machine and ranks > self.per_machine:
            machines = ranks // self.per_machine
            return (self.allgather(self.per_machine, nbytes / machines) +
                    (machines - 1) * (self.alpha_across + nbytes / (machines * self.beta_across)))
        return (ranks - 1) * (self.alpha + nbytes / (ranks * self.beta))

    def allreduce(self, ranks, nbytes):
        if ranks == 1:
            return 0.0
        if self.per_machine and ranks > self.per_machine:
            machines = ranks // self.per_machine
            inside = 2 * self.allgather(self.per_machine, nbytes)  # reduce-scatter and all-gather in a machine
            across = 2 * (machines - 1) * (self.alpha_across + nbytes / (self.per_machine * machines * self.beta_across))
            return inside + across
        return 2 * self.allgather(ranks, nbytes)


def step_seconds(plan, ranks, cost, network, batch, dimension, parameters, sweeps, critic_updates=0,
                 solve_divides=True, sharing=1.0):
    """The model's seconds per step. cost: W (networks), S (solve), U (update), C (critic), rho.
    `solve_divides`: a sharded solve's time falls as 1 / P (pair-bound; False where launches and
    synchronisations bound it, as for training batches on a GPU). `sharing`: the slowdown of a
    process that shares the machine with the other ranks (measured: two copies at once)."""
    w, s, u, critic, rho = cost["W"], cost["S"], cost["U"], cost["C"], cost["rho"]
    if ranks > 1:
        w, s, u, critic = (sharing * v for v in (w, s, u, critic))
    batch_bytes, potential_bytes = batch * dimension * 4, 4 * batch * 8
    reduce = network.allreduce(ranks, parameters * 4)
    if plan == "gathered":
        solve = s + network.allgather(ranks, batch_bytes)
    elif plan == "split":
        solve = (max(rho, 1 - rho) * s if ranks > 1 else s) + network.allgather(ranks, batch_bytes) + \
            network.allgather(ranks, potential_bytes)
    else:
        solve = (s / ranks if solve_divides else s) + sweeps * 3 * network.allgather(ranks, 2 * batch * 4)
    # The critic's updates: their networks split, their solves (a fraction of C like the step's) not;
    # each gathers the generated and the real features and all-reduces the critic's gradients.
    critic_share = critic * (s / (s + w)) if critic else 0.0
    critic_time = critic_share + (critic - critic_share) / ranks + critic_updates * (
        2 * network.allgather(ranks, batch_bytes) + reduce)
    return w / ranks + solve + u + reduce + critic_time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--recipes", nargs="+", default=["ring8", "mnist", "learned"])
    parser.add_argument("--sweeps", type=int, default=100, help="sweeps per solve for the sharded plan's collectives")
    parser.add_argument("--data-path", default=MNIST)
    args = parser.parse_args()

    idle, alpha, alpha_mean, big = gloo_costs(PARAMETERS["mnist"])
    # Two processes at once, no communication: what sharing this machine costs each (bench/two_copies.sh).
    with tempfile.TemporaryDirectory() as work:
        flags = recipe_flags("ring8", args.data_path) + ["--steps", str(args.steps)]
        alone = train(flags, work, 1)["total"]
        copies = [subprocess.Popen([BINARY, "train"] + flags + FLAGS + ["--out", os.path.join(work, f"copy{k}")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
        together = np.mean([timings(p.communicate(timeout=1800)[1])["total"] for p in copies])
    sharing = together / alone
    print(f"Two copies of the 1-rank ring8 run at once: {together:.2f} against {alone:.2f} ms a step alone "
          f"(sharing factor {sharing:.2f})")
    beta = 2 * PARAMETERS["mnist"] * 4 / max(big - 2 * alpha, 1e-6) / 2  # all-reduce: 2 (P - 1) / P s / beta, P = 2
    print(f"Gloo on 127.0.0.1, 2 processes: all-reduce of 1 number {idle * 1e6:.0f} us idle, {alpha * 1e6:.0f} us "
          f"(median) / {alpha_mean * 1e6:.0f} us (mean) between 5 ms of work; of {PARAMETERS['mnist']} floats "
          f"{big * 1e3:.2f} ms (beta {beta / 1e9:.2f} GB/s)\n")
    here = Network(alpha_mean, beta)
    machine8 = Network(alpha_mean, beta)  # 8 ranks on one machine like this one (8 cores), same links
    cluster = Network(10e-6, 300e9, per_machine=8, alpha_across=25e-6, beta_across=25e9)

    print("| recipe | W | S | U | critic | rho | plan | 2 ranks, model | 2 ranks, measured | 8 ranks, model | "
          "speed-up 2 (measured) | speed-up 8 (model) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for name in args.recipes:
            flags = recipe_flags(name, args.data_path) + ["--steps", str(args.steps)]
            one = train(flags, work, 1)
            batch = 100 if name == "learned" else 200
            dimension = 16 if name == "learned" else DIMENSION[name]
            blur = 0.05 if name == "learned" else (0.1 if name == "ring8" else 1.0)
            cost = {"W": (one.get("generate", 0) + one.get("backward", 0)) / 1e3, "S": one["solve"] / 1e3,
                    "U": one.get("update", 0) / 1e3, "C": one.get("critic", 0) / 1e3,
                    "rho": cross_share(dimension, batch, blur)}
            parameters = PARAMETERS["ring8" if name == "learned" else name]
            total_one = one["total"] / 1e3
            for plan in ("gathered", "split"):
                measured = train(flags, work, 2, plan)["total"] / 1e3
                critic_updates = 5 if name == "learned" else 0
                model2 = step_seconds(plan, 2, cost, here, batch, dimension, parameters, args.sweeps, critic_updates,
                                      sharing=sharing)
                model8 = step_seconds(plan, 8, cost, machine8, batch, dimension, parameters, args.sweeps,
                                      critic_updates, sharing=sharing)
                print(f"| {name} | {cost['W'] * 1e3:.2f} | {cost['S'] * 1e3:.2f} | {cost['U'] * 1e3:.2f} | "
                      f"{cost['C'] * 1e3:.2f} | {cost['rho']:.2f} | {plan} | {model2 * 1e3:.2f} ms | "
                      f"{measured * 1e3:.2f} ms | {model8 * 1e3:.2f} ms | {total_one / measured:.2f} | "
                      f"{total_one / model8:.2f} |", flush=True)

    # 4 machines x 8 GPUs: per-GPU costs of the MNIST recipe from the H100 run (module docstring).
    print("\n4 machines x 8 GPUs (model), MNIST MLP, batch 200 global:")
    flops = 3 * 2 * 200 * PARAMETERS["mnist"]
    w_gpu = flops / 50e12 + 40 * 5e-6
    s_gpu = 1 / 45 - w_gpu
    cost = {"W": w_gpu, "S": s_gpu, "U": 0.1e-3, "C": 0.0, "rho": 0.8}
    print("| ranks | gathered steps/s | split steps/s | sharded steps/s |")
    print("|---|---|---|---|")
    for ranks in (1, 8, 32):
        row = [1 / step_seconds(plan, ranks, cost, cluster, 200, 784, PARAMETERS["mnist"], 40, solve_divides=False)
               for plan in ("gathered", "split", "sharded")]
        print(f"| {ranks} | " + " | ".join(f"{v:.1f}" for v in row) + " |")

    # Where sharding the solve beats gathering it: S(N) = S(200) (N / 200)^2 against the sharded
    # plan's collectives, sweeps x 3 all-gathers of 2 N floats.
    print("\nCrossover batch (sharded faster than gathered), ring8's solve cost scaled as N^2:")
    with tempfile.TemporaryDirectory() as work:
        s200 = train(recipe_flags("ring8", args.data_path) + ["--steps", "50"], work, 1)["solve"] / 1e3
    for label, network, ranks in (("2 ranks here", here, 2), ("8 ranks, one machine", machine8, 8),
                                  ("32 GPUs (CPU-speed solve)", cluster, 32)):
        crossover = next((n for n in range(200, 200001, 100)
                          if s200 * (n / 200) ** 2 * (1 - 1 / ranks) > args.sweeps * 3 * network.allgather(ranks, 8 * n)),
                         None)
        print(f"- {label}: N = {crossover}" if crossover else f"- {label}: none up to 200,000")


if __name__ == "__main__":
    main()
