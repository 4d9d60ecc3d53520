// The ranks of a sharded solve seen through the few collectives the solver needs. The c10d
// implementation waits for each with the group's timeout and turns a failure into a
// sinkhorn::PeerError that says which rank was lost when that is known.
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

/// The collectives a sharded solve needs. Two implementations: a c10d process group
/// (make_c10d_group: Gloo on CPUs, NCCL on GPUs, each failure a PeerError) and ranks that are
/// threads of one process (in_process_group.h), for tests of the sharded solve without a network.
class Group {
 public:
  virtual ~Group() = default;
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Every rank's `local` rows concatenated along `dim` in rank order, where rank r holds
  /// counts[r] rows (blocks may be uneven, even empty). The blocks travel padded to the largest
  /// (Gloo's all-gather wants equal sizes), so one call moves P max(counts) rows of data.
  virtual at::Tensor allgather_rows(const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) const = 0;

  /// Every rank's `values` (the same length on every rank), rank after rank: result[r K + k].
  virtual std::vector<int64_t> allgather_integers(const std::vector<int64_t>& values, const at::Device& device) const = 0;

  /// Every rank's `local` text, in rank order (two all-gathers of integers: the lengths, then the bytes).
  std::vector<std::string> allgather_strings(const std::string& local, const at::Device& device) const;

  /// Element-wise maximum over the ranks, in place; NaN wins (it stays NaN everywhere).
  virtual void allreduce_max(std::vector<double>& values, const at::Device& device) const = 0;

  /// Element-wise sum over the ranks, in place (a dense tensor on the group's device kind).
  virtual void allreduce_sum_(at::Tensor& tensor) const = 0;

 protected:
  Group() = default;
};

/// A c10d process group seen as a Group. `diagnose`, when set, is asked after a collective fails
/// and returns a sentence on which rank is lost (the command line's world watches its peers'
/// heartbeats; a Python group has none).
std::shared_ptr<const Group> make_c10d_group(c10::intrusive_ptr<c10d::ProcessGroup> process_group,
                                             std::function<std::string()> diagnose = {});

/// The first row of `rank`'s block when rank r holds counts[r] rows, blocks in rank order.
int64_t first_row(const std::vector<int64_t>& counts, int rank);

/// Rows per rank of `rows` rows in contiguous blocks as even as they go: the first rows % ranks
/// blocks hold one row more.
std::vector<int64_t> even_blocks(int64_t rows, int ranks);

/// This rank's block (even_blocks) of dim 0 of `rows`, a view.
at::Tensor own_block(const at::Tensor& rows, const Group& group);

}  // namespace sinkhorn::dist
