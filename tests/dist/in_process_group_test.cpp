// Sharded solves with ranks that are threads of one process (dist/in_process_group.h): 2 and 3
// ranks against the one-process solve (values, potentials and gradients, rank blocks joined; bit
// for bit on the online backend), their corrected sweeps on clusters, and
// the ranks' agreement: a differing option or a refused block fails every rank, naming it.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/sharded_divergence.h"
#include "dist/in_process_group.h"
#include "sinkhorn/error.h"
#include "test_support.h"

namespace sinkhorn::dist {
namespace {

struct RankOutcome {
  DivergenceResult result;
  at::Tensor grad_x, grad_y;
  std::string error;     ///< the message of an Error, else empty
  std::string argument;  ///< its argument
};

// Runs `solve(rank, group)` on `ranks` threads, one group each.
std::vector<RankOutcome> on_ranks(int ranks, const std::function<RankOutcome(int, std::shared_ptr<const Group>)>& solve) {
  const std::vector<std::shared_ptr<const Group>> groups = make_in_process_groups(ranks, std::chrono::seconds(30));
  std::vector<RankOutcome> outcomes(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        outcomes[r] = solve(r, groups[r]);
      } catch (const Error& error) {
        outcomes[r].error = error.what();
        outcomes[r].argument = error.argument();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return outcomes;
}

at::Tensor block(const at::Tensor& rows, int ranks, int rank) {
  const std::vector<int64_t> counts = even_blocks(rows.size(0), ranks);
  return rows.narrow(0, first_row(counts, rank), counts[rank]);
}

class InProcessRanks : public ::testing::TestWithParam<std::tuple<int, Backend, Loss>> {};

TEST_P(InProcessRanks, MatchOneProcess) {
  const auto [ranks, backend, loss] = GetParam();
  at::set_num_threads(1);
  at::manual_seed(51);
  const at::Tensor x = at::randn({37, 3}, at::kDouble), y = at::randn({29, 3}, at::kDouble) + 0.4;
  const at::Tensor a = testing::random_weights(37), b = testing::random_weights(29);
  SinkhornOptions options;
  options.blur = 0.2;
  options.backend = backend;
  options.loss = loss;
  options.tolerance = 1e-8;
  const auto solve = [&](const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& as, const at::Tensor& bs,
                         const std::shared_ptr<const Group>& group) {
    RankOutcome outcome;
    const at::Tensor xg = xs.clone().requires_grad_(true), yg = ys.clone().requires_grad_(true);
    outcome.result = api::divergence_over(as, xg, bs, yg, options, group);
    const std::vector<at::Tensor> gradients = torch::autograd::grad({outcome.result.value}, {xg, yg});
    outcome.grad_x = gradients[0];
    outcome.grad_y = gradients[1];
    return outcome;
  };
  const RankOutcome single = solve(x, y, a, b, nullptr);
  const std::vector<RankOutcome> sharded = on_ranks(ranks, [&](int r, std::shared_ptr<const Group> group) {
    return solve(block(x, ranks, r), block(y, ranks, r), block(a, ranks, r), block(b, ranks, r), group);
  });
  // Bit for bit where each rank's reduction of its rows is the one process's reduction of those
  // rows (the online kernels: a row's result does not depend on the rows beside it) and the ranks
  // exchange whole rows, never partial sums. The tensorized backend builds its cost matrix with a
  // BLAS product whose blocking, and so the last bit of a row's entries, depends on the block's
  // shape: there a few ulps.
  const bool tensorized = backend == Backend::tensorized || backend == Backend::automatic;
  const double tolerance = tensorized ? 1e-13 : 0.0;
  std::vector<at::Tensor> grad_x, grad_y, f_ab, g_ab;
  for (const RankOutcome& outcome : sharded) {
    ASSERT_EQ(outcome.error, "");
    EXPECT_EQ(outcome.result.diagnostics.world_size, ranks);
    EXPECT_EQ(outcome.result.diagnostics.iterations, single.result.diagnostics.iterations);
    EXPECT_LE(std::abs(outcome.result.value.item<double>() - single.result.value.item<double>()),
              tolerance * std::abs(single.result.value.item<double>()));
    grad_x.push_back(outcome.grad_x);
    grad_y.push_back(outcome.grad_y);
    f_ab.push_back(outcome.result.potentials.f_ab);
    g_ab.push_back(outcome.result.potentials.g_ab);
  }
  const auto close = [&](const at::Tensor& joined, const at::Tensor& expected) {
    return (joined - expected).abs().max().item<double>() <= tolerance * (1 + expected.abs().max().item<double>());
  };
  EXPECT_TRUE(close(at::cat(grad_x), single.grad_x));
  EXPECT_TRUE(close(at::cat(grad_y), single.grad_y));
  EXPECT_TRUE(close(at::cat(f_ab), single.result.potentials.f_ab));
  EXPECT_TRUE(close(at::cat(g_ab), single.result.potentials.g_ab));
}

INSTANTIATE_TEST_SUITE_P(RanksBackendsLosses, InProcessRanks,
                         ::testing::Values(std::make_tuple(2, Backend::online, Loss::divergence),
                                           std::make_tuple(3, Backend::online, Loss::divergence),
                                           std::make_tuple(3, Backend::tensorized, Loss::ot_eps),
                                           std::make_tuple(2, Backend::automatic, Loss::primal),
                                           std::make_tuple(2, Backend::online, Loss::ot_eps)));

// Corrected sweeps (solver/coarse_correction.h) in a sharded solve: each rank sums its own rows
// per cluster and the ranks gather them, so 2 and 3 ranks take the one process's corrected sweeps
// on a clustered mixture whose plain loop crawls, and end where it does to rounding (the online
// kernels form 16-D costs by matrix products whose blocking follows the rows' count: an ulp).
TEST(InProcessRanks, TakeTheOneProcesssCorrectedSweepsOnAClusteredMixture) {
  at::set_num_threads(1);
  at::manual_seed(11);
  const at::Tensor centres = at::randn({6, 16}, at::kDouble);
  const auto mixture = [&](int64_t n, double scale, uint64_t seed) {
    at::manual_seed(seed);
    const at::Tensor labels = at::randint(0, 6, {n}, at::kLong);
    return scale * centres.index_select(0, labels) + 0.1 * at::randn({n, 16}, at::kDouble);
  };
  const at::Tensor x = mixture(120, 1.0, 1), y = mixture(100, 0.9, 2);
  const at::Tensor a = testing::random_weights(120), b = testing::random_weights(100);
  SinkhornOptions options;
  options.blur = 0.5;
  options.backend = Backend::online;
  options.loss = Loss::ot_eps;
  const auto solve = [&](const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& as, const at::Tensor& bs,
                         const std::shared_ptr<const Group>& group) {
    RankOutcome outcome;
    outcome.result = api::divergence_over(as, xs, bs, ys, options, group);
    return outcome;
  };
  const RankOutcome single = solve(x, y, a, b, nullptr);
  ASSERT_GT(single.result.diagnostics.corrected_sweeps, 0);
  ASSERT_TRUE(single.result.diagnostics.converged);
  for (int ranks : {2, 3}) {
    const std::vector<RankOutcome> sharded = on_ranks(ranks, [&](int r, std::shared_ptr<const Group> group) {
      return solve(block(x, ranks, r), block(y, ranks, r), block(a, ranks, r), block(b, ranks, r), group);
    });
    std::vector<at::Tensor> f_ab;
    for (const RankOutcome& outcome : sharded) {
      ASSERT_EQ(outcome.error, "");
      EXPECT_EQ(outcome.result.diagnostics.corrected_sweeps, single.result.diagnostics.corrected_sweeps) << ranks;
      EXPECT_EQ(outcome.result.diagnostics.iterations, single.result.diagnostics.iterations) << ranks;
      EXPECT_NEAR(outcome.result.value.item<double>(), single.result.value.item<double>(),
                  1e-13 * std::abs(single.result.value.item<double>()))
          << ranks;
      f_ab.push_back(outcome.result.potentials.f_ab);
    }
    EXPECT_LE((at::cat(f_ab) - single.result.potentials.f_ab).abs().max().item<double>(),
              1e-13 * (1 + single.result.potentials.f_ab.abs().max().item<double>()))
        << ranks;
  }
}

// The problem split of data-parallel training (api::ProblemSplit): every rank holds the whole
// clouds, OT(a, b), OT(a, a) and OT(b, b) are solved on ranks 0, 1 (and 2), the potentials are
// exchanged once. The three problems are independent, so the value and the potentials are the
// one process's to rounding; each rank's gradient holds its own rows only, and the ranks' sum is
// the one process's gradient. From four ranks on, the ranks past the third solve nothing. A loss
// without symmetric problems (OT_eps) is solved whole on every rank.
TEST(InProcessRanks, SplitTheProblemsAndEndWhereOneProcessEnds) {
  at::set_num_threads(1);
  at::manual_seed(23);
  const at::Tensor x = at::randn({41, 2}, at::kDouble), y = 0.7 * at::randn({35, 2}, at::kDouble) + 0.5;
  const at::Tensor a = testing::random_weights(41), b = testing::random_weights(35);
  for (const Loss loss : {Loss::divergence, Loss::ot_eps}) {
    for (const Backend backend : {Backend::online, Backend::tensorized}) {
      SinkhornOptions options;
      options.blur = 0.1;
      options.tolerance = 1e-9;
      options.loss = loss;
      options.backend = backend;
      const auto solve = [&](const std::optional<api::ProblemSplit>& split) {
        RankOutcome outcome;
        const at::Tensor xg = x.clone().requires_grad_(true), yg = y.clone().requires_grad_(true);
        outcome.result = split ? api::divergence_split(a, xg, b, yg, options, *split)
                               : api::divergence_over(a, xg, b, yg, options, nullptr);
        const std::vector<at::Tensor> gradients = torch::autograd::grad({outcome.result.value}, {xg, yg});
        outcome.grad_x = gradients[0];
        outcome.grad_y = gradients[1];
        return outcome;
      };
      const RankOutcome single = solve(std::nullopt);
      ASSERT_TRUE(single.result.diagnostics.converged);
      for (int ranks : {2, 3, 4}) {
        SCOPED_TRACE(::testing::Message() << "loss " << static_cast<int>(loss) << ", backend "
                                          << static_cast<int>(backend) << ", " << ranks << " ranks");
        const std::vector<RankOutcome> split = on_ranks(ranks, [&](int, std::shared_ptr<const Group> group) {
          return solve(api::ProblemSplit{group, even_blocks(41, ranks), even_blocks(35, ranks)});
        });
        at::Tensor grad_x = at::zeros_like(x), grad_y = at::zeros_like(y);
        for (int r = 0; r < ranks; ++r) {
          const RankOutcome& outcome = split[r];
          ASSERT_EQ(outcome.error, "");
          EXPECT_EQ(outcome.result.diagnostics.world_size, ranks);
          EXPECT_TRUE(outcome.result.diagnostics.converged);
          EXPECT_LE(outcome.result.diagnostics.iterations, single.result.diagnostics.iterations);
          EXPECT_NEAR(outcome.result.value.item<double>(), single.result.value.item<double>(),
                      1e-12 * std::abs(single.result.value.item<double>()));
          grad_x += outcome.grad_x;
          grad_y += outcome.grad_y;
          if (loss == Loss::divergence) {
            // Rows another rank owns are 0 here: their gradients are that rank's to compute.
            const std::vector<int64_t> counts = even_blocks(41, ranks);
            const at::Tensor others = at::cat({outcome.grad_x.narrow(0, 0, first_row(counts, r)),
                                               outcome.grad_x.narrow(0, first_row(counts, r) + counts[r],
                                                                     41 - first_row(counts, r) - counts[r])});
            EXPECT_EQ(others.abs().sum().item<double>(), 0.0);
          }
        }
        // OT_eps is solved whole on every rank: each holds the whole gradient.
        const double copies = loss == Loss::divergence ? 1.0 : ranks;
        EXPECT_LE((grad_x / copies - single.grad_x).abs().max().item<double>(),
                  1e-10 * (1 + single.grad_x.abs().max().item<double>()));
        EXPECT_LE((grad_y / copies - single.grad_y).abs().max().item<double>(),
                  1e-10 * (1 + single.grad_y.abs().max().item<double>()));
      }
    }
  }
}

TEST(InProcessRanks, ADifferingOptionFailsEveryRankNamingIt) {
  at::manual_seed(52);
  const at::Tensor x = at::randn({12, 2}, at::kDouble), y = at::randn({10, 2}, at::kDouble);
  const std::vector<RankOutcome> outcomes = on_ranks(2, [&](int r, std::shared_ptr<const Group> group) {
    SinkhornOptions options;
    if (r == 1) options.p = 1;
    RankOutcome outcome;
    outcome.result = api::divergence_over({}, block(x, 2, r), {}, block(y, 2, r), options, group);
    return outcome;
  });
  for (const RankOutcome& outcome : outcomes) {
    EXPECT_EQ(outcome.argument, "p");
    EXPECT_NE(outcome.error.find("differs between the ranks: 2 on rank 0, 1 on rank 1"), std::string::npos)
        << outcome.error;
  }
}

TEST(InProcessRanks, ARefusedBlockIsNamedByTheOthers) {
  at::manual_seed(53);
  const at::Tensor x = at::randn({9, 2}, at::kDouble), y = at::randn({9, 2}, at::kDouble);
  const std::vector<RankOutcome> outcomes = on_ranks(3, [&](int r, std::shared_ptr<const Group> group) {
    at::Tensor mine = block(x, 3, r).clone();
    if (r == 2) mine[0][0] = NAN;
    RankOutcome outcome;
    outcome.result = api::divergence_over({}, mine, {}, block(y, 3, r), SinkhornOptions{}, group);
    return outcome;
  });
  EXPECT_EQ(outcomes[2].argument, "x");
  for (int r : {0, 1}) {
    EXPECT_EQ(outcomes[r].error, "rank 2 refused its inputs: x contains NaN or infinite values") << r;
  }
}

}  // namespace
}  // namespace sinkhorn::dist
