// Uses only the installed headers: S_eps between a cloud and its translate by t is |t|^2 / 2 for
// p = 2, whatever eps (the cross term of the cost averages to zero under any plan), so the value
// is known without a solver. Prints it and exits 0 when it is right.
#include <sinkhorn/divergence.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

int main() {
  torch::manual_seed(0);
  const at::Tensor x = torch::rand({500, 3}, torch::kFloat64);
  const at::Tensor shift = torch::tensor({0.3, -0.1, 0.2}, torch::kFloat64);
  sinkhorn::SinkhornOptions options;
  options.blur = 0.1;
  options.tolerance = 1e-9;
  const double value = sinkhorn::divergence(x, x + shift, options).item<double>();
  const double expected = 0.5 * shift.pow(2).sum().item<double>();
  std::printf("S_eps = %.12f, expected %.12f\n", value, expected);
  try {
    sinkhorn::divergence(x, x.narrow(1, 0, 2), options);
    std::printf("mismatched dimensions were accepted\n");
    return 1;
  } catch (const sinkhorn::Error& error) {
    std::printf("bad input refused: %s\n", error.what());
  }
  return std::abs(value - expected) <= 1e-7 * expected ? 0 : 1;
}
