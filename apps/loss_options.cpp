#include "loss_options.h"

#include "sinkhorn/error.h"

namespace sinkhorn::cli {

void add_loss_options(ArgumentParser& parser) {
  parser
      .option("loss", "NAME",
              "divergence (default: debiased S_eps), primal (the paper's E_eps), ot_eps (raw OT_eps), "
              "ot (exact OT by network simplex, small clouds), energy, gaussian, laplacian, "
              "gaussian_mixture (MMDs; the mixture has widths blur x {1,2,4,8,16})")
      .integer("p", "P", "cost exponent: 2 for |x-y|^2/2 (default), 1 for |x-y|", 1, 2)
      .option("blur", "B", "finest length scale, eps = blur^p (default 0.05); the MMD kernels' width")
      .option("reach", "R", "unbalanced transport with rho = reach^p (default: balanced)")
      .option("scaling", "S", "eps-scaling ratio in (0,1) (default 0.5)")
      .option("diameter", "D", "largest distance, where eps-scaling starts (default: bounding box)")
      .integer("iterations", "L", "the paper's mode: exactly L iterations at eps = blur^p, no annealing", 1,
               gen::kLossIterationsRange.max)
      .option("tolerance", "T", "stop when the relative marginal error is under T (default 1e-4)")
      .integer("max-iterations", "N", "iterations allowed at the final eps (default 1000)", 0,
               gen::kLossIterationsRange.max)
      .option("gradient", "MODE", "auto (default), envelope or unrolled")
      .flag("coarse-correction", "correct the potentials on clusters of points when the loop crawls (D <= 3)")
      .option("cluster-scale", "S", "multiscale backend: grid cell side (default: max(2 blur, diameter / (sqrt(D) (2N)^(1/D))))")
      .option("backend", "NAME",
              "auto (default), tensorized, online (linear memory, CPU), multiscale (truncated, CPU, D <= 3) or reference");
}

SinkhornOptions loss_options_from(const ParsedArguments& args, SinkhornOptions options) {
  if (auto loss = args.value("loss")) options.loss = parse_loss(*loss);
  if (auto p = args.integer("p")) options.p = static_cast<int>(*p);
  if (auto blur = args.number("blur")) options.blur = *blur;
  if (auto reach = args.number("reach")) options.reach = *reach;
  if (auto scaling = args.number("scaling")) options.scaling = *scaling;
  if (auto diameter = args.number("diameter")) options.diameter = *diameter;
  if (auto cell = args.number("cluster-scale")) options.cluster_scale = *cell;
  if (auto iterations = args.integer("iterations")) options.iterations = static_cast<int>(*iterations);
  if (auto tolerance = args.number("tolerance")) options.tolerance = *tolerance;
  if (auto max_iterations = args.integer("max-iterations")) options.max_iterations = static_cast<int>(*max_iterations);
  if (auto gradient = args.value("gradient")) options.gradient = parse_gradient_mode(*gradient);
  if (auto backend = args.value("backend")) options.backend = parse_backend(*backend);
  if (args.flag("coarse-correction")) options.coarse_correction = true;
  validate(options);  // its errors name the field; the command line says it as the flag (flag_names.h)
  return options;
}

}  // namespace sinkhorn::cli
