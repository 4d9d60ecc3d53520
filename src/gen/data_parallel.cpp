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

void DataParallel::sum_gradients(torch::nn::Module& module) const {
  if (!group_) return;
  std::vector<at::Tensor> gradients;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.grad().defined()) gradients.push_back(parameter.grad());
  }
  if (gradients.empty()) return;
  std::vector<at::Tensor> flat;
  for (const at::Tensor& gradient : gradients) flat.push_back(gradient.reshape({-1}));
  at::Tensor buffer = at::cat(flat);
  group_->allreduce_sum_(buffer);
  int64_t offset = 0;
  for (at::Tensor& gradient : gradients) {
    gradient.copy_(buffer.narrow(0, offset, gradient.numel()).view_as(gradient));
    offset += gradient.numel();
  }
}

bool DataParallel::gathers(int64_t rows, int64_t columns, DataParallelSolve choice, std::string* message) {
  if (!group_) return false;
  if (gathers_) return *gathers_;
  const int ranks = group_->size();
  std::ostringstream said;
  if (choice != DataParallelSolve::automatic) {
    gathers_ = choice == DataParallelSolve::gathered;
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
    const double pairs = 3.0 * static_cast<double>(rows) * static_cast<double>(columns);
    const double sweep = pairs / (kPairsPerSecondPerThread * std::max(1, at::get_num_threads()));
    const double saved = sweep * (1.0 - 1.0 / ranks), paid = kCollectivesPerSweep * latency[0];
    gathers_ = saved <= paid;
    said << "auto: a sweep of " << rows << " x " << columns << " rows would save about " << saved * 1e3
         << " ms on " << ranks << " ranks against " << paid * 1e3 << " ms of collectives (latency "
         << latency[0] * 1e6 << " us): ";
  }
  said << (*gathers_ ? "the batch is gathered once per step and every rank solves it whole"
                     : "each rank solves its rows, exchanging potentials every sweep");
  if (message) *message = said.str();
  return *gathers_;
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
