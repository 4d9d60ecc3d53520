// The 2-D toy distributions of the GAN literature, sampled in memory.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace sinkhorn::gen {

/// The names sample_toy accepts.
const std::vector<std::string>& toy_names();
bool is_toy(const std::string& name);

/// n points (float32, n x 2) of a toy distribution, drawn from `generator`:
///  ring8      8 Gaussians (std 0.05) on the circle of radius 2
///  grid25     25 Gaussians (std 0.05) on the grid {-4, -2, 0, 2, 4}^2
///  swiss_roll the swiss roll t (cos t, sin t) / 5, t in [1.5 pi, 4.5 pi], noise 0.05
///  moons      two interleaved half circles of radius 1 (centred, scaled by 2), noise 0.05
///  ellipse    the ellipse with semi-axes 2 and 1 turned by 30 degrees, noise 0.02
/// on the generator's device.
at::Tensor sample_toy(const std::string& name, int64_t n, at::Generator& generator);

/// For mixtures of Gaussians (ring8, grid25): the centres (modes x 2) and the common std;
/// an undefined tensor for the others.
struct ToyModes {
  at::Tensor centres;
  double std = 0;
};
ToyModes toy_modes(const std::string& name);

/// sample_toy with toy_modes(name) given, on the generator's device: a caller drawing every step
/// keeps them there rather than copying the centres each time.
at::Tensor sample_toy(const std::string& name, const ToyModes& modes, int64_t n, at::Generator& generator);

/// Mode coverage, the usual GAN measure on mixtures: a sample is of high quality when it lies within
/// 3 std of its nearest centre; a mode is covered when it holds at least a fifth of its fair share
/// (n / modes) of high-quality samples.
struct ModeCoverage {
  int64_t modes = 0, covered = 0;
  double high_quality_fraction = 0;
};
ModeCoverage mode_coverage(const ToyModes& modes, const at::Tensor& samples);

}  // namespace sinkhorn::gen
