#include "sinkhorn/options.h"

#include <cmath>
#include <iomanip>
#include <utility>
#include <vector>

#include "util/check.h"
#include "util/name_table.h"

namespace sinkhorn {
namespace {

const NameTable<Loss>& loss_names() {
  static const NameTable<Loss> names{{Loss::divergence, "divergence"}, {Loss::primal, "primal"},
                                     {Loss::ot_eps, "ot_eps"},         {Loss::ot, "ot"}, {Loss::energy, "energy"},
                                     {Loss::gaussian, "gaussian"},     {Loss::laplacian, "laplacian"},
                                     {Loss::gaussian_mixture, "gaussian_mixture"}};
  return names;
}
const NameTable<GradientMode>& gradient_names() {
  static const NameTable<GradientMode> names{{GradientMode::automatic, "auto"},
                                             {GradientMode::envelope, "envelope"},
                                             {GradientMode::unrolled, "unrolled"}};
  return names;
}
const NameTable<Backend>& backend_names() {
  static const NameTable<Backend> names{{Backend::automatic, "auto"},
                                        {Backend::tensorized, "tensorized"},
                                        {Backend::online, "online"},
                                        {Backend::multiscale, "multiscale"},
                                        {Backend::reference, "reference"}};
  return names;
}

}  // namespace

std::string to_string(Loss loss) { return name_of(loss_names(), loss); }
std::string to_string(GradientMode mode) { return name_of(gradient_names(), mode); }
std::string to_string(Backend backend) { return name_of(backend_names(), backend); }

Loss parse_loss(const std::string& name, const std::string& argument) {
  return parse_name(loss_names(), name, argument);
}
GradientMode parse_gradient_mode(const std::string& name, const std::string& argument) {
  return parse_name(gradient_names(), name, argument);
}
Backend parse_backend(const std::string& name, const std::string& argument) {
  return parse_name(backend_names(), name, argument);
}

bool is_sinkhorn_loss(Loss loss) {
  return loss == Loss::divergence || loss == Loss::primal || loss == Loss::ot_eps;
}

namespace {

// The range of blur^p (and reach^p, diameter^p) in which the kernel MMDs compute in float32
// without overflow or underflow: they use blur on the caller's scale. The Sinkhorn losses solve
// on clouds rescaled to diameter ~1 and check eps against their largest cost instead
// (solver/scale_plan.h): for them a length need only be a finite number > 0.
constexpr double kSmallestScale = 1e-30, kLargestScale = 1e30;

void check_scale(double value, int p, bool sinkhorn, const char* name, const char* unset) {
  SINKHORN_CHECK_ARG(std::isfinite(value) && value > 0, name,
                     "must be a finite number > 0" << unset << ", got " << value);
  if (sinkhorn) return;
  const double powered = std::pow(value, p);
  SINKHORN_CHECK_ARG(powered >= kSmallestScale && powered <= kLargestScale, name,
                     "must give " << name << "^p in [" << kSmallestScale << ", " << kLargestScale << "], where the "
                                  << "kernel's arithmetic holds its contract; got " << std::setprecision(12) << value
                                  << "^" << p << " = " << powered << " (rescale the points: the losses scale as length^p)");
}

}  // namespace

void validate(const SinkhornOptions& options) {
  SINKHORN_CHECK_ARG(options.p == 1 || options.p == 2, "p", "must be 1 or 2, got " << options.p);
  const bool sinkhorn = is_sinkhorn_loss(options.loss);
  check_scale(options.blur, options.p, sinkhorn, "blur", "");
  if (options.reach) check_scale(*options.reach, options.p, sinkhorn, "reach", " (or unset for balanced transport)");
  SINKHORN_CHECK_ARG(options.scaling > 0 && options.scaling < 1, "scaling",
                     "must be in the open interval (0, 1), got " << options.scaling);
  if (options.diameter) check_scale(*options.diameter, options.p, sinkhorn, "diameter", " (or unset)");
  if (options.cluster_scale) {
    SINKHORN_CHECK_ARG(std::isfinite(*options.cluster_scale) && *options.cluster_scale > 0, "cluster_scale",
                       "must be a finite number > 0 (or unset), got " << *options.cluster_scale);
  }
  SINKHORN_CHECK_ARG(std::isfinite(options.tolerance) && options.tolerance > 0, "tolerance",
                     "must be a finite number > 0, got " << options.tolerance);
  SINKHORN_CHECK_ARG(options.max_iterations >= 0, "max_iterations", "must be >= 0, got " << options.max_iterations);
  if (options.iterations) {
    SINKHORN_CHECK_ARG(*options.iterations >= 1, "iterations",
                       "must be >= 1 (or unset for eps-scaling), got " << *options.iterations);
  }
  if (options.loss == Loss::primal) {
    SINKHORN_CHECK_ARG(options.gradient != GradientMode::envelope, "gradient",
                       "envelope: envelope gradients are exact only for variational losses "
                       "(divergence, ot_eps); the primal loss <pi, C> needs gradient unrolled (or auto)");
  }
  if (options.loss == Loss::ot) {
    SINKHORN_CHECK_ARG(!options.reach, "reach",
                       "cannot be set with the exact OT loss (balanced only); unset it or use a Sinkhorn loss");
  }
  if (options.gradient == GradientMode::unrolled && is_sinkhorn_loss(options.loss)) {
    SINKHORN_CHECK_ARG(options.backend == Backend::automatic || options.backend == Backend::tensorized, "backend",
                       to_string(options.backend) << " cannot be unrolled: unrolled gradients differentiate "
                                                     "through tensorized iterations");
  }
}

}  // namespace sinkhorn
