#include "gen/data/toy2d.h"

#include <algorithm>
#include <cmath>

#include "util/check.h"

namespace sinkhorn::gen {

const std::vector<std::string>& toy_names() {
  static const std::vector<std::string> names{"ring8", "grid25", "swiss_roll", "moons", "ellipse"};
  return names;
}

bool is_toy(const std::string& name) {
  const auto& names = toy_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

ToyModes toy_modes(const std::string& name) {
  ToyModes modes;
  if (name == "ring8") {
    const at::Tensor angle = at::arange(8, at::kDouble) * (2 * M_PI / 8);
    modes.centres = (2.0 * at::stack({angle.cos(), angle.sin()}, 1)).to(at::kFloat);
    modes.std = 0.05;
  } else if (name == "grid25") {
    const at::Tensor axis = at::arange(-4, 5, 2, at::kFloat);
    const auto grid = at::meshgrid({axis, axis}, "ij");
    modes.centres = at::stack({grid[0].reshape(-1), grid[1].reshape(-1)}, 1);
    modes.std = 0.05;
  }
  return modes;
}

at::Tensor sample_toy(const std::string& name, int64_t n, at::Generator& generator) {
  ToyModes modes = toy_modes(name);
  if (modes.centres.defined()) modes.centres = modes.centres.to(generator.device());
  return sample_toy(name, modes, n, generator);
}

at::Tensor sample_toy(const std::string& name, const ToyModes& modes, int64_t n, at::Generator& generator) {
  SINKHORN_CHECK(n >= 1, "sample_toy: n must be positive, got " << n);
  SINKHORN_CHECK(!modes.centres.defined() || modes.centres.device() == generator.device(),
                 "sample_toy: the modes are on " << modes.centres.device() << ", the generator on " << generator.device());
  const auto options = at::TensorOptions().dtype(at::kFloat).device(generator.device());
  const auto uniform = [&](int64_t count) { return at::rand({count}, generator, options); };
  const auto normal = [&](double std) { return std * at::randn({n, 2}, generator, options); };
  if (modes.centres.defined()) {
    const at::Tensor which = at::randint(modes.centres.size(0), {n}, generator, options.dtype(at::kLong));
    return modes.centres.index_select(0, which) + normal(modes.std);
  }
  if (name == "swiss_roll") {
    const at::Tensor t = 1.5 * M_PI * (1 + 2 * uniform(n));
    return at::stack({t * t.cos(), t * t.sin()}, 1) / 5.0 + normal(0.05);
  }
  if (name == "moons") {
    const at::Tensor angle = M_PI * uniform(n);
    const at::Tensor lower = at::randint(2, {n}, generator, options);  // 1: the lower moon
    const at::Tensor x = at::where(lower > 0, 1 - angle.cos(), angle.cos());
    const at::Tensor y = at::where(lower > 0, 0.5 - angle.sin(), angle.sin());
    return 2.0 * (at::stack({x - 0.5, y - 0.25}, 1)) + normal(0.05);
  }
  if (name == "ellipse") {
    const at::Tensor angle = 2 * M_PI * uniform(n);
    const at::Tensor u = 2.0 * angle.cos(), v = angle.sin();
    const double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
    return at::stack({c * u - s * v, s * u + c * v}, 1) + normal(0.02);
  }
  SINKHORN_CHECK(false, "unknown toy distribution '" << name << "' (ring8, grid25, swiss_roll, moons, ellipse)");
  return {};
}

ModeCoverage mode_coverage(const ToyModes& modes, const at::Tensor& samples) {
  SINKHORN_CHECK(modes.centres.defined(), "mode_coverage: the distribution is not a mixture of Gaussians");
  ModeCoverage result;
  result.modes = modes.centres.size(0);
  const at::Tensor points = samples.to(at::kFloat).reshape({-1, 2});
  const int64_t n = points.size(0);
  if (n == 0) return result;
  const auto [distance, nearest] = at::cdist(points, modes.centres).min(1);
  const at::Tensor good = distance.le(3 * modes.std) & distance.isfinite();
  result.high_quality_fraction = good.to(at::kDouble).mean().item<double>();
  const at::Tensor counts = at::bincount(nearest.masked_select(good), {}, result.modes);
  const double fair_share = static_cast<double>(n) / static_cast<double>(result.modes);
  result.covered = counts.to(at::kDouble).ge(0.2 * fair_share).sum().item<int64_t>();
  return result;
}

}  // namespace sinkhorn::gen
