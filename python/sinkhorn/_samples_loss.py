"""sinkhorn.SamplesLoss: GeomLoss 0.2.6's SamplesLoss, argument for argument, on this library."""
import warnings

import torch

from ._arguments import check_number, fail
from ._convergence import check_on_unconverged, report_convergence
from ._ragged import ragged_inputs, solve_packed, unpack
from . import _ops
from ._solve import OPTION_TABLE, checked_options, option_docs, run

_KERNELS = ("energy", "gaussian", "laplacian", "gaussian_mixture")
_TRANSPORT = ("sinkhorn", "primal", "ot")
_LIBRARY_NAMES = {"divergence": "sinkhorn", "ot_eps": "sinkhorn"}


class IgnoredArgumentWarning(UserWarning):
    """An argument GeomLoss takes that this library ignores (SamplesLoss's truncate): silence it with
    warnings.filterwarnings("ignore", category=sinkhorn.IgnoredArgumentWarning)."""


class SamplesLoss(torch.nn.Module):
    """A loss between weighted point clouds, with GeomLoss's signature and conventions.

    SamplesLoss(loss="sinkhorn", p=2, blur=0.05, reach=None, diameter=None, scaling=0.5, truncate=5,
                cost=None, kernel=None, cluster_scale=None, debias=True, potentials=False,
                verbose=False, backend="auto", *, tolerance=1e-4, max_iterations=1000,
                iterations=None, gradient="auto", coarse_correction=True, process_group=None,
                on_unconverged="warn")

    loss: "sinkhorn" (S_eps with debias=True, OT_eps with debias=False), "energy", "gaussian",
        "laplacian" (GeomLoss's kernel losses, same values), and this library's "primal" (the
        paper's E_eps), "ot" (exact OT, small clouds), "gaussian_mixture" (MMD GAN's kernel).
    GeomLoss's own arguments: truncate (its multiscale truncation, ignored: the multiscale backend
        here bounds the mass it neglects itself; a value other than 5 or None warns once per
        calling line with sinkhorn.IgnoredArgumentWarning); cost, kernel (only None: the
        built-in costs and kernels); debias (see loss); potentials (return the pair (F, G), shaped
        as below, instead of the value, with GeomLoss's meaning: debiased F = f_ab - f_aa,
        G = g_ab - g_bb; else F = f_ab, G = g_ab; for the kernel losses F = K_xx a - K_xy b,
        G = K_yy b - K_yx a; detached); verbose (print the solver's diagnostics after each call).
    The solve's options, as the library declares them (the same keywords as sinkhorn.solve; those
    GeomLoss lacks are keyword only; an option the loss ignores is refused when given):
        {options}
    process_group: a torch.distributed group: each rank passes its own rows and the ranks solve
        the union together; the value is the same on every rank, the gradients and potentials are
        each rank's rows (docs/distributed.md). on_unconverged: "warn" (a solve that stops at
        max_iterations above its tolerance warns with sinkhorn.ConvergenceWarning, once per
        calling line), "raise" (sinkhorn.ConvergenceError) or "ignore".

    Call forms: loss(x, y) and loss(a, x, b, y); x (N, D) or (B, N, D); weights (N,), (N, 1),
    (B, N) or (B, N, 1). The result is a 0-d tensor or (B,), in the inputs' dtype and device,
    differentiable in x, y, a and b. Ragged batches (clouds of different sizes): x and y (and a, b)
    as lists of tensors or nested tensors, or (N, D) points with the keywords batch_x and batch_y
    (PyTorch Geometric's vectors of each point's entry): a (B,) result, each entry its own solve's
    (one padded solve on a GPU, entry by entry on the CPU).

    Potentials (potentials=True) are shaped as GeomLoss returns them: (1, N) and (1, M) for one
    pair of clouds ((N,) and (M,) with backend="multiscale", GeomLoss's multiscale form), (B, N)
    and (B, M) for a batch, lists of (N_k,) and (M_k,) tensors for a ragged batch.

    The options are attributes, as in GeomLoss (loss.blur, loss.p, loss.backend, ...); setting one
    checks it again.
    """

    def __init__(self, loss="sinkhorn", p=2, blur=0.05, reach=None, diameter=None, scaling=0.5, truncate=5,
                 cost=None, kernel=None, cluster_scale=None, debias=True, potentials=False, verbose=False,
                 backend="auto", *, tolerance=1e-4, max_iterations=1000, iterations=None, gradient="auto",
                 coarse_correction=True, process_group=None, on_unconverged="warn"):
        super().__init__()
        self.on_unconverged = check_on_unconverged(on_unconverged)
        if not isinstance(loss, str):
            fail("loss", f"expected a name, got {loss!r}")
        name = _LIBRARY_NAMES.get(loss, loss)
        if name == "hausdorff":
            fail("loss", "'hausdorff' is not supported by this library; use 'sinkhorn' (S_eps), or GeomLoss")
        if name not in _TRANSPORT + _KERNELS:
            fail("loss", f"must be one of {', '.join(repr(n) for n in _TRANSPORT + _KERNELS)}, got {loss!r}")
        if loss == "ot_eps":
            debias = False
        if cost is not None:
            fail("cost", "only None is supported (the built-in |x - y| for p = 1 and |x - y|^2 / 2 for p = 2); "
                         "a callable or formula cost is not")
        if kernel is not None:
            fail("kernel", "only None is supported (the built-in kernel of the loss); a callable or formula "
                           "kernel is not")
        if truncate is not None:
            truncate = check_number("truncate", truncate)
            if truncate != 5:
                warnings.warn(f"SamplesLoss: truncate={truncate:g} is ignored: the multiscale backend here bounds the "
                              "mass its truncation neglects by itself (docs/python.md)", IgnoredArgumentWarning,
                              stacklevel=2)
        for flag, value in (("debias", debias), ("potentials", potentials), ("verbose", verbose)):
            if not isinstance(value, bool):
                fail(flag, f"expected True or False, got {value!r}")
        # GeomLoss ignores the transport options on its kernel losses; here they are refused (the
        # library's rule, checked_options); debias is GeomLoss's own.
        if name in _KERNELS and debias is not True:
            fail("debias", f"does not apply to the kernel loss {name!r} (leave it at True)")
        elif not debias and name != "sinkhorn":
            fail("debias", f"False applies to loss='sinkhorn' only (OT_eps); {name!r} has no biased form here")
        if potentials and name == "ot":
            fail("potentials", "True is not available for loss='ot' (the network simplex's duals are not returned); "
                               "use sinkhorn.solve(..., loss='ot') for the value, or loss='sinkhorn' with a small blur")
        if process_group is not None and potentials and name in _KERNELS:
            fail("potentials", f"True is not available for the kernel loss {name!r} with a process_group "
                               "(its potentials are computed densely in one process)")
        library_loss = {"sinkhorn": "divergence" if debias else "ot_eps"}.get(name, name)
        self.loss = name
        self.cost = None
        self.kernel = None
        self.debias = debias
        self.potentials = potentials
        self.verbose = verbose
        self.truncate = truncate
        self.options = checked_options(loss=library_loss, p=p, blur=blur, reach=reach, diameter=diameter,
                                       scaling=scaling, cluster_scale=cluster_scale, tolerance=tolerance,
                                       max_iterations=max_iterations, iterations=iterations, gradient=gradient,
                                       backend=backend, coarse_correction=coarse_correction)
        self.process_group = process_group
        self.last_diagnostics = None

    @property
    def options(self):
        """The solve's options as the library read them (a dict keyed by its option names)."""
        return self._options

    @options.setter
    def options(self, options):
        self._options = options
        # The operator's form, made here: json cannot run inside torch.compile's trace.
        self._options_json = _ops.options_text(options)

    def extra_repr(self):
        shown = [f"loss={self.loss!r}"]
        for key, value in self.options.items():
            if key != "loss":
                shown.append(f"{key}={value!r}")
        shown.append(f"debias={self.debias}")
        if self.potentials:
            shown.append("potentials=True")
        if self.process_group is not None:
            shown.append(f"process_group=<{self.process_group.size()} ranks>")
        return ", ".join(shown)

    def forward(self, *args, batch_x=None, batch_y=None):
        if len(args) == 1 and isinstance(args[0], (tuple, list)):
            args = tuple(args[0])  # loss((x, y)): the output of a previous module in nn.Sequential
        if len(args) == 2:
            x, y = args
            a_given = b_given = None
        elif len(args) == 4:
            a_given, x, b_given, y = args
        elif len(args) == 6:
            fail("args", "the 6-argument form (cluster labels, weights, points) of GeomLoss's multiscale mode "
                         "is not supported: pass (x, y) or (a, x, b, y) and backend='multiscale'")
        else:
            fail("args", f"expected loss(x, y) or loss(a, x, b, y), got {len(args)} arguments")
        sizes = None
        ragged = ragged_inputs(x, y, a_given, b_given, batch_x, batch_y)
        if ragged is not None:
            x, a_given, x_sizes, y, b_given, y_sizes = ragged
            sizes = (x_sizes, y_sizes)
        if sizes is None:
            value, f_ab, g_ab, f_aa, g_bb, diagnostics = run(a_given, x, b_given, y, self.options, self.process_group,
                                                             options_text=self._options_json)
        else:
            value, f_ab, g_ab, f_aa, g_bb, diagnostics = solve_packed(run, x, a_given, y, b_given, sizes, self.options,
                                                                      self.process_group)
        self.last_diagnostics = diagnostics
        report_convergence(diagnostics, self.options, self.on_unconverged, f"sinkhorn.SamplesLoss({self.loss!r})")
        if self.verbose and isinstance(diagnostics, dict):
            print(f"sinkhorn.SamplesLoss({self.loss}): {diagnostics['backend']}, {diagnostics['iterations']} "
                  f"sweeps, marginal error {diagnostics['marginal_error']:.3g}"
                  f"{'' if diagnostics['converged'] else ' (not converged)'}, eps {diagnostics['epsilon']:.3g}")
        if not self.potentials:
            return value
        if self.loss in _KERNELS:
            F, G = self._kernel_potentials(a_given, x, b_given, y)
        elif self.loss == "ot":
            F, G = f_ab, g_ab
        elif self.debias:
            F, G = f_ab - f_aa, g_ab - g_bb
        else:
            F, G = f_ab, g_ab
        if sizes is not None:
            return unpack(F, sizes[0]), unpack(G, sizes[1])
        # GeomLoss's shapes: (B, N) for a batch, (1, N) for one pair of clouds, (N,) in its
        # multiscale mode.
        batch = x.shape[0] if x.dim() == 3 else 1
        if x.dim() == 2 and self.options["backend"] == "multiscale":
            return F.reshape(-1), G.reshape(-1)
        return F.reshape(batch, -1), G.reshape(batch, -1)

    def _kernel_potentials(self, a, x, b, y):
        """F = K_xx a - K_xy b and G = K_yy b - K_yx a (dense: O(N M) memory), detached."""
        with torch.no_grad():
            a = _weights(a, x)
            b = _weights(b, y)
            k_xx, k_xy, k_yy = (self._kernel(u, v) for u, v in ((x, x), (x, y), (y, y)))
            F = (k_xx @ a.unsqueeze(-1)).squeeze(-1) - (k_xy @ b.unsqueeze(-1)).squeeze(-1)
            G = (k_yy @ b.unsqueeze(-1)).squeeze(-1) - (k_xy.transpose(-1, -2) @ a.unsqueeze(-1)).squeeze(-1)
            return F, G

    def _kernel(self, u, v):
        u, v = u.detach(), v.detach()
        blur = self.options["blur"]
        distances = torch.cdist(u, v)
        if self.loss == "energy":
            return -distances
        if self.loss == "laplacian":
            return torch.exp(-distances / blur)
        squared = distances ** 2
        if self.loss == "gaussian":
            return torch.exp(-squared / (2 * blur ** 2))
        return sum(torch.exp(-squared / (2 * (blur * 2 ** k) ** 2)) for k in range(5))  # gaussian_mixture


def _option_attribute(name):
    """SamplesLoss.<name>: the option as checked; setting it checks it again (GeomLoss's attributes
    are read at each call, so a user may change them between calls)."""
    def get(self):
        return self.options[name]

    def set(self, value):
        self.options = checked_options(**{**self.options, name: value})

    return property(get, set, doc=f"The {name} option (docs/python.md).")


for _name, *_ in OPTION_TABLE:
    if _name != "loss":
        setattr(SamplesLoss, _name, _option_attribute(_name))


def _weights(weights, points):
    if weights is None:
        n = points.shape[-2]
        return torch.full(points.shape[:-1], 1.0 / n, dtype=points.dtype, device=points.device)
    return weights.detach().reshape(points.shape[:-1]).to(points.dtype)


SamplesLoss.__doc__ = SamplesLoss.__doc__.replace("{options}", option_docs(" " * 8, skip=("loss",)))
