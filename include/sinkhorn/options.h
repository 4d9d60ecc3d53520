// Options of every loss the library computes. The conventions follow ../docs/numerics.md and
// GeomLoss's SamplesLoss("sinkhorn", p, blur, reach, scaling, debias), so that a user can switch
// between the two without re-tuning.
#pragma once

#include <optional>
#include <string>

namespace sinkhorn {

/// Which quantity `sinkhorn::divergence` (and `SinkhornOptions::loss`) computes.
enum class Loss {
  /// Debiased Sinkhorn divergence S_eps = OT_eps(a,b) - OT_eps(a,a)/2 - OT_eps(b,b)/2 (default).
  divergence,
  /// The paper's loss (Genevay et al. 2018): E_eps = 2 W_eps(a,b) - W_eps(a,a) - W_eps(b,b),
  /// with W_eps = <pi_eps, C> the transport cost of the entropic plan.
  primal,
  /// Raw entropic transport cost OT_eps(a,b) (biased: OT_eps(a,a) != 0).
  ot_eps,
  /// Exact optimal transport cost OT_0(a,b) = min <pi, C> (network simplex; balanced, small clouds):
  /// the eps -> 0 limit of every Sinkhorn loss. Gradients are those of <pi*, C> with the optimal
  /// plan pi* held fixed (points) and the dual potentials (weights).
  ot,
  /// Energy distance, the MMD with kernel k(x,y) = -|x-y|: the eps -> infinity limit of S_eps for p = 1.
  energy,
  /// MMD with the Gaussian kernel k(x,y) = exp(-|x-y|^2 / (2 blur^2)).
  gaussian,
  /// MMD with the Laplacian kernel k(x,y) = exp(-|x-y| / blur).
  laplacian,
  /// MMD with a mixture of Gaussian kernels, sum_k exp(-|x-y|^2 / (2 s_k^2)) with s_k = blur 2^k,
  /// k = 0..4: MMD GAN's kernel (Li et al. 2017), the learned-cost baseline of the paper.
  gaussian_mixture,
};

/// How gradients reach x, y, a and b.
enum class GradientMode {
  /// envelope for the variational losses (divergence, ot_eps), unrolled for primal.
  automatic,
  /// Exact at convergence, from the potentials and one extra reduction; memory O(N + M).
  envelope,
  /// Autograd through every tensorized Sinkhorn iteration (the paper's Algorithm 1); memory O(N M + L (N + M))
  /// on the CPU (the weights are recomputed in backward), O(L N M) on a GPU.
  unrolled,
};

/// Which reduction backend runs the softmin reductions.
enum class Backend {
  /// Picks by size and device: on the CPU multiscale for large clouds with D <= 3, online
  /// otherwise, tensorized for small high-dimensional clouds; on CUDA tensors online below D = 16,
  /// tensorized (stored matrices) from D = 16 up to 2^27 pairs; tensorized on other devices and
  /// for autograd (unrolled gradients).
  automatic,
  /// Dense ATen operations on any device LibTorch supports; memory O(N M).
  tensorized,
  /// Streaming kernels, memory O(N + M D): SIMD + OpenMP on the CPU, CUDA on GPU tensors (when
  /// built with nvcc and a CUDA LibTorch). Envelope gradients only.
  online,
  /// The online kernels with kernel truncation and a coarse-to-fine start on grid clusters
  /// (Schmitzer 2019): sub-quadratic for large low-dimensional clouds (D <= 3). CPU, envelope only.
  multiscale,
  /// Plain double-precision loops on the CPU; slow, the oracle of the test suite.
  reference,
};

/// Options shared by every loss. Defaults match GeomLoss (p = 2, blur = 0.05, scaling = 0.5) but
/// iterate at the final blur until the marginal error is under `tolerance`.
struct SinkhornOptions {
  /// Exponent of the ground cost: 2 gives C(x,y) = |x-y|^2 / 2, 1 gives C(x,y) = |x-y|.
  int p = 2;
  /// Finest length scale: the entropic regularisation is eps = blur^p. Also the MMD kernels' width.
  double blur = 0.05;
  /// Unbalanced transport when set: marginals are penalised by rho KL with rho = reach^p.
  std::optional<double> reach;
  /// eps-scaling ratio in (0, 1): eps is multiplied by scaling^p from diameter^p down to blur^p.
  double scaling = 0.5;
  /// Largest distance in the problem, where eps-scaling starts; unset: the bounding box diagonal.
  std::optional<double> diameter;
  /// Multiscale backend: side of the grid cells that cluster the points; eps-scaling runs on the
  /// clusters while eps >= cluster_scale^p. Unset: max(2 blur, diameter / (sqrt(D) (2N)^(1/D))).
  std::optional<double> cluster_scale;
  /// Stop when the relative L1 marginal error of every transport plan is under this value.
  double tolerance = 1e-4;
  /// Iterations allowed at the final eps = blur^p after annealing; the solve stops there unconverged.
  int max_iterations = 1000;
  /// The paper's mode when set: exactly this many Sinkhorn iterations L at eps = blur^p, no annealing.
  std::optional<int> iterations;
  /// Which loss to compute.
  Loss loss = Loss::divergence;
  /// How gradients are computed.
  GradientMode gradient = GradientMode::automatic;
  /// Which reduction backend to use.
  Backend backend = Backend::automatic;
  /// When OT(a, b)'s error falls slowly, take corrected sweeps: each half-sweep also shifts the
  /// potential by the best constant per cluster of points (Lloyd clusters of both clouds, any
  /// dimension; CPU tensors, CUDA ones once run on a GPU: docs/numerics.md, "Corrected sweeps on
  /// clusters"), which moves the mass that must
  /// cross between a mixture's modes at once. Chosen per sweep from the measured rates and a cost
  /// model; balanced problems with envelope gradients, sharded solves included. On by
  /// default (8 blobs in 64-D, 5,000 points: 1,113 sweeps unconverged -> 21).
  bool coarse_correction = true;
};

/// Lower-case names used by the command line and in messages ("divergence", "primal", ...).
std::string to_string(Loss loss);
std::string to_string(GradientMode mode);
std::string to_string(Backend backend);
/// Parses the names above; throws sinkhorn::Error naming `argument` on an unknown name.
Loss parse_loss(const std::string& name, const std::string& argument = "loss");
GradientMode parse_gradient_mode(const std::string& name, const std::string& argument = "gradient");
Backend parse_backend(const std::string& name, const std::string& argument = "backend");

/// True for the losses computed by Sinkhorn iterations (divergence, primal, ot_eps).
bool is_sinkhorn_loss(Loss loss);

/// Throws sinkhorn::Error naming the first option that is out of range.
void validate(const SinkhornOptions& options);

}  // namespace sinkhorn
