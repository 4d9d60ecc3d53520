#include "dist/group.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>

#include "sinkhorn/error.h"
#include "util/check.h"

namespace sinkhorn::dist {

namespace {

class C10dGroup final : public Group {
 public:
  C10dGroup(c10::intrusive_ptr<c10d::ProcessGroup> process_group, std::function<std::string()> diagnose)
      : process_group_(std::move(process_group)), diagnose_(std::move(diagnose)) {}
  int rank() const override { return process_group_->getRank(); }
  int size() const override { return process_group_->getSize(); }
  at::Tensor allgather_rows(const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) const override;
  std::vector<int64_t> allgather_integers(const std::vector<int64_t>& values, const at::Device& device) const override;
  void allreduce_max(std::vector<double>& values, const at::Device& device) const override;
  void allreduce_sum_(at::Tensor& tensor) const override;

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> process_group_;
  std::function<std::string()> diagnose_;

  // Issues one collective and waits for it; a failure (a peer that died or stalled past the
  // group's timeout: Gloo reports a closed connection at once and a silent peer after its
  // timeout; or Gloo's own checks, gloo::EnforceNotMet, thrown while the collective is issued)
  // becomes a PeerError naming what failed and, when the diagnosis knows, the lost rank: no
  // exception of the collectives' library reaches a caller, or ends a process as uncaught.
  template <typename Issue>
  void run(Issue&& issue, const char* collective) const {
    try {
      issue()->wait();
    } catch (const std::exception& error) {
      std::string what = error.what();
      what = what.substr(0, what.find('\n'));
      std::ostringstream message;
      message << "rank " << process_group_->getRank() << " of " << process_group_->getSize() << ": the "
              << collective << " of the sharded solve failed (" << what << ")";
      if (diagnose_) {
        const std::string lost = diagnose_();
        if (!lost.empty()) message << "; " << lost;
      }
      throw PeerError(message.str());
    }
  }
};

}  // namespace

std::shared_ptr<const Group> make_c10d_group(c10::intrusive_ptr<c10d::ProcessGroup> process_group,
                                             std::function<std::string()> diagnose) {
  SINKHORN_CHECK_ARG(process_group.defined(), "process_group", "is null");
  return std::make_shared<const C10dGroup>(std::move(process_group), std::move(diagnose));
}

at::Tensor C10dGroup::allgather_rows(const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) const {
  const int ranks = size();
  SINKHORN_INTERNAL_CHECK(static_cast<int>(counts.size()) == ranks && local.size(dim) == counts[rank()],
                          "allgather_rows: block sizes disagree with the local block");
  const int64_t widest = *std::max_element(counts.begin(), counts.end());
  // The block, padded with zeros to the widest one and moved to the front so that the gathered
  // buffer is the blocks one after another.
  std::vector<int64_t> padded_shape(local.sizes().begin(), local.sizes().end());
  padded_shape[dim] = widest;
  at::Tensor padded = at::zeros(padded_shape, local.options().requires_grad(false));
  padded.narrow(dim, 0, local.size(dim)).copy_(local.detach());
  padded = padded.movedim(dim, 0).contiguous();
  std::vector<int64_t> gathered_shape(padded.sizes().begin(), padded.sizes().end());
  gathered_shape[0] *= ranks;
  at::Tensor gathered = at::empty(gathered_shape, padded.options());
  run([&] { return process_group_->_allgather_base(gathered, padded); }, "all-gather");
  std::vector<at::Tensor> blocks;
  blocks.reserve(ranks);
  for (int r = 0; r < ranks; ++r) blocks.push_back(gathered.narrow(0, r * widest, counts[r]));
  return at::cat(blocks, 0).movedim(0, dim).contiguous();
}

std::vector<int64_t> C10dGroup::allgather_integers(const std::vector<int64_t>& values, const at::Device& device) const {
  const int64_t k = static_cast<int64_t>(values.size());
  at::Tensor local = at::tensor(values, at::kLong).to(device);
  at::Tensor gathered = at::empty({size() * k}, local.options());
  run([&] { return process_group_->_allgather_base(gathered, local); }, "all-gather");
  const at::Tensor host = gathered.cpu();
  return std::vector<int64_t>(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
}

std::vector<std::string> Group::allgather_strings(const std::string& local, const at::Device& device) const {
  const std::vector<int64_t> lengths = allgather_integers({static_cast<int64_t>(local.size())}, device);
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  if (longest == 0) return std::vector<std::string>(static_cast<size_t>(size()));  // every rank knows
  // Eight bytes to an integer, the text padded with zeros to the longest.
  const int64_t words = (longest + 7) / 8;
  std::vector<int64_t> mine(static_cast<size_t>(words), 0);
  std::memcpy(mine.data(), local.data(), local.size());
  const std::vector<int64_t> all = allgather_integers(mine, device);
  std::vector<std::string> texts;
  for (int r = 0; r < size(); ++r) {
    const char* begin = reinterpret_cast<const char*>(all.data() + static_cast<size_t>(r) * words);
    texts.emplace_back(begin, static_cast<size_t>(lengths[r]));
  }
  return texts;
}

void C10dGroup::allreduce_max(std::vector<double>& values, const at::Device& device) const {
  if (values.empty()) return;
  // A maximum may drop NaN (max(NaN, 1) is 1 in some implementations): NaN travels as +inf and a
  // flag, so that an unconverged NaN on any rank is NaN on all of them.
  std::vector<double> sent(values.size() + 1, 0.0);
  for (size_t k = 0; k < values.size(); ++k) {
    if (std::isnan(values[k])) {
      sent[k] = std::numeric_limits<double>::infinity();
      sent.back() = 1.0;
    } else {
      sent[k] = values[k];
    }
  }
  std::vector<at::Tensor> tensors{at::tensor(sent, at::kDouble).to(device)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  run([&] { return process_group_->allreduce(tensors, options); }, "all-reduce");
  const at::Tensor host = tensors[0].cpu();
  const double* received = host.data_ptr<double>();
  const bool any_nan = received[values.size()] != 0.0;
  for (size_t k = 0; k < values.size(); ++k) {
    values[k] = any_nan && std::isinf(received[k]) ? std::numeric_limits<double>::quiet_NaN() : received[k];
  }
}

void C10dGroup::allreduce_sum_(at::Tensor& tensor) const {
  SINKHORN_INTERNAL_CHECK(tensor.is_contiguous(), "allreduce_sum_ wants a contiguous tensor");
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  run([&] { return process_group_->allreduce(tensors, options); }, "all-reduce");
}

int64_t first_row(const std::vector<int64_t>& counts, int rank) {
  return std::accumulate(counts.begin(), counts.begin() + rank, int64_t{0});
}

std::vector<int64_t> even_blocks(int64_t rows, int ranks) {
  std::vector<int64_t> counts(ranks, rows / ranks);
  for (int64_t r = 0; r < rows % ranks; ++r) ++counts[r];
  return counts;
}

at::Tensor own_block(const at::Tensor& rows, const Group& group) {
  const std::vector<int64_t> counts = even_blocks(rows.size(0), group.size());
  return rows.narrow(0, first_row(counts, group.rank()), counts[group.rank()]);
}

}  // namespace sinkhorn::dist
