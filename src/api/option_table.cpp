#include "api/option_table.h"

#include <iomanip>
#include <sstream>

#include "util/check.h"

namespace sinkhorn::api {
namespace {

[[noreturn]] void wrong_kind(const char* name, const char* expected) {
  throw Error(name, std::string("expected ") + expected);
}

double as_number(const OptionValue& value, const char* name) {
  if (const double* number = std::get_if<double>(&value)) return *number;
  if (const long long* integer = std::get_if<long long>(&value)) return static_cast<double>(*integer);
  wrong_kind(name, "a number");
}

long long as_integer(const OptionValue& value, const char* name, long long min, long long max) {
  const long long* integer = std::get_if<long long>(&value);
  if (integer == nullptr) wrong_kind(name, "an integer");
  SINKHORN_CHECK_ARG(*integer >= min && *integer <= max, name,
                     "must be between " << min << " and " << max << ", got " << *integer);
  return *integer;
}

const std::string& as_name(const OptionValue& value, const char* name) {
  const std::string* text = std::get_if<std::string>(&value);
  if (text == nullptr) wrong_kind(name, "a name");
  return *text;
}

bool as_flag(const OptionValue& value, const char* name) {
  const bool* flag = std::get_if<bool>(&value);
  if (flag == nullptr) wrong_kind(name, "true or false");
  return *flag;
}

bool is_unset(const OptionValue& value) { return std::holds_alternative<std::monostate>(value); }

std::optional<double> as_optional_number(const OptionValue& value, const char* name) {
  if (is_unset(value)) return std::nullopt;
  return as_number(value, name);
}

template <typename T>
OptionValue optional_value(const std::optional<T>& value) {
  if (!value) return std::monostate{};
  if constexpr (std::is_same_v<T, int>) {
    return static_cast<long long>(*value);
  } else {
    return *value;
  }
}

// Sweep counts: the command line's and the training configuration's range (10^7).
constexpr long long kMostIterations = 10000000;

}  // namespace

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> table{
      {"loss", "loss", "NAME",
       "divergence (default: debiased S_eps), primal (the paper's E_eps), ot_eps (raw OT_eps), ot (exact OT by "
       "network simplex, small clouds), energy, gaussian, laplacian, gaussian_mixture (MMDs; the mixture has "
       "widths blur x {1,2,4,8,16})",
       OptionKind::name, OptionApplies::every_loss, 0, 0,
       [](const SinkhornOptions& o) -> OptionValue { return to_string(o.loss); },
       [](SinkhornOptions& o, const OptionValue& v) { o.loss = parse_loss(as_name(v, "loss")); },
       std::string("ot_eps")},
      {"p", "p", "P", "cost exponent: 2 for |x-y|^2/2 (default), 1 for |x-y|", OptionKind::integer,
       OptionApplies::transport, 1, 2, [](const SinkhornOptions& o) -> OptionValue { return static_cast<long long>(o.p); },
       [](SinkhornOptions& o, const OptionValue& v) { o.p = static_cast<int>(as_integer(v, "p", 1, 2)); },
       1LL},
      {"blur", "blur", "B", "finest length scale, eps = blur^p (default 0.05); the MMD kernels' width",
       OptionKind::number, OptionApplies::every_loss, 0, 0,
       [](const SinkhornOptions& o) -> OptionValue { return o.blur; },
       [](SinkhornOptions& o, const OptionValue& v) { o.blur = as_number(v, "blur"); }, 0.25},
      {"reach", "reach", "R", "unbalanced transport with rho = reach^p (default: balanced)",
       OptionKind::optional_number, OptionApplies::sinkhorn, 0, 0,
       [](const SinkhornOptions& o) { return optional_value(o.reach); },
       [](SinkhornOptions& o, const OptionValue& v) { o.reach = as_optional_number(v, "reach"); },
       0.75},
      {"scaling", "scaling", "S", "eps-scaling ratio in (0,1) (default 0.5)", OptionKind::number,
       OptionApplies::sinkhorn, 0, 0, [](const SinkhornOptions& o) -> OptionValue { return o.scaling; },
       [](SinkhornOptions& o, const OptionValue& v) { o.scaling = as_number(v, "scaling"); }, 0.7},
      {"diameter", "diameter", "D", "largest distance, where eps-scaling starts (default: bounding box)",
       OptionKind::optional_number, OptionApplies::sinkhorn, 0, 0,
       [](const SinkhornOptions& o) { return optional_value(o.diameter); },
       [](SinkhornOptions& o, const OptionValue& v) { o.diameter = as_optional_number(v, "diameter"); },
       3.5},
      {"cluster_scale", "cluster-scale", "S",
       "multiscale backend: grid cell side (default: max(2 blur, diameter / (sqrt(D) (2N)^(1/D))))",
       OptionKind::optional_number, OptionApplies::sinkhorn, 0, 0,
       [](const SinkhornOptions& o) { return optional_value(o.cluster_scale); },
       [](SinkhornOptions& o, const OptionValue& v) { o.cluster_scale = as_optional_number(v, "cluster_scale"); },
       0.125},
      {"tolerance", "tolerance", "T",
       "stop when the relative marginal error is under T (default 1e-4); the kernel losses and exact OT ignore it",
       OptionKind::number, OptionApplies::every_loss, 0, 0,
       [](const SinkhornOptions& o) -> OptionValue { return o.tolerance; },
       [](SinkhornOptions& o, const OptionValue& v) { o.tolerance = as_number(v, "tolerance"); }, 3e-3},
      {"max_iterations", "max-iterations", "N",
       "iterations allowed at the final eps (default 1000); the kernel losses and exact OT ignore it",
       OptionKind::integer, OptionApplies::every_loss, 0, kMostIterations,
       [](const SinkhornOptions& o) -> OptionValue { return static_cast<long long>(o.max_iterations); },
       [](SinkhornOptions& o, const OptionValue& v) {
         o.max_iterations = static_cast<int>(as_integer(v, "max_iterations", 0, kMostIterations));
       },
       777LL},
      {"iterations", "iterations", "L", "the paper's mode: exactly L iterations at eps = blur^p, no annealing",
       OptionKind::optional_integer, OptionApplies::sinkhorn, 1, kMostIterations,
       [](const SinkhornOptions& o) { return optional_value(o.iterations); },
       [](SinkhornOptions& o, const OptionValue& v) {
         o.iterations = is_unset(v) ? std::nullopt
                                    : std::optional<int>(static_cast<int>(as_integer(v, "iterations", 1, kMostIterations)));
       },
       42LL},
      {"gradient", "gradient", "MODE", "auto (default), envelope or unrolled", OptionKind::name,
       OptionApplies::sinkhorn, 0, 0, [](const SinkhornOptions& o) -> OptionValue { return to_string(o.gradient); },
       [](SinkhornOptions& o, const OptionValue& v) { o.gradient = parse_gradient_mode(as_name(v, "gradient")); },
       std::string("unrolled")},
      {"backend", "backend", "NAME",
       "auto (default), tensorized, online (linear memory, CPU), multiscale (truncated, CPU, D <= 3) or reference",
       OptionKind::name, OptionApplies::every_loss, 0, 0,
       [](const SinkhornOptions& o) -> OptionValue { return to_string(o.backend); },
       [](SinkhornOptions& o, const OptionValue& v) { o.backend = parse_backend(as_name(v, "backend")); },
       std::string("tensorized")},
      {"coarse_correction", "coarse-correction", "",
       "corrected sweeps on clusters of points when the loop crawls (on by default; docs/numerics.md)",
       OptionKind::flag, OptionApplies::sinkhorn, 0, 0,
       [](const SinkhornOptions& o) -> OptionValue { return o.coarse_correction; },
       [](SinkhornOptions& o, const OptionValue& v) { o.coarse_correction = as_flag(v, "coarse_correction"); }, false,
       false},  // runs written before it existed trained without it
  };
  return table;
}

const OptionSpec* find_option(const std::string& name) {
  for (const OptionSpec& spec : option_table()) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

std::string to_text(const OptionValue& value) {
  std::ostringstream out;
  out << std::setprecision(17);
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          out << "none";
        } else if constexpr (std::is_same_v<T, bool>) {
          out << (v ? "true" : "false");
        } else {
          out << v;
        }
      },
      value);
  return out.str();
}

void check_options_apply(Loss loss, const std::vector<std::string>& given) {
  const bool kernel = !is_sinkhorn_loss(loss) && loss != Loss::ot;
  for (const std::string& name : given) {
    const OptionSpec* spec = find_option(name);
    if (spec == nullptr || spec->applies == OptionApplies::every_loss) continue;
    SINKHORN_CHECK_ARG(!kernel, spec->name,
                       "does not apply to the kernel loss " << to_string(loss) << " (an MMD: no transport, no iterations)");
    SINKHORN_CHECK_ARG(loss != Loss::ot || spec->applies == OptionApplies::transport, spec->name,
                       "does not apply to the exact OT loss (solved by network simplex: no eps, no iterations)");
  }
}

std::string options_fingerprint(const SinkhornOptions& options) {
  std::string text;
  for (const OptionSpec& spec : option_table()) text += std::string(spec.name) + "=" + to_text(spec.get(options)) + "\n";
  return text;
}

}  // namespace sinkhorn::api
