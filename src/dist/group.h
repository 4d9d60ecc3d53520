// The ranks of a sharded solve: a c10d process group (Gloo on CPUs, NCCL on GPUs) seen through the
// few collectives the solver needs, each waited for with the group's timeout and turned, when it
// fails, into a sinkhorn::PeerError that says which rank was lost when that is known.
//
// This header does not include c10d's (they cost seconds per translation unit): the group is
// reached through a pointer to implementation.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
}

namespace sinkhorn::dist {

class Group {
 public:
  /// `diagnose`, when set, is asked after a collective fails and returns a sentence on which rank
  /// is lost (the command line's world watches its peers' heartbeats; a Python group has none).
  explicit Group(c10::intrusive_ptr<c10d::ProcessGroup> process_group,
                 std::function<std::string()> diagnose = {});
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const;
  int size() const;

  /// Every rank's `local` rows concatenated along `dim` in rank order, where rank r holds
  /// counts[r] rows (blocks may be uneven, even empty). The blocks travel padded to the largest
  /// (Gloo's all-gather wants equal sizes), so one call moves P max(counts) rows of data.
  at::Tensor allgather_rows(const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) const;

  /// Every rank's `values` (the same length on every rank), rank after rank: result[r K + k].
  std::vector<int64_t> allgather_integers(const std::vector<int64_t>& values, const at::Device& device) const;

  /// Every rank's `local` text, in rank order (two all-gathers: the lengths, then the bytes).
  std::vector<std::string> allgather_strings(const std::string& local, const at::Device& device) const;

  /// Element-wise maximum over the ranks, in place; NaN wins (it stays NaN everywhere).
  void allreduce_max(std::vector<double>& values, const at::Device& device) const;

  /// Element-wise sum over the ranks, in place (a dense tensor on the group's device kind).
  void allreduce_sum_(at::Tensor& tensor) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The first row of `rank`'s block when rank r holds counts[r] rows, blocks in rank order.
int64_t first_row(const std::vector<int64_t>& counts, int rank);

/// Rows per rank of `rows` rows in contiguous blocks as even as they go: the first rows % ranks
/// blocks hold one row more.
std::vector<int64_t> even_blocks(int64_t rows, int ranks);

/// This rank's block (even_blocks) of dim 0 of `rows`, a view.
at::Tensor own_block(const at::Tensor& rows, const Group& group);

}  // namespace sinkhorn::dist
