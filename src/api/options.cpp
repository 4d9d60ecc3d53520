#include "sinkhorn/options.h"

#include <cmath>
#include <utility>
#include <vector>

#include "util/check.h"

namespace sinkhorn {
namespace {

template <typename Enum>
using NameTable = std::vector<std::pair<Enum, const char*>>;

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

template <typename Enum>
std::string name_of(const NameTable<Enum>& table, Enum value) {
  for (const auto& [entry, name] : table) {
    if (entry == value) return name;
  }
  return "unknown";
}

template <typename Enum>
Enum parse_name(const NameTable<Enum>& table, const std::string& name, const std::string& argument) {
  std::string choices;
  for (const auto& [entry, entry_name] : table) {
    if (name == entry_name) return entry;
    choices += (choices.empty() ? "" : ", ") + std::string(entry_name);
  }
  SINKHORN_CHECK(false, argument << ": unknown value '" << name << "' (choose one of " << choices << ")");
  return table.front().first;
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

void validate(const SinkhornOptions& options) {
  SINKHORN_CHECK(options.p == 1 || options.p == 2, "p must be 1 or 2, got " << options.p);
  SINKHORN_CHECK(std::isfinite(options.blur) && options.blur > 0,
                 "blur must be a finite number > 0, got " << options.blur);
  if (options.reach) {
    SINKHORN_CHECK(std::isfinite(*options.reach) && *options.reach > 0,
                   "reach must be a finite number > 0 (or unset for balanced transport), got "
                       << *options.reach);
  }
  SINKHORN_CHECK(options.scaling > 0 && options.scaling < 1,
                 "scaling must be in the open interval (0, 1), got " << options.scaling);
  if (options.diameter) {
    SINKHORN_CHECK(std::isfinite(*options.diameter) && *options.diameter > 0,
                   "diameter must be a finite number > 0 (or unset), got " << *options.diameter);
  }
  if (options.cluster_scale) {
    SINKHORN_CHECK(std::isfinite(*options.cluster_scale) && *options.cluster_scale > 0,
                   "cluster_scale must be a finite number > 0 (or unset), got " << *options.cluster_scale);
  }
  SINKHORN_CHECK(std::isfinite(options.tolerance) && options.tolerance > 0,
                 "tolerance must be a finite number > 0, got " << options.tolerance);
  SINKHORN_CHECK(options.max_iterations >= 0,
                 "max_iterations must be >= 0, got " << options.max_iterations);
  if (options.iterations) {
    SINKHORN_CHECK(*options.iterations >= 1,
                   "iterations must be >= 1 (or unset for eps-scaling), got " << *options.iterations);
  }
  if (options.loss == Loss::primal) {
    SINKHORN_CHECK(options.gradient != GradientMode::envelope,
                   "gradient: envelope gradients are exact only for variational losses "
                   "(divergence, ot_eps); the primal loss <pi, C> needs gradient=unrolled (or auto)");
  }
  if (options.loss == Loss::ot) {
    SINKHORN_CHECK(!options.reach, "reach: the exact OT loss is balanced only; unset reach or use a Sinkhorn loss");
  }
  if (options.gradient == GradientMode::unrolled && is_sinkhorn_loss(options.loss)) {
    SINKHORN_CHECK(options.backend == Backend::automatic || options.backend == Backend::tensorized,
                   "backend: unrolled gradients differentiate through tensorized iterations; "
                   "backend '" << to_string(options.backend) << "' cannot be unrolled");
  }
}

}  // namespace sinkhorn
