#include "dist/in_process_group.h"

#include <ATen/ATen.h>

#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <sstream>

#include "sinkhorn/error.h"
#include "util/check.h"

namespace sinkhorn::dist {
namespace {

// Where the ranks meet: each collective is a round; a rank posts its part, waits until every rank
// has posted, reads them all, and the round is reset once every rank has read.
class Board {
 public:
  Board(int ranks, std::chrono::milliseconds timeout) : parts_(ranks), timeout_(timeout) {}

  std::vector<at::Tensor> exchange(int rank, const at::Tensor& part) {
    std::unique_lock<std::mutex> lock(mutex_);
    // A rank that comes back for the next round waits until the last one has been read.
    wait(lock, [&] { return readers_ == 0; }, rank);
    parts_[rank] = part.detach().to(at::kCPU).contiguous().clone();
    ++posted_;
    if (posted_ == static_cast<int>(parts_.size())) {
      readers_ = posted_;
      posted_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      const uint64_t round = round_;
      wait(lock, [&] { return round_ != round; }, rank);
    }
    std::vector<at::Tensor> all = parts_;
    if (--readers_ == 0) changed_.notify_all();
    return all;
  }

 private:
  template <typename Ready>
  void wait(std::unique_lock<std::mutex>& lock, Ready ready, int rank) {
    if (!changed_.wait_for(lock, timeout_, ready)) {
      std::ostringstream message;
      message << "rank " << rank << " of " << parts_.size() << " (in-process group): the other ranks did not reach "
              << "the collective within " << timeout_.count() / 1000.0 << " s";
      throw PeerError(message.str());
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<at::Tensor> parts_;
  int posted_ = 0;
  int readers_ = 0;
  uint64_t round_ = 0;
  std::chrono::milliseconds timeout_;
};

class InProcessGroup final : public Group {
 public:
  InProcessGroup(std::shared_ptr<Board> board, int rank, int size) : board_(std::move(board)), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  at::Tensor allgather_rows(const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) const override {
    SINKHORN_INTERNAL_CHECK(static_cast<int>(counts.size()) == size_ && local.size(dim) == counts[rank_],
                            "allgather_rows: block sizes disagree with the local block");
    const std::vector<at::Tensor> blocks = board_->exchange(rank_, local);
    return at::cat(blocks, dim).to(local.device());
  }

  std::vector<int64_t> allgather_integers(const std::vector<int64_t>& values, const at::Device&) const override {
    const std::vector<at::Tensor> parts = board_->exchange(rank_, at::tensor(values, at::kLong));
    std::vector<int64_t> all;
    for (const at::Tensor& part : parts) {
      all.insert(all.end(), part.data_ptr<int64_t>(), part.data_ptr<int64_t>() + part.numel());
    }
    return all;
  }

  void allreduce_max(std::vector<double>& values, const at::Device&) const override {
    if (values.empty()) return;
    const std::vector<at::Tensor> parts = board_->exchange(rank_, at::tensor(values, at::kDouble));
    for (size_t k = 0; k < values.size(); ++k) {
      bool any_nan = false;
      double largest = -std::numeric_limits<double>::infinity();
      for (const at::Tensor& part : parts) {
        const double value = part.data_ptr<double>()[k];
        any_nan = any_nan || std::isnan(value);
        largest = std::max(largest, value);
      }
      values[k] = any_nan ? std::numeric_limits<double>::quiet_NaN() : largest;
    }
  }

  void allreduce_sum_(at::Tensor& tensor) const override {
    const std::vector<at::Tensor> parts = board_->exchange(rank_, tensor);
    at::Tensor sum = parts[0].clone();
    for (size_t r = 1; r < parts.size(); ++r) sum.add_(parts[r]);  // rank order: deterministic
    tensor.copy_(sum);
  }

 private:
  std::shared_ptr<Board> board_;
  int rank_, size_;
};

}  // namespace

std::vector<std::shared_ptr<const Group>> make_in_process_groups(int ranks, std::chrono::milliseconds timeout) {
  SINKHORN_CHECK_ARG(ranks >= 1, "ranks", "must be at least 1, got " << ranks);
  auto board = std::make_shared<Board>(ranks, timeout);
  std::vector<std::shared_ptr<const Group>> groups;
  for (int r = 0; r < ranks; ++r) groups.push_back(std::make_shared<const InProcessGroup>(board, r, ranks));
  return groups;
}

}  // namespace sinkhorn::dist
