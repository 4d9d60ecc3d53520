#include "gen/data_parallel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <vector>

#include "dist/sharded_autograd.h"
#include "util/check.h"

namespace sinkhorn::gen {

std::shared_ptr<const dist::Group> DataParallel::shared_group() const {
  return group_ ? std::shared_ptr<const dist::Group>(std::shared_ptr<const dist::Group>(), group_) : nullptr;
}

at::Tensor DataParallel::share(const at::Tensor& batch) const {
  return group_ ? dist::own_block(batch, *group_) : batch;
}

bool DataParallel::on_any_rank(bool flag) const {
  if (!group_) return flag;
  std::vector<double> value{flag ? 1.0 : 0.0};
  group_->allreduce_max(value, device_);
  return value[0] != 0.0;
}

bool DataParallel::sum_gradients(torch::nn::Module& module, bool flag) const {
  if (!group_) return flag;
  std::vector<at::Tensor> gradients;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.grad().defined()) gradients.push_back(parameter.grad());
  }
  if (gradients.empty()) return on_any_rank(flag);
  std::vector<at::Tensor> flat;
  for (const at::Tensor& gradient : gradients) flat.push_back(gradient.reshape({-1}));
  // The flag as one more number (0 or 1 per rank): its sum is positive where any rank set it.
  flat.push_back(at::full({1}, flag ? 1.0 : 0.0, gradients.front().options()));
  at::Tensor buffer = at::cat(flat);
  group_->allreduce_sum_(buffer);
  int64_t offset = 0;
  for (at::Tensor& gradient : gradients) {
    gradient.copy_(buffer.narrow(0, offset, gradient.numel()).view_as(gradient));
    offset += gradient.numel();
  }
  return buffer[offset].item<double>() > 0.5;
}

DataParallelSolve DataParallel::plan(int64_t rows, int64_t columns, DataParallelSolve choice, std::string* message) {
  if (!group_) return DataParallelSolve::gathered;
  if (plan_) return *plan_;
  const int ranks = group_->size();
  std::ostringstream said;
  if (choice != DataParallelSolve::automatic) {
    plan_ = choice;
    said << "--data-parallel-solve " << to_string(choice) << ": ";
  } else {
    // The group's latency: the median of a few all-reduce round trips, the ranks' largest.
    std::vector<double> seconds;
    for (int k = 0; k < 7; ++k) {
      std::vector<double> value{0.0};
      const auto start = std::chrono::steady_clock::now();
      group_->allreduce_max(value, device_);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::nth_element(seconds.begin(), seconds.begin() + 3, seconds.end());
    std::vector<double> latency{seconds[3]};
    group_->allreduce_max(latency, device_);
    const double rate = kPairsPerSecondPerThread * std::max(1, at::get_num_threads());
    const double n = static_cast<double>(rows), m = static_cast<double>(columns);
    const double sweep = 3.0 * n * m / rate;
    const double sharded_saves = sweep * (1.0 - 1.0 / ranks), sharded_pays = kCollectivesPerSweep * latency[0];
    const double split_saves = kSymmetricSweeps * (n * n + m * m) / rate, split_pays = latency[0];
    plan_ = sharded_saves > sharded_pays ? DataParallelSolve::sharded
            : split_saves > split_pays   ? DataParallelSolve::split
                                         : DataParallelSolve::gathered;
    said << "auto: on " << ranks << " ranks (latency " << latency[0] * 1e6 << " us), sharding a sweep of " << rows
         << " x " << columns << " rows would save about " << sharded_saves * 1e3 << " ms against "
         << sharded_pays * 1e3 << " ms of collectives; splitting the problems at least " << split_saves * 1e3
         << " ms per solve against " << split_pays * 1e3 << " ms: ";
  }
  switch (*plan_) {
    case DataParallelSolve::sharded: said << "each rank solves its rows, exchanging potentials every sweep"; break;
    case DataParallelSolve::split:
      said << "the batch is gathered once per step, OT(a, b) and the symmetric problems are solved on different "
              "ranks, their potentials exchanged once";
      break;
    default: said << "the batch is gathered once per step and every rank solves it whole"; break;
  }
  if (message) *message = said.str();
  return *plan_;
}

at::Tensor DataParallel::gather(const at::Tensor& block, int64_t rows) const {
  if (!group_) return block;
  return dist::gather_rows(block, 0, dist::even_blocks(rows, group_->size()), *group_);
}

void DataParallel::agree_on_setup(bool failed) const {
  const bool rank_failed = on_any_rank(failed);
  SINKHORN_CHECK(failed || !rank_failed || rank() == 0, "rank 0 could not set up the run folder (its own error says why)");
}

}  // namespace sinkhorn::gen
