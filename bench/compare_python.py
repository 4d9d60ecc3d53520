"""sinkhorn.SamplesLoss against the libraries a PyTorch user would pick instead, on the CPU (issue 13).

The quantity, for every method: the debiased Sinkhorn divergence of GeomLoss,
    S_eps(x, y) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2,
    OT_eps = min_P <C, P> + eps KL(P | a (x) b),  C(x, y) = |x - y|^2 / 2,  eps = blur^2,
uniform weights, and its gradient in x, both measured together (value + gradient, wall time).

Methods, each in its own process (its peak memory, the max RSS of that process, is its own):
  ours                 sinkhorn.SamplesLoss("sinkhorn", p=2, blur), float32, default tolerance 1e-4
                       (relative L1 marginal error), backend "auto"
  geomloss-tensorized  geomloss.SamplesLoss("sinkhorn", p=2, blur, backend="tensorized") at its
                       defaults (scaling 0.5, a fixed eps schedule, no tolerance), float32
  geomloss-online      the same with backend="online" / "multiscale": these run on KeOps; where
  geomloss-multiscale  pykeops is not installed the row says so
  pot                  ot.solve_sample(x, y, reg=eps, debias=True, grad="envelope") on torch
                       tensors, float32: log-domain Sinkhorn at eps (no eps-scaling), POT's defaults
                       (at most 1000 iterations, stop at 1e-9 on the L2 norm of the marginal error).
                       POT's "sqeuclidean" cost is |x - y|^2: it is given x / sqrt(2), y / sqrt(2)
                       (inside autograd), so the cost is |x - y|^2 / 2 and reg = eps: the same
                       S_eps and gradient. (Its older empirical_sinkhorn_divergence returns only
                       the linear parts <C, P>, not S_eps.)
  ott                  ott.tools.sinkhorn_divergence over ott.geometry.pointcloud.PointCloud, JAX on
                       the CPU, float32: cost_fn SqEuclidean (|x - y|^2) with scale_cost=2 (the
                       cost is divided by 2) and epsilon = eps, threshold 1e-4 on the L1 marginal
                       error (ours; OTT's default is 1e-3), its other defaults (at most 2000
                       iterations, no eps-scaling, the gradient by Danskin's theorem). Dense cost
                       matrices while they fit (--dense-limit-gb), else batch_size=1024 (online;
                       with jax.interpreters.batching.is_vmappable restored for OTT 0.6.0 on
                       JAX 0.10, which removed that export).
                       Its time is the compiled function's run; the jit compile is in the notes.
  reference            ours in float64 at tolerance 1e-7 (sinkhorn.solve, x float64 requiring
                       grad): the errors of every row are relative to it (value: |S - S_ref| / |S_ref|;
                       gradient: ||g - g_ref||_2 / ||g_ref||_2).

Clouds (N = M points in dimension D, two families, the same points for every method):
  blobs  two Gaussian blobs, bench/compare_cpu.py's make_points (seed N + D): diameter ~2-4 in any D
  cube   x uniform in the cube [0, s]^D, y a Gaussian blob 0.6 s + 0.15 s N(0, I), s = sqrt(3 / D)
         (the GPU benchmark's clouds in 3-D; the cube's diameter is sqrt(3) in any D)

Threads: 2 everywhere (torch.set_num_threads, OMP/MKL/OpenBLAS variables; JAX has no thread
setting, so it runs on the machine's cores: 2 on the development machine). Every process first
runs a tiny problem (library start-up, thread pools) before the timed call. A method whose time
at the previous size, scaled by (N / N_prev)^2, exceeds --timeout is skipped, as is a dense
method whose matrices would not fit in --dense-limit-gb; a run past --timeout is killed (the cap
is on the whole process: imports and OTT's jit compile included). The reference is skipped the
same way, against --reference-timeout; it runs at most --reference-max-iterations sweeps at the
final eps, and its note gives the marginal error it reached.
The machine may be shared: before each timed run the driver waits (up to --max-wait s) until other
processes use at most --quiet-cores cores, and each row shows the cores other processes used
during its timed section (machine busy time less the process's own CPU time). Two OpenMP or
PyTorch threads on 2 cores slow down many-fold when a third busy process takes one core away
(each parallel region waits for the descheduled thread), so rows with others' cores near 1 are
not comparable with quiet ones. Peak MB is the process's max RSS (Python, PyTorch and the
library's own imports included: the figure in brackets is the resident set before the timed call).

The runs of docs/benchmarks.md (POT alone on one family: it takes ~2 minutes at N = 1,000;
at N = 100,000 the reference stops after 100 sweeps at the final eps, to fit its time cap):
  nice -n 0 build/sinkhorn-python bench/compare_python.py --sizes 1000 5000 20000 --dims 3 64 \\
      --families blobs cube --methods ours geomloss-tensorized geomloss-online geomloss-multiscale ott \\
      --out /tmp/compare_python.md                                   # and /tmp/compare_python.json
  nice -n 0 build/sinkhorn-python bench/compare_python.py --sizes 1000 5000 --dims 3 64 \\
      --families blobs --methods pot --timeout 150 --max-wait 600 --out /tmp/compare_python_pot.md
  nice -n 0 build/sinkhorn-python bench/compare_python.py --sizes 100000 --dims 3 --families blobs \\
      --methods ours --timeout 300 --reference-max-iterations 100 --reference-timeout 300 \\
      --max-wait 600 --out /tmp/compare_python_100k.md
A quick check: build/sinkhorn-python bench/compare_python.py --sizes 500 --dims 3 --families cube

Runs under build/sinkhorn-python (the project's environment, /opt/sinkhorn/venv, with the built
package importable); GeomLoss, POT, OTT-JAX and JAX come from scripts/install-deps.sh --bench.
"""
import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_cpu import make_points as make_blobs, run_child  # noqa: E402  (same clouds, same child runner)

METHODS = ["ours", "geomloss-tensorized", "geomloss-online", "geomloss-multiscale", "pot", "ott"]
FAMILIES = ["blobs", "cube"]
# Bytes per N^2 pair that each dense method holds at its peak (float32 matrices: the three cost
# matrices, the log-sum-exp temporaries and what autograd keeps), measured at N = 2,000-5,000;
# used only to skip sizes that cannot fit.
DENSE_BYTES_PER_PAIR = {"geomloss-tensorized": 32, "pot": 180, "ott": 52}
OTT_BATCH_SIZE = 1024


def make_cube(n, d, seed):
    """x uniform in [0, s]^d, y a Gaussian blob off the centre, s = sqrt(3 / d)."""
    rng = np.random.default_rng(seed)
    side = math.sqrt(3.0 / d)
    x = rng.random((n, d)) * side
    y = (0.6 + 0.15 * rng.standard_normal((n, d))) * side
    return x.astype(np.float32), y.astype(np.float32)


def make_family(family, n, d):
    return make_blobs(n, d, seed=n + d) if family == "blobs" else make_cube(n, d, seed=7 * n + d)


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def resident_mb():
    """This process's resident set now (MB), after its imports and warm-up."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_ticks():
    """(busy, total) clock ticks of the whole machine so far (/proc/stat's first line)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def others_cores(seconds=1.0):
    """Cores kept busy by other processes over the next `seconds` (none of ours runs meanwhile)."""
    busy0, total0 = cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = cpu_ticks()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


class Timed:
    """Wall time of a block, and how many cores other processes used meanwhile: the machine's
    busy time less this process's own CPU time (all its threads), over the wall time."""

    def __enter__(self):
        self.busy, self.total = cpu_ticks()
        self.cpu = time.process_time()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        own = time.process_time() - self.cpu
        busy, total = cpu_ticks()
        cores = os.cpu_count() or 1
        machine_busy = cores * (busy - self.busy) / max(total - self.total, 1) * self.seconds
        self.others = max(machine_busy - own, 0.0) / self.seconds if self.seconds > 0 else 0.0
        return False


class Unavailable(Exception):
    """The method cannot run here (a missing package); reported as 'not run', not as a failure."""


# --- the methods (each runs in a child process) ----------------------------------------------

def run_ours(x, y, args):
    import torch
    import sinkhorn
    torch.set_num_threads(args.threads)
    loss = sinkhorn.SamplesLoss("sinkhorn", p=2, blur=args.blur)
    value, gradient, timed, base = time_module_loss(loss, x, y)
    info = loss.last_diagnostics
    note = f"{info['backend']}, {info['iterations']} sweeps" + ("" if info["converged"] else ", NOT converged")
    return value, gradient, timed, base, note


def time_module_loss(loss, x, y):
    """A SamplesLoss-like module's value and x-gradient on the NumPy clouds, after a tiny warm-up
    call (library start-up, thread pools): (value, gradient, timed section, resident MB before)."""
    import torch
    warm = torch.rand(64, x.shape[1], requires_grad=True)
    loss(warm, torch.rand(64, x.shape[1])).backward()
    x = torch.from_numpy(x).requires_grad_(True)
    y = torch.from_numpy(y)
    base = resident_mb()
    with Timed() as timed:
        value = loss(x, y)
        value.backward()
    return value.item(), x.grad.numpy(), timed, base


def run_reference(x, y, args):
    import torch
    import sinkhorn
    torch.set_num_threads(args.reference_threads or args.threads)
    x = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    y = torch.from_numpy(y.astype(np.float64))
    base = resident_mb()
    with Timed() as timed:
        solution = sinkhorn.solve(x, y, blur=args.blur, tolerance=args.reference_tolerance,
                                  max_iterations=args.reference_max_iterations)
        solution.value.backward()
    note = (f"float64, tol {args.reference_tolerance:g}, {solution.backend}, {solution.iterations} sweeps, "
            f"marginal error {solution.marginal_error:.1e}"
            + ("" if solution.converged else f" (stopped at {args.reference_max_iterations} sweeps)"))
    return solution.value.item(), x.grad.numpy(), timed, base, note


def run_geomloss(x, y, args, backend):
    import torch
    if backend != "tensorized":
        try:
            import pykeops  # noqa: F401
        except ImportError:
            raise Unavailable("pykeops is not installed (GeomLoss's online and multiscale backends are KeOps)")
    from geomloss import SamplesLoss
    torch.set_num_threads(args.threads)
    loss = SamplesLoss("sinkhorn", p=2, blur=args.blur, backend=backend)
    return (*time_module_loss(loss, x, y), "fixed eps schedule (scaling 0.5)")


def run_pot(x, y, args):
    import torch
    import ot
    torch.set_num_threads(args.threads)
    eps = args.blur ** 2
    half = 1.0 / math.sqrt(2.0)  # POT's sqeuclidean is |x - y|^2; |x/sqrt2 - y/sqrt2|^2 = |x - y|^2 / 2

    def divergence(x, y):
        return ot.solve_sample(x * half, y * half, reg=eps, debias=True, grad="envelope")

    warm = torch.rand(64, x.shape[1], requires_grad=True)
    divergence(warm, torch.rand(64, x.shape[1])).value.backward()
    x = torch.from_numpy(x).requires_grad_(True)
    y = torch.from_numpy(y)
    base = resident_mb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Timed() as timed:
            result = divergence(x, y)
            result.value.backward()
    # POT's result carries no iteration count here; sinkhorn_log warns when it stops at its cap.
    capped = sum("did not converge" in str(w.message) for w in caught)
    note = (f"log-domain Sinkhorn at eps; {capped} of 3 problems stopped at 1000 iterations"
            if capped else "log-domain Sinkhorn at eps; all 3 problems under tol 1e-9")
    return result.value.item(), x.grad.numpy(), timed, base, note


def run_ott(x, y, args):
    try:
        import jax
        import jax.numpy as jnp
        from jax._src.interpreters import batching as jax_batching
        from jax.interpreters import batching
        # OTT 0.6.0's batched point clouds use this name, no longer exported by JAX >= 0.9.2;
        # the function itself is unchanged inside JAX.
        if "is_vmappable" not in dir(batching):
            batching.is_vmappable = jax_batching.is_vmappable
        from ott.geometry import costs, pointcloud
        from ott.tools import sinkhorn_divergence
    except ImportError as missing:
        raise Unavailable(f"OTT-JAX is not installed ({missing})")
    n = x.shape[0]
    dense = DENSE_BYTES_PER_PAIR["ott"] * n * n <= args.dense_limit_gb * 1e9
    batch_size = None if dense else OTT_BATCH_SIZE
    eps = args.blur ** 2

    def divergence(x, y):
        value, out = sinkhorn_divergence.sinkhorn_divergence(
            pointcloud.PointCloud, x, y, cost_fn=costs.SqEuclidean(), scale_cost=2.0, epsilon=eps,
            batch_size=batch_size, solve_kwargs={"threshold": args.ott_threshold})
        return value, (out.n_iters, out.converged)

    value_and_grad = jax.jit(jax.value_and_grad(divergence, has_aux=True))
    warm = np.random.default_rng(0).random((2, 64, x.shape[1]), dtype=np.float32)
    jax.block_until_ready(value_and_grad(jnp.asarray(warm[0]), jnp.asarray(warm[1])))
    x, y = jnp.asarray(x), jnp.asarray(y)
    start = time.perf_counter()
    compiled = value_and_grad.lower(x, y).compile()
    compile_seconds = time.perf_counter() - start
    base = resident_mb()
    with Timed() as timed:
        (value, (iterations, converged)), grad = jax.block_until_ready(compiled(x, y))
    iterations = [int(i) for i in iterations]
    note = (f"{'dense' if dense else f'batch_size {batch_size}'}, threshold {args.ott_threshold:g}, "
            f"{'/'.join(map(str, iterations))} iterations (xy/xx/yy)"
            + ("" if all(bool(c) for c in converged) else ", NOT converged")
            + f"; + {compile_seconds:.1f} s jit compile")
    return float(value), np.asarray(grad), timed, base, note


def child(args):
    method, points_path, grad_path = args.child
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    with np.load(points_path) as points:
        x, y = points["x"], points["y"]
    try:
        if method == "ours":
            result = run_ours(x, y, args)
        elif method == "reference":
            result = run_reference(x, y, args)
        elif method.startswith("geomloss-"):
            result = run_geomloss(x, y, args, method.split("-", 1)[1])
        elif method == "pot":
            result = run_pot(x, y, args)
        elif method == "ott":
            result = run_ott(x, y, args)
        else:
            raise Unavailable(f"unknown method {method}")
    except Unavailable as reason:
        print(json.dumps({"unavailable": str(reason)}))
        return
    except Exception as error:  # the exception itself, not the last line of a long traceback
        print(json.dumps({"failed": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}))
        return
    value, grad, timed, base, note = result
    np.save(grad_path, np.asarray(grad, dtype=np.float64))
    print(json.dumps({"value": value, "seconds": timed.seconds, "others_cores": timed.others, "base_mb": base,
                      "note": note}))


# --- the driver ------------------------------------------------------------------------------

def measure(method, points_path, grad_path, args, timeout):
    """Runs one method in its own process; returns its record (value, seconds, peak MB, ...)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", method, points_path, grad_path,
               "--threads", str(args.threads), "--blur", str(args.blur),
               "--reference-tolerance", str(args.reference_tolerance),
               "--reference-max-iterations", str(args.reference_max_iterations),
               "--reference-threads", str(args.reference_threads),
               "--ott-threshold", str(args.ott_threshold), "--dense-limit-gb", str(args.dense_limit_gb)]
    waited = 0.0
    while method != "reference" and waited < args.max_wait:
        busy = others_cores(1.0)
        if busy <= args.quiet_cores:
            break
        time.sleep(4.0)
        waited += 5.0
    load_before = load_average()
    try:
        stdout, wall, peak_mb = run_child(command, timeout)
    except RuntimeError as failure:
        status = "timeout" if "timed out" in str(failure) else "failed"
        return {"status": status, "reason": str(failure), "load": [load_before, load_average()]}
    record = json.loads(stdout.strip().splitlines()[-1])
    if "unavailable" in record:
        return {"status": "not run", "reason": record["unavailable"]}
    if "failed" in record:
        return {"status": "failed", "reason": record["failed"]}
    record.update(status="ok", peak_mb=peak_mb, process_seconds=wall, load=[load_before, load_average()],
                  waited=waited, grad=np.load(grad_path))
    return record


def skip_reason(method, n, d, history, args, cap):
    """Why a method is not run at this size, or None: memory of a dense method, or a time
    predicted from the last size measured above its time cap. The prediction is quadratic in N,
    but for this library in D <= 3, whose multiscale backend grew as N^1.2 from 1,000 to 5,000
    points (8.6 s -> 55 s for the reference)."""
    if method in DENSE_BYTES_PER_PAIR and method != "ott":  # OTT switches to batches instead
        need = DENSE_BYTES_PER_PAIR[method] * n * n / 1e9
        if need > args.dense_limit_gb:
            return f"needs ~{need:.0f} GB of N x N matrices (> {args.dense_limit_gb:g} GB)"
    last = history.get(method)
    if last is None:
        return None
    last_n, last_seconds, last_status = last
    if last_status == "timeout":
        return f"timed out (> {cap:g} s) at N = {last_n}"
    exponent = 1.2 if method in ("ours", "reference") and d <= 3 else 2.0
    predicted = last_seconds * (n / last_n) ** exponent
    if predicted > cap:
        return f"predicted ~{predicted:.0f} s from {last_seconds:.1f} s at N = {last_n} (cap {cap:g} s)"
    return None


def versions():
    """The libraries' versions, read in a child: the driver must stay small, since a child's max RSS
    starts from its parent's resident set at fork (Linux carries the old hiwater mark across exec)."""
    script = """
import json, platform
found = {"python": platform.python_version()}
for name, module in (("torch", "torch"), ("sinkhorn", "sinkhorn"), ("geomloss", "geomloss"), ("pot", "ot"),
                     ("ott-jax", "ott"), ("jax", "jax"), ("pykeops", "pykeops")):
    try:
        found[name] = __import__(module).__version__
    except Exception as missing:  # a peer that is not installed is reported, not fatal
        found[name] = "not installed (" + type(missing).__name__ + ")"
print(json.dumps(found))
"""
    return json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def fmt_error(value):
    return "" if value is None else f"{value:.1e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 64])
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120, help="per-method time cap, seconds")
    parser.add_argument("--reference-timeout", type=float, default=150)
    parser.add_argument("--reference-tolerance", type=float, default=1e-7)
    parser.add_argument("--reference-max-iterations", type=int, default=2000,
                        help="sweeps at the final eps allowed to the reference (its reached marginal error is shown)")
    parser.add_argument("--reference-threads", type=int, default=0, help="threads of the reference (0: --threads)")
    parser.add_argument("--quiet-cores", type=float, default=0.5,
                        help="before each timed run, wait until other processes use at most this many cores...")
    parser.add_argument("--max-wait", type=float, default=30, help="...or this many seconds")
    parser.add_argument("--ott-threshold", type=float, default=1e-4)
    parser.add_argument("--dense-limit-gb", type=float, default=12)
    parser.add_argument("--out", default=None, help="write the markdown table here, and the JSON beside it (.json)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    started = datetime.datetime.now()
    header = [
        f"Command: `{' '.join(['build/sinkhorn-python'] + [os.path.relpath(sys.argv[0])] + sys.argv[1:])}`",
        f"Started {started:%Y-%m-%d %H:%M}; machine: {cpu_model()}, {os.cpu_count()} cores; threads {args.threads}; "
        f"blur {args.blur} (eps {args.blur ** 2:g}); per-method cap {args.timeout:g} s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
    ]
    print("\n".join(header), flush=True)
    rows = ["| family | N = M | D | method | seconds (others' cores) | peak MB (before the call) | S_eps "
            "| rel. error of S_eps | rel. error of grad | notes |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    records = []
    loads = []
    busy = []  # cores used by other processes during each timed section
    with tempfile.TemporaryDirectory() as directory:
        points_path = os.path.join(directory, "points.npz")
        grad_path = os.path.join(directory, "grad.npy")
        for family in args.families:
            for d in args.dims:
                history = {}  # method -> (N, seconds, status) at the last size run
                for n in args.sizes:
                    x, y = make_family(family, n, d)
                    np.savez(points_path, x=x, y=y)
                    skipped = {method: skip_reason(method, n, d, history, args, args.timeout)
                               for method in args.methods}
                    reason = skip_reason("reference", n, d, history, args, args.reference_timeout)
                    if all(skipped.values()):
                        reason = "every method is skipped at this size"
                    reference = (measure("reference", points_path, grad_path, args, args.reference_timeout)
                                 if not reason else {"status": "skipped", "reason": reason})
                    cases = [("reference", reference)]
                    for method in args.methods:
                        if skipped[method]:
                            cases.append((method, {"status": "skipped", "reason": skipped[method]}))
                            continue
                        cases.append((method, measure(method, points_path, grad_path, args, args.timeout)))
                    for method, record in cases:
                        if record["status"] in ("ok", "timeout"):
                            cap = args.reference_timeout if method == "reference" else args.timeout
                            history[method] = (n, record.get("seconds", cap), record["status"])
                    for method, record in cases:
                        row = f"| {family} | {n} | {d} | {method} |"
                        entry = {"family": family, "n": n, "d": d, "method": method, "status": record["status"]}
                        if record["status"] != "ok":
                            entry["reason"] = record["reason"]
                            row += f" {record['status']}: {record['reason']} | | | | | |"
                        else:
                            value_error = grad_error = None
                            if reference["status"] == "ok" and method != "reference":
                                value_error = abs(record["value"] - reference["value"]) / abs(reference["value"])
                                grad_error = float(np.linalg.norm(record["grad"] - reference["grad"])
                                                   / np.linalg.norm(reference["grad"]))
                            entry.update(value=record["value"], seconds=record["seconds"],
                                         process_seconds=record["process_seconds"], peak_mb=record["peak_mb"],
                                         base_mb=record["base_mb"], value_error=value_error,
                                         grad_error=grad_error, note=record["note"], load=record["load"],
                                         others_cores=record["others_cores"], waited=record["waited"])
                            loads += record["load"]
                            busy.append(record["others_cores"])
                            row += (f" {record['seconds']:.3g} ({record['others_cores']:.1f}) |"
                                    f" {record['peak_mb']:.0f} ({record['base_mb']:.0f}) |"
                                    f" {record['value']:.7g} | {fmt_error(value_error)} | {fmt_error(grad_error)} |"
                                    f" {record['note']} |")
                        print(row, flush=True)
                        rows.append(row)
                        records.append(entry)
    finished = datetime.datetime.now()
    summary = (f"Finished {finished:%H:%M} ({(finished - started).total_seconds() / 60:.1f} min); 1-minute load "
               f"average before/after each timed run: {min(loads, default=0):.2f} to {max(loads, default=0):.2f}; "
               f"cores used by other processes during the timed sections: {min(busy, default=0):.1f} to "
               f"{max(busy, default=0):.1f} (median {float(np.median(busy)) if busy else 0:.1f}).")
    print(summary)
    if args.out:
        with open(args.out, "w") as out:
            out.write("\n".join(header + [summary, ""] + rows) + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as out:
            json.dump({"header": header, "summary": summary, "arguments": vars(args), "rows": records}, out, indent=1)


if __name__ == "__main__":
    main()
