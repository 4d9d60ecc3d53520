"""One rank of the sharded-solve tests (test_distributed.py starts P of them on 127.0.0.1).

argv: inputs.npz, cases.json, output folder. Each rank takes its rows of the clouds (the blocks
given per case), solves every case with SamplesLoss(process_group=...), and saves its value,
potentials and gradients; the test joins the ranks' rows and compares them with one process."""
import datetime
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

import sinkhorn


def block(values, counts, rank):
    begin = sum(counts[:rank])
    return values[begin:begin + counts[rank]]


def main(inputs_path, cases_path, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, group = dist.get_rank(), dist.group.WORLD
    data = np.load(inputs_path)
    results = {}
    for index, case in enumerate(json.load(open(cases_path))):
        # A case may give one rank other options (the ranks must then refuse together).
        options = {**case["options"], **case.get("rank_options", {}).get(str(rank), {})}
        device = case.get("device", "cpu")  # "cuda": every rank on cuda:0, Gloo copying through the host
        rows = lambda name, counts: torch.from_numpy(block(data[name], counts, rank)).to(device)
        x = rows("x", case["x_counts"])
        if case.get("nan_on_rank") == rank:
            x = x.clone()
            x[0, 0] = float("nan")
        x = x.requires_grad_()
        y = rows("y", case["y_counts"]).requires_grad_()
        if case.get("weights", True):
            a = rows("a", case["x_counts"])
            a = (a * len(data["a"]) if case.get("unnormalised") else a).requires_grad_()
            b = rows("b", case["y_counts"]).requires_grad_()
            inputs = [a, x, b, y]
        else:
            inputs = [x, y]
        if case.get("expect_error"):
            try:
                sinkhorn.SamplesLoss(**options, process_group=group)(*inputs)
            except ValueError as error:
                results[f"{index}/error"] = np.array(str(error))
            continue
        value = sinkhorn.SamplesLoss(**options, process_group=group)(*inputs)
        gradients = torch.autograd.grad(value, inputs)
        F, G = sinkhorn.SamplesLoss(**options, potentials=True, process_group=group)(*inputs)
        solution = sinkhorn.solve(x.detach(), y.detach(), process_group=group,
                                  **{k: v for k, v in options.items() if k in ("blur", "p", "reach", "backend")})
        results[f"{index}/value"] = value.detach().cpu().numpy()
        results[f"{index}/F"] = F.reshape(-1).cpu().numpy()  # (1, n): this rank's points
        results[f"{index}/G"] = G.reshape(-1).cpu().numpy()
        results[f"{index}/world_size"] = np.array(solution.world_size)
        names = ["a", "x", "b", "y"] if len(inputs) == 4 else ["x", "y"]
        for name, gradient in zip(names, gradients):
            results[f"{index}/grad_{name}"] = gradient.cpu().numpy()
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
