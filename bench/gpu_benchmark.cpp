// The GPU benchmark (issue: GPU end to end). On one CUDA device, in one run:
// - the card's float32 exponential throughput (ex2.approx), the ceiling of one exp per pair;
// - the debiased Sinkhorn divergence S_eps, value + gradient in x, blur 0.05, scaling 0.5, at
//   N = M in {10^4, 10^5, 10^6}, D in {3, 64}: ours (float32, backend auto) against a dense ATen
//   implementation on the same GPU (GeomLoss's tensorized algorithm: eps-scaling with averaged
//   symmetric updates over stored cost matrices, a last extrapolation step under autograd), both
//   measured against a float64 solve of ours where that fits in the time;
// - 100 symmetric iterations (fixed-L mode, OT_eps, f and g updated together) at N = M = 10^4,
//   D = 64, on both of our backends;
// - at 10^6 x 10^6: one sweep (one softmin over 10^12 pairs) for D = 3 and 64.
// Prints a Markdown table and writes gpu_benchmark.json into --out DIR.
// Usage: sinkhorn_gpu_benchmark [--out DIR] [--quick]   (--quick: sizes / 10, for a smoke run)
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/torch.h>

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "reduce/cuda/online_kernels.cuh"
#include "reduce/reducer.h"
#include "sinkhorn/divergence.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void synchronize() { c10::cuda::device_synchronize(); }

// Seconds of one run of `body`, the median of 3 after a warm-up run (the first run pays for
// allocations and the caches of the backends).
double median_of_three_after_warm_up(const std::function<void()>& body) {
  std::vector<double> times;
  for (int r = 0; r < 4; ++r) {
    synchronize();
    const auto start = Clock::now();
    body();
    synchronize();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin() + 1, times.end());
  return times[2];
}

// x uniform in the unit cube, y a Gaussian blob shifted off its centre: two families per run.
std::pair<at::Tensor, at::Tensor> clouds(int64_t n, int64_t d, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::rand({n, d}, at::kDouble);
  const at::Tensor y = 0.5 + 0.15 * at::randn({n, d}, at::kDouble) + 0.1;
  return {x.to(at::kCUDA), y.to(at::kCUDA)};
}

// -eps log sum_j exp(h_j - cost_ij / eps) over a stored float32 (n, m) matrix on the current
// stream, by the fused kernel with the schedule given (online_kernels.cuh).
at::Tensor dense_softmin_with(const at::Tensor& cost, const at::Tensor& h, double eps,
                              sinkhorn::reduce::cuda::DenseSchedule schedule) {
  at::Tensor out = at::empty({cost.size(0)}, cost.options());
  sinkhorn::reduce::cuda::DenseSoftminProblem<float> problem;
  problem.cost = cost.data_ptr<float>();
  problem.h = h.data_ptr<float>();
  problem.batch = 1, problem.n = cost.size(0), problem.m = cost.size(1), problem.eps = eps;
  problem.out = out.data_ptr<float>();
  problem.stream = at::cuda::getCurrentCUDAStream().stream();
  problem.schedule = schedule;
  sinkhorn::reduce::cuda::dense_softmin(problem);
  return out;
}

struct Outcome {
  double seconds = 0, value = NAN;
  int sweeps = 0;
  at::Tensor gradient;
  std::string backend;
};

Outcome ours(const at::Tensor& x64, const at::Tensor& y64, at::ScalarType dtype, double tolerance) {
  sinkhorn::SinkhornOptions options;
  options.blur = 0.05;
  options.scaling = 0.5;
  options.tolerance = tolerance;
  at::Tensor x = x64.detach().to(dtype, false, true).requires_grad_(true);  // a fresh leaf
  const at::Tensor y = y64.to(dtype);
  synchronize();
  const auto start = Clock::now();
  sinkhorn::DivergenceResult result = sinkhorn::divergence_with_details({}, x, {}, y, options);
  result.value.backward();
  synchronize();
  Outcome outcome;
  outcome.seconds = seconds_since(start);
  outcome.value = result.value.item<double>();
  outcome.gradient = x.grad().to(at::kDouble);
  outcome.sweeps = result.diagnostics.iterations;
  outcome.backend = result.diagnostics.backend;
  return outcome;
}

// GeomLoss's tensorized S_eps (sinkhorn_divergence with debias, scaling 0.5) in ATen ops.
Outcome dense(const at::Tensor& x64, const at::Tensor& y64, at::ScalarType dtype) {
  const double blur = 0.05, scaling = 0.5;
  at::Tensor x = x64.detach().to(dtype, false, true).requires_grad_(true);
  const at::Tensor y = y64.to(dtype);
  synchronize();
  const auto start = Clock::now();
  const auto cost = [](const at::Tensor& u, const at::Tensor& v) {
    return 0.5 * (u.pow(2).sum(1, true) + v.pow(2).sum(1).unsqueeze(0) - 2 * at::mm(u, v.t())).clamp_min(0);
  };
  const int64_t n = x.size(0), m = y.size(0);
  const at::Tensor a_log = at::full({n}, -std::log(static_cast<double>(n)), x.options().requires_grad(false));
  const at::Tensor b_log = at::full({m}, -std::log(static_cast<double>(m)), x.options().requires_grad(false));
  const auto softmin = [](double eps, const at::Tensor& c, const at::Tensor& h) {
    return -eps * at::logsumexp(h.unsqueeze(0) - c / eps, 1);
  };
  const at::Tensor both = at::cat({x.detach(), y});
  const double diameter = (std::get<0>(both.max(0)) - std::get<0>(both.min(0))).norm().item<double>();
  std::vector<double> schedule;  // eps = sigma^2 / 2... GeomLoss: eps = sigma^p with sigma from diameter down to blur
  for (double sigma = diameter; sigma > blur; sigma *= scaling) schedule.push_back(sigma * sigma);
  schedule.push_back(blur * blur);
  at::Tensor f_ba, g_ab, f_aa, g_bb;
  {
    at::NoGradGuard no_grad;
    const at::Tensor xd = x.detach();
    const at::Tensor c_xy = cost(xd, y), c_yx = c_xy.t().contiguous(), c_xx = cost(xd, xd), c_yy = cost(y, y);
    double eps = schedule.front();
    f_ba = softmin(eps, c_xy, b_log), g_ab = softmin(eps, c_yx, a_log);
    f_aa = softmin(eps, c_xx, a_log), g_bb = softmin(eps, c_yy, b_log);
    for (const double e : schedule) {
      eps = e;
      const at::Tensor ft_ba = softmin(eps, c_xy, b_log + g_ab / eps), gt_ab = softmin(eps, c_yx, a_log + f_ba / eps);
      const at::Tensor ft_aa = softmin(eps, c_xx, a_log + f_aa / eps), gt_bb = softmin(eps, c_yy, b_log + g_bb / eps);
      f_ba = 0.5 * (f_ba + ft_ba), g_ab = 0.5 * (g_ab + gt_ab);
      f_aa = 0.5 * (f_aa + ft_aa), g_bb = 0.5 * (g_bb + gt_bb);
    }
  }
  // The last extrapolation step, differentiable in x through the cost matrices.
  const double eps = schedule.back();
  const at::Tensor f_final = softmin(eps, cost(x, y), b_log + g_ab.detach() / eps);
  const at::Tensor g_final = softmin(eps, cost(y, x), a_log + f_ba.detach() / eps);
  const at::Tensor f_self = softmin(eps, cost(x, x.detach()), a_log + f_aa.detach() / eps);
  const at::Tensor value = (f_final - f_self).mean() + (g_final - g_bb).mean();
  value.backward();
  synchronize();
  Outcome outcome;
  outcome.seconds = seconds_since(start);
  outcome.value = value.item<double>();
  outcome.gradient = x.grad().to(at::kDouble);
  outcome.sweeps = static_cast<int>(schedule.size()) + 1;
  outcome.backend = "dense ATen";
  return outcome;
}

double relative_error(double got, double expected) { return std::abs(got - expected) / std::abs(expected); }
double gradient_error(const at::Tensor& got, const at::Tensor& expected) {
  return ((got - expected).norm() / expected.norm()).item<double>();
}

struct Row {
  int64_t n, d;
  std::string method, backend;
  double seconds, value, value_error, gradient_error;
  int sweeps;
};

std::string number(double v, int precision = 3) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  s.precision(precision);
  s << v;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  const auto run_start = Clock::now();
  std::string out_dir = ".";
  bool quick = false;
  int64_t max_n = 1000000;  // --max-n: leave out the larger sizes (the 10^6 solve takes minutes)
  for (int k = 1; k < argc; ++k) {
    if (std::strcmp(argv[k], "--out") == 0 && k + 1 < argc) {
      out_dir = argv[++k];
    } else if (std::strcmp(argv[k], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[k], "--max-n") == 0 && k + 1 < argc) {
      max_n = std::stoll(argv[++k]);
    } else {
      std::cerr << "usage: sinkhorn_gpu_benchmark [--out DIR] [--quick]\n";
      return 2;
    }
  }
  if (!at::hasCUDA()) {
    std::cerr << "sinkhorn_gpu_benchmark: no CUDA device\n";
    return 1;
  }
  const int64_t scale = quick ? 10 : 1;
  std::ostringstream json;
  json << "{\n  \"device\": \"" << at::cuda::getDeviceProperties(0)->name << "\",\n";

  const double exp_rate = sinkhorn::reduce::cuda::exp_throughput(int64_t{1} << 35);
  std::printf("exp throughput (ex2.approx.f32): %.3g exp/s\n", exp_rate);
  json << "  \"exp_per_second\": " << exp_rate << ",\n";

  // One softmin sweep over N x N pairs: the kernel alone (h = 0), seconds and pairs/s.
  const auto sweep = [&](int64_t n, int64_t d) {
    const auto [x, y] = clouds(n, d, 11);
    const at::Tensor xf = x.to(at::kFloat).unsqueeze(0), yf = y.to(at::kFloat).unsqueeze(0);
    const at::Tensor h = at::zeros({1, n}, xf.options());
    const auto reducer = sinkhorn::reduce::make_reducer(sinkhorn::Backend::online, 2, xf, yf);
    reducer->softmin(xf, yf, h, 0.0025);  // warm-up
    synchronize();
    const auto start = Clock::now();
    const int repeats = n >= 1000000 ? 1 : 5;
    for (int r = 0; r < repeats; ++r) reducer->softmin(xf, yf, h, 0.0025);
    synchronize();
    return seconds_since(start) / repeats;
  };
  json << "  \"sweeps\": [\n";
  bool first_sweep = true;
  for (const int64_t d : {3, 64}) {
    for (const int64_t n : {int64_t{10000}, int64_t{100000}, int64_t{1000000} / scale}) {
      if (n > max_n) continue;
      double s = NAN;
      try {
        s = sweep(n, d);
      } catch (const std::exception& failure) {
        std::printf("sweep N = %lld, D = %lld failed: %s\n", static_cast<long long>(n), static_cast<long long>(d), failure.what());
        continue;
      }
      const double pairs = static_cast<double>(n) * n;
      std::printf("one online softmin sweep N = M = %lld, D = %lld: %.4g s, %.3g pairs/s (%.0f%% of the exp rate)\n",
                  static_cast<long long>(n), static_cast<long long>(d), s, pairs / s, 100 * pairs / s / exp_rate);
      json << (first_sweep ? "" : ",\n") << "    {\"n\": " << n << ", \"d\": " << d << ", \"seconds\": " << s
           << ", \"pairs_per_second\": " << pairs / s << "}";
      first_sweep = false;
      std::fflush(stdout);
    }
  }
  json << "\n  ],\n";

  // 100 symmetric iterations at N = M = 10^4, D = 64 (OT_eps, fixed L, no gradient).
  json << "  \"symmetric_iterations\": [\n";
  for (const sinkhorn::Backend backend : {sinkhorn::Backend::automatic, sinkhorn::Backend::online}) {
    const auto [x, y] = clouds(10000 / scale, 64, 5);
    const at::Tensor xf = x.to(at::kFloat), yf = y.to(at::kFloat);
    sinkhorn::SinkhornOptions options;
    options.loss = sinkhorn::Loss::ot_eps;
    options.iterations = 100;
    options.blur = 0.5;
    options.backend = backend;
    std::string name;
    const double seconds = median_of_three_after_warm_up(
        [&] { name = sinkhorn::divergence_with_details({}, xf, {}, yf, options).diagnostics.backend; });
    std::printf("100 symmetric iterations N = M = %lld, D = 64 (%s): %.2f ms (median of 3)\n",
                static_cast<long long>(10000 / scale), name.c_str(), 1e3 * seconds);
    json << (backend == sinkhorn::Backend::automatic ? "" : ",\n") << "    {\"backend\": \"" << name
         << "\", \"milliseconds\": " << 1e3 * seconds << "}";
    std::fflush(stdout);
  }
  json << "\n  ],\n";
  // The same 100 alternating iterations written directly over stored C and C^T on each schedule of
  // the fused kernel (h = log w + g / eps by one add, no marginal error, the matrices built
  // beforehand): what the kernels alone allow, and which schedule the library should keep.
  {
    at::NoGradGuard no_grad;
    const int64_t n = 10000 / scale;
    const auto [x, y] = clouds(n, 64, 5);
    const at::Tensor xf = x.to(at::kFloat), yf = y.to(at::kFloat);
    const double eps = 0.25;  // blur 0.5, p = 2, as above
    const at::Tensor c_xy = (0.5 * at::cdist(xf, yf).pow(2)).contiguous(), c_yx = c_xy.t().contiguous();
    const at::Tensor log_weights = at::full({n}, -std::log(static_cast<double>(n)), xf.options());
    for (const auto schedule : {sinkhorn::reduce::cuda::DenseSchedule::warp_per_row,
                                sinkhorn::reduce::cuda::DenseSchedule::block_per_row}) {
      at::Tensor f, g;
      const double seconds = median_of_three_after_warm_up([&] {
        g = at::zeros({n}, xf.options());
        for (int l = 0; l < 100; ++l) {
          f = dense_softmin_with(c_xy, at::add(log_weights, g, 1.0 / eps), eps, schedule);
          g = dense_softmin_with(c_yx, at::add(log_weights, f, 1.0 / eps), eps, schedule);
        }
      });
      const char* label = schedule == sinkhorn::reduce::cuda::DenseSchedule::warp_per_row ? "warp_per_row" : "block_per_row";
      std::printf("  the same loop written over the fused kernel (%s): %.2f ms (median of 3), f[0] = %.6g\n", label,
                  1e3 * seconds, f[0].item<double>());
      json << "  \"direct_loop_" << label << "_milliseconds\": " << 1e3 * seconds << ",\n";
      std::fflush(stdout);
    }
  }

  // One softmin over a stored 10^4 x 10^4 float32 matrix: the tensorized backend's fused kernel
  // against ATen's expression (h - C / eps, then logsumexp), and the bytes per second it reaches.
  {
    const int64_t n = 10000 / scale;
    const auto [x, y] = clouds(n, 64, 9);
    const at::Tensor xf = x.to(at::kFloat).unsqueeze(0), yf = y.to(at::kFloat).unsqueeze(0);
    const at::Tensor h = at::zeros({1, n}, xf.options());
    const auto reducer = sinkhorn::reduce::make_reducer(sinkhorn::Backend::tensorized, 2, xf, yf);
    const at::Tensor cost = 0.5 * at::cdist(xf, yf).pow(2);
    const auto time = [&](const std::function<void()>& body) {
      body();
      synchronize();
      const auto start = Clock::now();
      for (int r = 0; r < 20; ++r) body();
      synchronize();
      return seconds_since(start) / 20;
    };
    at::NoGradGuard no_grad;
    const double fused = time([&] { reducer->softmin(xf, yf, h, 0.25); });
    const double aten = time([&] { (-0.25 * at::logsumexp(h.unsqueeze(1) - cost / 0.25, 2)).sum(); });
    const double bytes = 4.0 * n * n;
    std::printf("softmin over a stored %lld x %lld matrix: fused %.1f us (%.2f TB/s), ATen %.1f us (%.2f TB/s)\n",
                static_cast<long long>(n), static_cast<long long>(n), 1e6 * fused, bytes / fused / 1e12, 1e6 * aten,
                bytes / aten / 1e12);
    // The two schedules of the fused kernel on the same matrix (online_kernels.cuh, DenseSchedule),
    // launched directly on the current stream, and how far apart their results are.
    const at::Tensor matrix = cost[0].contiguous(), potentials = h[0].contiguous();
    at::Tensor warp_out, block_out;
    const double warp = time([&] {
      warp_out = dense_softmin_with(matrix, potentials, 0.25, sinkhorn::reduce::cuda::DenseSchedule::warp_per_row);
    });
    const double block = time([&] {
      block_out = dense_softmin_with(matrix, potentials, 0.25, sinkhorn::reduce::cuda::DenseSchedule::block_per_row);
    });
    const double gap = (warp_out - block_out).abs().max().item<double>();
    std::printf("  schedules: warp per row %.1f us (%.2f TB/s), block per row %.1f us (%.2f TB/s), "
                "largest difference %.2e\n",
                1e6 * warp, bytes / warp / 1e12, 1e6 * block, bytes / block / 1e12, gap);
    json << "  \"stored_matrix_softmin\": {\"n\": " << n << ", \"fused_seconds\": " << fused
         << ", \"aten_seconds\": " << aten << ", \"warp_per_row_seconds\": " << warp
         << ", \"block_per_row_seconds\": " << block << ", \"schedules_largest_difference\": " << gap << "},\n";
    std::fflush(stdout);
  }

  // The divergence grid, the small sizes first: each row is printed (and appended to
  // divergence_rows.md) as soon as it is measured, so a run cut short still reports what it did.
  std::vector<Row> rows;
  const std::string table_header =
      "| N = M | D | method | backend | seconds (value + gradient) | sweeps | S_eps | rel. error of S_eps | rel. error of grad |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  const auto table_row = [](const Row& r) {
    std::ostringstream line;
    line << "| " << r.n << " | " << r.d << " | " << r.method << " | " << r.backend << " | " << number(r.seconds, 4)
         << " | " << r.sweeps << " | " << number(r.value, 8) << " | " << number(r.value_error, 2) << " | "
         << number(r.gradient_error, 2) << " |\n";
    return line.str();
  };
  std::ofstream(out_dir + "/divergence_rows.md") << table_header;
  const auto record = [&](const Row& r) {
    rows.push_back(r);
    std::ofstream(out_dir + "/divergence_rows.md", std::ios::app) << table_row(r);
    std::printf("%s", table_row(r).c_str());
    std::fflush(stdout);
  };
  const std::vector<std::pair<int64_t, int64_t>> grid = {
      {10000 / scale, 3}, {10000 / scale, 64}, {100000 / scale, 3}, {100000 / scale, 64}, {1000000 / scale, 3}};
  for (const auto& [n, d] : grid) {
    if (n > max_n) continue;
    std::printf("N = M = %lld, D = %lld: starting at %.0f s\n", static_cast<long long>(n), static_cast<long long>(d),
                seconds_since(run_start));
    std::fflush(stdout);
    try {
      const auto [x, y] = clouds(n, d, 1);
      // A float64 reference where it fits in the run (the float64 kernels are ~30x slower).
      const bool reference = n <= 10000 || (d == 3 && n <= 100000);
      Outcome exact;
      if (reference) exact = ours(x, y, at::kDouble, 1e-7);
      ours(x.narrow(0, 0, std::min<int64_t>(n, 1000)), y.narrow(0, 0, std::min<int64_t>(n, 1000)), at::kFloat, 1e-4);  // warm-up
      const Outcome mine = ours(x, y, at::kFloat, 1e-4);
      record({n, d, "ours float32", mine.backend, mine.seconds, mine.value,
              reference ? relative_error(mine.value, exact.value) : NAN,
              reference ? gradient_error(mine.gradient, exact.gradient) : NAN, mine.sweeps});
      if (n <= 10000) {  // 3 matrices of N^2 floats and autograd's copies: 10^5 would need > 140 GB
        const Outcome theirs = dense(x, y, at::kFloat);
        record({n, d, "dense ATen float32", theirs.backend, theirs.seconds, theirs.value,
                reference ? relative_error(theirs.value, exact.value) : NAN,
                reference ? gradient_error(theirs.gradient, exact.gradient) : NAN, theirs.sweeps});
      }
      if (reference) record({n, d, "ours float64", exact.backend, exact.seconds, exact.value, 0, 0, exact.sweeps});
    } catch (const std::exception& failure) {
      std::printf("N = M = %lld, D = %lld failed: %s\n", static_cast<long long>(n), static_cast<long long>(d), failure.what());
    }
  }
  json << "  \"divergence\": [\n";
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    json << "    {\"n\": " << r.n << ", \"d\": " << r.d << ", \"method\": \"" << r.method << "\", \"backend\": \""
         << r.backend << "\", \"seconds\": " << r.seconds << ", \"sweeps\": " << r.sweeps << ", \"value\": " << r.value
         << ", \"value_error\": " << (std::isnan(r.value_error) ? std::string("null") : number(r.value_error, 4))
         << ", \"gradient_error\": " << (std::isnan(r.gradient_error) ? std::string("null") : number(r.gradient_error, 4))
         << "}" << (k + 1 < rows.size() ? ",\n" : "\n");
  }
  json << "  ]\n}\n";
  std::ofstream(out_dir + "/gpu_benchmark.json") << json.str();
  return 0;
}
