// sinkhorn demo: every loss and its gradient on two built-in 2-D clouds, then a short gradient
// flow that carries one cloud onto the other (Feydy et al. 2019, figure 1).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>

#include "arguments.h"
#include "builtin_clouds.h"
#include "cli.h"
#include "sinkhorn/divergence.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int demo_command(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err) {
  ArgumentParser parser("sinkhorn demo [options]",
                        "Computes every loss between two built-in 2-D clouds (a ring and a blob), the\n"
                        "gradient of the Sinkhorn divergence in both modes, and a gradient flow.");
  parser.integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads)
      .integer("n", "N", "points in each cloud (default 500)", 2, 1000000);
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  const int64_t n = args.integer("n").value_or(500);
  auto [x, y] = builtin_clouds(n, n);
  out << "Two clouds of " << n << " points in 2-D: a ring of radius 1 and a Gaussian blob at (2, 0.5).\n\n";

  out << "loss         value          iterations  marginal_error  seconds\n";
  const std::vector<std::pair<Loss, std::string>> losses{
      {Loss::divergence, "S_eps, blur 0.05"}, {Loss::primal, "E_eps, blur 0.05"},
      {Loss::ot_eps, "OT_eps, blur 0.05"},    {Loss::energy, "energy distance"},
      {Loss::gaussian, "Gaussian MMD"}};
  for (const auto& [loss, description] : losses) {
    SinkhornOptions options;
    options.loss = loss;
    const auto start = std::chrono::steady_clock::now();
    const DivergenceResult result = divergence_with_details({}, x, {}, y, options);
    out << std::left << std::setw(13) << to_string(loss) << std::setw(15) << std::setprecision(8)
        << result.value.item<double>() << std::setw(12) << result.diagnostics.iterations
        << std::setw(16) << std::setprecision(2) << result.diagnostics.marginal_error
        << std::setprecision(3) << seconds_since(start) << "   (" << description << ")\n";
  }

  // Gradients of S_eps with respect to x, by the envelope theorem and by unrolled autograd.
  SinkhornOptions envelope;
  SinkhornOptions unrolled;
  unrolled.gradient = GradientMode::unrolled;
  const at::Tensor x_envelope = x.clone().requires_grad_(true);
  const at::Tensor x_unrolled = x.clone().requires_grad_(true);
  torch::autograd::backward({divergence(x_envelope, y, envelope)});
  torch::autograd::backward({divergence(x_unrolled, y, unrolled)});
  const at::Tensor gradient = x_envelope.grad();
  const double gap = ((gradient - x_unrolled.grad()).norm() / gradient.norm()).item<double>();
  out << "\ngradient of S_eps with respect to x (first rows, envelope mode):\n";
  for (int64_t i = 0; i < std::min<int64_t>(3, n); ++i) {
    out << "  x[" << i << "] = (" << std::setprecision(4) << x[i][0].item<double>() << ", "
        << x[i][1].item<double>() << ")  dS/dx = (" << std::setprecision(6) << gradient[i][0].item<double>()
        << ", " << gradient[i][1].item<double>() << ")\n";
  }
  out << "envelope vs unrolled gradient: relative difference " << std::setprecision(3) << gap << "\n";

  // Gradient flow: x <- x - step * grad / a_i moves each point along the transport map.
  out << "\ngradient flow of the ring towards the blob (S_eps, step 1 / a_i):\n";
  at::Tensor moving = x.clone();
  for (int step = 0; step <= 40; ++step) {
    moving.requires_grad_(true);
    const at::Tensor value = divergence(moving, y);
    if (step % 10 == 0) out << "  step " << std::setw(3) << step << "  S_eps = " << value.item<double>() << "\n";
    torch::autograd::backward({value});
    moving = (moving - 0.5 * static_cast<double>(n) * moving.grad()).detach();
  }
  err.flush();
  return 0;
}

}  // namespace sinkhorn::cli
