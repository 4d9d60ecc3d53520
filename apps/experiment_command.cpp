// sinkhorn experiment NAME: the paper's experiments that need no training, written as CSV tables
// that experiments/plot.py draws (docs/reproduction.md).
//   interpolation      S_eps and E_eps from eps -> 0 (exact OT) to eps -> infinity (MMD_{-C})
//   sample_complexity  E S_eps(mu_n, mu'_n) against n, for several eps and dimensions
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>

#include "arguments.h"
#include "builtin_clouds.h"
#include "cli.h"
#include "reduce/cost_matrix.h"
#include "sinkhorn/divergence.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

// MMD with kernel -C, computed directly from the cost matrices (independent of the Sinkhorn code):
// MMD_{-C}(a, b) = 2 <a, C_xy b> - <a, C_xx a> - <b, C_yy b>, the eps -> infinity limit of E_eps
// (Genevay et al. 2018, theorem 1); S_eps tends to half of it.
double mmd_of_cost(const at::Tensor& x, const at::Tensor& y, int p) {
  const auto mean_cost = [p](const at::Tensor& u, const at::Tensor& v) {
    return reduce::cost_matrix(u.unsqueeze(0), v.unsqueeze(0), p).mean().item<double>();
  };
  return 2 * mean_cost(x, y) - mean_cost(x, x) - mean_cost(y, y);
}

std::ofstream open_table(const std::string& path, const std::string& header) {
  // Like `train --out`, the folder is created when missing.
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ignored);
  std::ofstream file(path);
  SINKHORN_CHECK(file, "--out: cannot write '" << path << "'");
  file << header << "\n" << std::setprecision(12);
  return file;
}

SinkhornOptions precise(Loss loss, int p, double blur) {
  SinkhornOptions options;
  options.loss = loss;
  options.p = p;
  options.blur = blur;
  options.tolerance = 1e-5;
  options.max_iterations = 20000;
  return options;
}

int interpolation(const ParsedArguments& args, std::ostream& out) {
  const int64_t n = args.integer("n").value_or(200);
  const int64_t points = args.integer("points").value_or(25);
  const std::string folder = args.value("out").value_or(".");
  const auto [x, y] = builtin_clouds(n, n);
  const double diameter = std::sqrt((at::cat({x, y}).amax(0) - at::cat({x, y}).amin(0)).square().sum().item<double>());
  for (const int p : {1, 2}) {
    const std::string path = folder + "/interpolation_p" + std::to_string(p) + ".csv";
    std::ofstream table = open_table(path, "eps_over_diameter_p,eps,blur,S_eps,E_eps,S_iterations,S_marginal_error,OT,MMD");
    const double ot = divergence(x, y, precise(Loss::ot, p, 1.0)).item<double>();
    const double mmd = mmd_of_cost(x, y, p);
    for (int64_t k = 0; k < points; ++k) {
      // eps / diameter^p from 1e-3 to 1e3, evenly in log scale.
      const double ratio = std::pow(10.0, -3.0 + 6.0 * static_cast<double>(k) / static_cast<double>(points - 1));
      const double eps = ratio * std::pow(diameter, p);
      const double blur = std::pow(eps, 1.0 / p);
      const DivergenceResult s = divergence_with_details({}, x, {}, y, precise(Loss::divergence, p, blur));
      const double e = divergence(x, y, precise(Loss::primal, p, blur)).item<double>();
      table << ratio << ',' << eps << ',' << blur << ',' << s.value.item<double>() << ',' << e << ','
            << s.diagnostics.iterations << ',' << s.diagnostics.marginal_error << ',' << ot << ',' << mmd << '\n';
    }
    out << "p = " << p << ": OT = " << ot << ", MMD_{-C} = " << mmd << " -> " << path << "\n";
  }
  return 0;
}

int sample_complexity(const ParsedArguments& args, std::ostream& out) {
  const int64_t largest = args.integer("n").value_or(1600);
  const int64_t repeats = args.integer("repeats").value_or(5);
  SINKHORN_CHECK(largest >= 8, "--n must be at least 8, got " << largest);
  SINKHORN_CHECK(repeats >= 2, "--repeats must be at least 2, got " << repeats);
  const std::string path = args.value("out").value_or(".") + "/sample_complexity.csv";
  std::ofstream table = open_table(path, "dimension,loss,eps,n,mean,std,seconds");
  at::manual_seed(args.integer("seed").value_or(0));
  // Two independent n-samples of the uniform law on [0, 1]^d: every loss between them tends to 0
  // at its own rate (OT: n^(-1/d) for d >= 3; MMD: n^(-1/2); S_eps in between, Genevay et al. 2019).
  for (const int64_t d : {2, 5, 10}) {
    for (const double eps : {-1.0, 0.01, 0.1, 1.0, 10.0, std::numeric_limits<double>::infinity()}) {  // -1: exact OT; infinity: MMD
      for (int64_t n = 8; n <= largest; n *= 2) {
        std::vector<double> values;
        const auto start = std::chrono::steady_clock::now();
        for (int64_t r = 0; r < repeats; ++r) {
          const at::Tensor u = at::rand({n, d}, at::kDouble), v = at::rand({n, d}, at::kDouble);
          if (eps < 0) values.push_back(divergence(u, v, precise(Loss::ot, 2, 1.0)).item<double>());
          else if (std::isinf(eps)) values.push_back(0.5 * mmd_of_cost(u, v, 2));
          else values.push_back(divergence(u, v, precise(Loss::divergence, 2, std::sqrt(eps))).item<double>());
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const at::Tensor t = at::tensor(values, at::kDouble);
        const char* loss = eps < 0 ? "ot" : std::isinf(eps) ? "mmd" : "divergence";
        table << d << ',' << loss << ',' << (eps < 0 ? 0.0 : eps) << ',' << n << ',' << t.mean().item<double>() << ','
              << t.std().item<double>() << ',' << seconds / static_cast<double>(repeats) << '\n';
      }
    }
    out << "dimension " << d << " done\n" << std::flush;
  }
  out << "-> " << path << "\n";
  return 0;
}

}  // namespace

int experiment_command(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err) {
  ArgumentParser parser("sinkhorn experiment NAME [options]",
                        "Runs one of the paper's experiments and writes its table(s) as CSV into --out:\n"
                        "  interpolation      S_eps and E_eps between the built-in clouds for eps / diameter^p\n"
                        "                     from 1e-3 to 1e3, with exact OT and MMD_{-C}, the two limits (p = 1, 2)\n"
                        "  sample_complexity  S_eps between two independent n-samples of U([0,1]^d) against n,\n"
                        "                     d in {2, 5, 10}, eps in {0.01, 0.1, 1, 10}, with OT and MMD\n"
                        "experiments/plot.py draws the figures (docs/reproduction.md).");
  parser.positional("NAME", "interpolation or sample_complexity")
      .option("out", "DIR", "folder for the CSV tables (default: the current folder)")
      .integer("n", "N", "interpolation: points per cloud (default 200); sample_complexity: largest n (default 1600)", 2, 1000000)
      .integer("points", "K", "interpolation: eps values (default 25)", 2, 10000)
      .integer("repeats", "R", "sample_complexity: independent draws per point (default 5)", 2, 100000)
      .integer("seed", "S", "sample_complexity: seed (default 0)", 0, kMaxSeed)
      .integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads);
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  const std::string& name = args.positionals()[0];
  if (name == "interpolation") return interpolation(args, out);
  if (name == "sample_complexity") return sample_complexity(args, out);
  err << "sinkhorn experiment: unknown experiment '" << name << "' (interpolation, sample_complexity)\n";
  return 2;
}

}  // namespace sinkhorn::cli
