"""Sharded solves over torch.distributed (Gloo, 127.0.0.1): P ranks, each holding a block of rows,
must give the single-process values, potentials and gradients (float64, 1e-8 relative; envelope
and unrolled), with uneven blocks and a rank holding very few rows; bad inputs fail every rank
with a ValueError."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import sinkhorn

HERE = os.path.dirname(os.path.abspath(__file__))
RELATIVE = 1e-8


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(ranks, data, cases, folder, timeout=240):
    """Starts `ranks` worker processes, waits (bounded) and returns each rank's results."""
    np.savez(folder / "inputs.npz", **data)
    (folder / "cases.json").write_text(json.dumps(cases))
    port = free_port()
    processes = []
    for rank in range(ranks):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(ranks), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "distributed_worker.py"), str(folder / "inputs.npz"),
             str(folder / "cases.json"), str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for rank, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output}"
    return [dict(np.load(folder / f"rank{rank}.npz")) for rank in range(ranks)]


def clouds(n=61, m=47, d=3, seed=11):
    generator = np.random.default_rng(seed)
    a, b = generator.random(n) + 0.3, generator.random(m) + 0.3
    return dict(x=generator.normal(size=(n, d)), y=generator.random((m, d)) * 1.5 + 0.2,
                a=a / a.sum(), b=b / b.sum())


def single_process(data, case):
    """The same case in this process: value, F, G and gradients (the default options: a sharded
    solve takes the one process's corrected sweeps too, docs/numerics.md)."""
    tensors = {k: torch.from_numpy(v).clone().requires_grad_() for k, v in data.items()}
    names = ["a", "x", "b", "y"] if case.get("weights", True) else ["x", "y"]
    inputs = [tensors[name] for name in names]
    value = sinkhorn.SamplesLoss(**case["options"])(*inputs)
    gradients = torch.autograd.grad(value, inputs)
    F, G = sinkhorn.SamplesLoss(**case["options"], potentials=True)(*inputs)
    # GeomLoss's (1, N) potentials of one pair of clouds, joined along their points.
    expected = {"value": value.detach().numpy(), "F": F.reshape(-1).numpy(), "G": G.reshape(-1).numpy()}
    expected.update({f"grad_{name}": g.numpy() for name, g in zip(names, gradients)})
    return expected


def close(actual, expected, what):
    scale = max(np.abs(expected).max(), 1e-300)
    error = np.abs(actual - expected).max() / scale
    assert error <= RELATIVE, f"{what}: relative error {error:.3g}"


def check_against_one_process(results, data, cases):
    for index, case in enumerate(cases):
        if case.get("expect_error"):
            continue
        expected = single_process(data, case)
        for rank, result in enumerate(results):
            close(result[f"{index}/value"], expected["value"], f"case {index} value on rank {rank}")
            assert int(result[f"{index}/world_size"]) == len(results)
        for key in expected:
            if key == "value":
                continue
            joined = np.concatenate([result[f"{index}/{key}"] for result in results])
            close(joined, expected[key], f"case {index} {key} ({case['options']})")


def test_two_ranks_match_one_process(tmp_path):
    data = clouds()
    n, m = len(data["x"]), len(data["y"])
    cases = [
        # The debiased divergence, tensorized beneath, even blocks.
        dict(options=dict(blur=0.1), x_counts=[31, 30], y_counts=[24, 23]),
        # OT_eps, unbalanced, p = 1, online beneath, uneven blocks, uniform weights.
        dict(options=dict(blur=0.2, p=1, reach=0.7, debias=False, backend="online"), x_counts=[5, n - 5],
             y_counts=[m - 9, 9], weights=False),
        # The paper's fixed-L mode (envelope gradients of the L-sweep potentials' value).
        dict(options=dict(blur=0.3, iterations=25, gradient="envelope"), x_counts=[40, n - 40], y_counts=[20, m - 20]),
        # Unrolled gradients through the sharded iterations (autograd across the all-gathers).
        dict(options=dict(blur=0.2, gradient="unrolled", tolerance=1e-6), x_counts=[31, 30], y_counts=[7, m - 7]),
        # The paper's E_eps with L = 10 unrolled sweeps.
        dict(options=dict(loss="primal", blur=0.5, iterations=10), x_counts=[3, n - 3], y_counts=[24, 23]),
    ]
    results = run_ranks(2, data, cases, tmp_path)
    check_against_one_process(results, data, cases)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu/check.sh runs it on a lent one)")
def test_two_ranks_on_cuda_tensors_match_one_process(tmp_path):
    # The sharded solve over the CUDA reducers (both ranks on one GPU: Gloo, since NCCL takes one
    # GPU per rank), against one CPU process in float64.
    data = clouds()
    n, m = len(data["x"]), len(data["y"])
    cases = [
        dict(options=dict(blur=0.1), x_counts=[31, 30], y_counts=[24, 23], device="cuda"),
        dict(options=dict(blur=0.2, p=1, backend="online"), x_counts=[5, n - 5], y_counts=[m - 9, 9], device="cuda"),
        dict(options=dict(blur=0.2, gradient="unrolled", tolerance=1e-6), x_counts=[31, 30], y_counts=[7, m - 7],
             device="cuda"),
    ]
    results = run_ranks(2, data, cases, tmp_path)
    check_against_one_process(results, data, cases)


def test_three_ranks_with_a_rank_holding_few_rows(tmp_path):
    data = clouds(n=80, m=57, d=5, seed=4)
    n, m = len(data["x"]), len(data["y"])
    cases = [
        dict(options=dict(blur=0.05, backend="online"), x_counts=[2, 40, n - 42], y_counts=[30, 1, m - 31]),
        dict(options=dict(blur=0.5, scaling=0.8), x_counts=[n - 2, 1, 1], y_counts=[1, m - 2, 1]),
    ]
    results = run_ranks(3, data, cases, tmp_path)
    check_against_one_process(results, data, cases)


def test_bad_inputs_fail_every_rank(tmp_path):
    data = clouds(n=20, m=16)
    cases = [
        # The multiscale backend's truncation is one process's: refused on every rank, naming it.
        dict(options=dict(blur=0.1, backend="multiscale"), x_counts=[10, 10], y_counts=[8, 8], expect_error=True),
        # Balanced transport between the unions' unequal masses (a is given as raw ones).
        dict(options=dict(blur=0.1, loss="sinkhorn"), x_counts=[10, 10], y_counts=[8, 8], expect_error=True,
             unnormalised=True),
        # The ranks were given different options: each names the option, its values and the ranks.
        dict(options=dict(blur=0.1), rank_options={"1": dict(p=1)}, x_counts=[10, 10], y_counts=[8, 8],
             expect_error=True),
        dict(options=dict(blur=0.1), rank_options={"1": dict(tolerance=1e-2)}, x_counts=[10, 10], y_counts=[8, 8],
             expect_error=True),
        # A rank that refuses its own inputs is named by the others, with its reason.
        dict(options=dict(blur=0.1), nan_on_rank=1, x_counts=[10, 10], y_counts=[8, 8], expect_error=True),
    ]
    results = run_ranks(2, data, cases, tmp_path)
    for rank, result in enumerate(results):
        assert str(result["0/error"]).startswith("backend:") and "one process" in str(result["0/error"])
        assert "same total mass" in str(result["1/error"]), result["1/error"]
        assert str(result["2/error"]) == ("p: differs between the ranks: 2 on rank 0, 1 on rank 1; every rank must "
                                          "solve the same problem"), result["2/error"]
        assert str(result["3/error"]).startswith("tolerance: differs between the ranks: 0.0001 on rank 0, 0.01")
        error = str(result["4/error"])
        assert error == ("x: contains NaN or infinite values" if rank == 1 else
                         "rank 1 refused its inputs: x contains NaN or infinite values"), error


def test_process_group_must_be_a_group():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="process_group"):
        sinkhorn.SamplesLoss(process_group="world")(x, x)


BINARY = os.path.join(HERE, "..", "..", "build", "sinkhorn")


def launch_cli(ranks, arguments, port, **popen):
    """`sinkhorn ARGUMENTS` as torchrun would start it: one process per rank with its environment."""
    processes = []
    for rank in range(ranks):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(ranks), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        processes.append(subprocess.Popen([BINARY] + arguments, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, **popen))
    return processes


def finish(processes, timeout):
    try:
        return [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_listener_that_is_not_a_rank_ends_the_rendezvous_within_the_timeout(tmp_path):
    """A program on MASTER_PORT that accepts and never answers: the rank gives up after --timeout
    (it used to wait forever in TCPStore's handshake)."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(8, 2)))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        env = dict(os.environ, RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        start = time.monotonic()
        [process] = [subprocess.Popen([BINARY, "divergence", str(tmp_path / "x.npy"), str(tmp_path / "x.npy"),
                                       "--timeout", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)]
        [(out, err)] = finish([process], timeout=30)
    assert process.returncode == 3, err
    assert time.monotonic() - start < 15
    assert "does not answer as rank 0's store" in err


def test_command_line_ranks_that_disagree_all_exit_2_naming_why(tmp_path):
    """Each rank's own flags and files are compared before any solve: a differing option, other
    files, or a rank that cannot read its file end every rank with status 2 and one line (they
    used to print a mixed value, abort with 134, or leave rank 0 waiting for the timeout)."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    generator = np.random.default_rng(1)
    for name in ("x", "y", "other"):
        np.save(tmp_path / f"{name}.npy", generator.normal(size=(12, 2)))
    x, y, other = (str(tmp_path / f"{name}.npy") for name in ("x", "y", "other"))
    common = ["--threads", "1", "--timeout", "20"]
    cases = [
        ([x, y, "--p", "1"], "--p differs between the ranks: 2 on rank 0, 1 on rank 1"),
        ([x, y, "--tolerance", "1e-2"], "--tolerance differs between the ranks"),
        ([x, y, "--loss", "energy"], "--loss differs between the ranks: divergence on rank 0, energy on rank 1"),
        ([other, y], "X differs between the ranks: content"),
        ([str(tmp_path / "missing.npy"), y], None),
    ]
    for rank1_arguments, message in cases:
        port = free_port()
        processes = []
        for rank, arguments in enumerate(([x, y], rank1_arguments)):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
            processes.append(subprocess.Popen([BINARY, "divergence"] + arguments + common, env=env,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        start = time.monotonic()
        outputs = finish(processes, timeout=60)
        assert time.monotonic() - start < 15, rank1_arguments
        for rank, (process, (out, err)) in enumerate(zip(processes, outputs)):
            assert process.returncode == 2, (rank1_arguments, rank, err)
            assert out == "" and err.count("\n") == 1, err
            if message is None:  # the rank that could not read names its file, the other names that rank
                expected = "cannot open" if rank == 1 else "rank 1 refused its inputs: cannot open"
                assert expected in err and "missing.npy" in err, err
            else:
                assert message in err, (rank1_arguments, err)


@pytest.mark.parametrize("ranks", [2, 3])
def test_command_line_under_torchrun_matches_one_process(tmp_path, ranks):
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    data = clouds(n=101, m=77, d=4, seed=ranks)
    for name in ("x", "y", "a", "b"):
        np.save(tmp_path / f"{name}.npy", data[name])
    common = [str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--wx", str(tmp_path / "a.npy"), "--wy",
              str(tmp_path / "b.npy"), "--blur", "0.1", "--json", "--threads", "1", "--backend", "online"]
    single = subprocess.run([BINARY, "divergence"] + common + ["--grad-x", str(tmp_path / "gx1.npy"), "--grad-y",
                            str(tmp_path / "gy1.npy")], capture_output=True, text=True, check=True, timeout=120)
    expected = json.loads(single.stdout)
    processes = launch_cli(ranks, ["divergence"] + common + ["--grad-x", str(tmp_path / "gxP.npy"), "--grad-y",
                                                              str(tmp_path / "gyP.npy"), "--timeout", "30"], free_port())
    outputs = finish(processes, timeout=120)
    for rank, (process, (out, err)) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"rank {rank}: {err}"
        assert (out == "") == (rank > 0), f"rank {rank} printed {out!r}"
    result = json.loads(outputs[0][0])
    assert result["world_size"] == ranks and result["n"] == 101 and result["m"] == 77
    assert abs(result["value"] - expected["value"]) <= RELATIVE * abs(expected["value"])
    assert result["iterations"] == expected["iterations"]
    for name in ("gx", "gy"):
        close(np.load(tmp_path / f"{name}P.npy"), np.load(tmp_path / f"{name}1.npy"), f"{name} with {ranks} ranks")


@pytest.mark.parametrize("lost", ["killed", "stopped"])
def test_a_lost_rank_ends_the_others_within_the_timeout(tmp_path, lost):
    """Rank 1 is killed (SIGKILL) or stopped (SIGSTOP) in the middle of a solve: rank 0 must end
    with exit status 3 and a message naming rank 1, within the --timeout of 4 s plus the time to
    diagnose, never hang."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    generator = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", generator.normal(size=(6000, 8)))
    np.save(tmp_path / "y.npy", generator.random((6000, 8)))
    arguments = ["divergence", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--blur", "0.01", "--threads", "1",
                 "--backend", "online", "--timeout", "4", "--tolerance", "1e-7", "--max-iterations", "100000"]
    processes = launch_cli(2, arguments, free_port())

    def under_way():
        time.sleep(3.0)  # rendezvous done, the solve under way
        assert processes[0].poll() is None and processes[1].poll() is None, "the solve ended before the fault"

    lose_rank_one(processes, signal.SIGKILL if lost == "killed" else signal.SIGSTOP, under_way, timeout=4)


def lose_rank_one(processes, how, wait_until_ready, timeout):
    """Sends `how` to rank 1 once `wait_until_ready` returns; rank 0 must then end with status 3
    naming rank 1 within `timeout` (its --timeout) plus 10 s, never hang. Every process is reaped."""
    try:
        wait_until_ready()
        processes[1].send_signal(how)
        start = time.monotonic()
        _, err = processes[0].communicate(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert processes[0].returncode == 3, err
    assert "lost rank 1" in err, err
    assert elapsed < timeout + 10, f"rank 0 took {elapsed:.1f} s to end"


def samples_of(run, folder):
    path = folder / f"{run.name}.npy"
    subprocess.run([BINARY, "sample", "--checkpoint", str(run), "--out", str(path), "--n", "256"], check=True,
                   capture_output=True, timeout=120)
    return np.load(path)


def test_two_rank_training_follows_one_rank_and_resumes_with_any_count(tmp_path):
    """sinkhorn train under a torchrun environment: 2 ranks end where 1 rank ends (the generators'
    samples to 1e-5 relative), and a 2-rank run resumed by 1 rank ends there too (a constant rate:
    the toys' cosine schedule depends on the run's length)."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    common = ["train", "--data", "ring8", "--batch-size", "150", "--eval-every", "1000", "--eval-samples", "200",
              "--threads", "1", "--checkpoint-every", "8", "--timeout", "60", "--lr-schedule", "constant"]
    single = subprocess.run([BINARY] + common + ["--steps", "16", "--out", str(tmp_path / "one"), "--timings"],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    # --timings: one line of the steps' phases (one process: no rank named; the split's gather is 0).
    timing = re.search(r"sinkhorn train: time per step over 16 steps, in ms: generate ([0-9.]+), .*solve ([0-9.]+), "
                       r".*total ([0-9.]+)", single.stderr)
    assert timing, single.stderr
    assert 0 < float(timing.group(2)) < float(timing.group(3)), single.stderr
    two = launch_cli(2, common + ["--steps", "16", "--out", str(tmp_path / "two")], free_port())
    outputs = finish(two, timeout=300)
    for rank, (process, (out, err)) in enumerate(zip(two, outputs)):
        assert process.returncode == 0, f"rank {rank}: {err}"
    assert not (tmp_path / "two" / "metrics.csv").read_text() == "" and outputs[1] == ("", "")
    # The plan of the data-parallel solve, said once by rank 0: a batch of 150 is gathered (auto
    # splits its problems over the ranks or not, from the group's latency measured then; the
    # sharded plan's collectives every sweep would cost 300 times what it saves).
    assert outputs[0][1].count("data-parallel solve, auto:") == 1, outputs[0][1]
    assert "the batch is gathered once per step" in outputs[0][1], outputs[0][1]
    # Each plan, asked for, follows one rank as well.
    for plan in ("split", "gathered", "sharded"):
        other = launch_cli(2, common + ["--steps", "16", "--out", str(tmp_path / plan),
                                        "--data-parallel-solve", plan], free_port())
        for process, (out, err) in zip(other, finish(other, timeout=300)):
            assert process.returncode == 0, err
    half = launch_cli(2, common + ["--steps", "8", "--out", str(tmp_path / "resumed")], free_port())
    for process, (out, err) in zip(half, finish(half, timeout=300)):
        assert process.returncode == 0, err
    resumed = subprocess.run([BINARY, "train", "--resume", "--out", str(tmp_path / "resumed"), "--steps", "16",
                              "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected = samples_of(tmp_path / "one", tmp_path)
    scale = np.abs(expected).max()
    for run in ("two", "split", "gathered", "sharded", "resumed"):
        error = np.abs(samples_of(tmp_path / run, tmp_path) - expected).max() / scale
        assert error <= 1e-5, f"{run}: samples differ from one rank's by {error:.3g} (relative)"
    # The loss column: the whole batch's loss on every step, as in one process.
    losses = []
    for run in ("one", "two"):
        rows = [line.split(",") for line in (tmp_path / run / "metrics.csv").read_text().splitlines()[1:]]
        losses.append([float(row[1]) for row in rows if row[1]])
    assert len(losses[0]) >= 2
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_a_rank_lost_during_training_ends_the_run_and_keeps_its_checkpoint(tmp_path):
    """Rank 1 of a 2-rank `sinkhorn train` is killed after the first checkpoints: rank 0 must end
    with status 3 naming it, within --timeout plus the diagnosis, and the checkpoint it wrote must
    stay good (verified by `sinkhorn sample`, which checks every entry) and resumable."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    out = tmp_path / "run"
    arguments = ["train", "--data", "ring8", "--batch-size", "100", "--steps", "1000000", "--eval-every", "1000000",
                 "--checkpoint-every", "3", "--threads", "1", "--timeout", "5", "--out", str(out)]
    processes = launch_cli(2, arguments, free_port())

    def checkpointed():
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            assert processes[0].poll() is None, processes[0].communicate()[1]
            time.sleep(0.2)
        time.sleep(1.0)

    lose_rank_one(processes, signal.SIGKILL, checkpointed, timeout=5)
    samples_of(out, tmp_path)  # raises if the checkpoint is not intact
    probe = subprocess.Popen([BINARY, "train", "--resume", "--out", str(out), "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = probe.stdout.readline()  # "resuming <out> at step K of N": the folder and checkpoint took it
    finally:
        probe.send_signal(signal.SIGTERM)
        probe.communicate(timeout=60)
    assert line.startswith("resuming"), line
    assert probe.returncode in (0, 128 + signal.SIGTERM)


def test_a_stop_request_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """SIGTERM to rank 1 of a 2-rank `sinkhorn train`: the request rides on the next gradient
    all-reduce, so both ranks stop at the start of the same step (rank 1 with 143, rank 0, stopped
    by its peer, as interrupted: 130), rank 0 writes that step's checkpoint, and the run resumes."""
    if not os.path.exists(BINARY):
        pytest.skip("no build/sinkhorn next to this package")
    out = tmp_path / "run"
    arguments = ["train", "--data", "ring8", "--batch-size", "100", "--steps", "1000000", "--eval-every", "1000000",
                 "--checkpoint-every", "1000000", "--log-every", "1", "--threads", "1", "--timeout", "20",
                 "--out", str(out)]
    processes = launch_cli(2, arguments, free_port())
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.csv").exists() or len((out / "metrics.csv").read_text().splitlines()) < 5:
            assert time.monotonic() < deadline, "no steps logged within 120 s"
            assert processes[0].poll() is None, processes[0].communicate()[1]
            time.sleep(0.2)
        processes[1].send_signal(signal.SIGTERM)
        outputs = finish(processes, timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert processes[1].returncode == 128 + signal.SIGTERM, outputs[1][1]
    assert processes[0].returncode == 128 + signal.SIGINT, outputs[0][1]
    # Rank 1 says only that it took the signal (ranks other than 0 print nothing else).
    assert outputs[1][0] == "" and outputs[1][1].strip().startswith("sinkhorn train: SIGTERM: stopping after this step"), outputs[1]
    stopped = re.search(r"interrupted at step (\d+); checkpoint saved", outputs[0][1])
    assert stopped, outputs[0][1]
    step = int(stopped.group(1))
    # Rank 0 logged every step up to that one and none after it: the ranks stopped together
    # (a rank that went on alone would have waited in a collective until the timeout, status 3).
    logged = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[2:]]
    assert logged[-1] == step, (logged[-3:], step)
    probe = subprocess.Popen([BINARY, "train", "--resume", "--out", str(out), "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = probe.stdout.readline()
    finally:
        probe.send_signal(signal.SIGTERM)
        probe.communicate(timeout=60)
    assert line.startswith(f"resuming {out} at step {step} "), line


def test_the_distributed_flow_example_follows_one_process(tmp_path):
    """examples/python/distributed_flow.py on 2 ranks prints the S_eps a single rank prints, step
    by step (the union's loss, each rank moving its own particles), and only rank 0 prints."""
    script = os.path.join(HERE, "..", "..", "examples", "python", "distributed_flow.py")

    def run(ranks):
        port = free_port()
        processes = [subprocess.Popen([sys.executable, script, "--steps", "6", "-n", "300"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, RANK=str(r), WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                                               MASTER_PORT=str(port)))
                     for r in range(ranks)]
        outputs = finish(processes, timeout=120)
        for process, (out, err) in zip(processes, outputs):
            assert process.returncode == 0, err
        assert all(out == "" for out, _ in outputs[1:])
        return [float(v) for v in re.findall(r"S_eps (\S+)", outputs[0][0])]

    one, two = run(1), run(2)
    assert len(one) == 7 and all(later < earlier for earlier, later in zip(one, one[1:])), one
    np.testing.assert_allclose(two, one, rtol=1e-4)
