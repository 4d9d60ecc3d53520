#include "dist/sharded_inputs.h"

#include <ATen/ATen.h>

#include <exception>
#include <functional>
#include <sstream>

#include "util/check.h"

namespace sinkhorn::dist {
namespace {

// What each rank tells the others about its block, in this order.
enum Field : int { kPointDims, kBatch, kRowsX, kDimX, kBatchY, kRowsY, kDimY, kDtype, kHasA, kHasB, kFields };

// The union along the rows axis: the gathered blocks, with this rank's block replaced by the
// caller's tensor so that autograd reaches it.
at::Tensor join(const Group& group, const at::Tensor& local, int64_t dim, const std::vector<int64_t>& counts) {
  if (!local.defined()) return local;
  const at::Tensor gathered = group.allgather_rows(local, dim, counts);
  const int64_t begin = first_row(counts, group.rank());
  const int64_t end = begin + counts[group.rank()], total = gathered.size(dim);
  return at::cat({gathered.narrow(dim, 0, begin), local, gathered.narrow(dim, end, total - end)}, dim);
}

}  // namespace

void agree_on_refusals(const Group& group, const std::string& refusal, const at::Device& device) {
  const std::vector<std::string> refusals = group.allgather_strings(refusal, device);
  if (!refusal.empty()) return;
  for (int r = 0; r < group.size(); ++r) {
    SINKHORN_CHECK(refusals[r].empty(), "rank " << r << " refused its inputs: " << refusals[r]);
  }
}

void agree_on_settings(const Group& group, const std::string& settings, const at::Device& device) {
  const std::vector<std::string> all = group.allgather_strings(settings, device);
  const auto lines = [](const std::string& text) {
    std::vector<std::string> result;
    std::istringstream stream(text);
    for (std::string line; std::getline(stream, line);) result.push_back(line);
    return result;
  };
  const std::vector<std::string> reference = lines(all[0]);
  for (int r = 1; r < group.size(); ++r) {
    const std::vector<std::string> theirs = lines(all[r]);
    SINKHORN_CHECK(theirs.size() == reference.size(), "the ranks run different versions of sinkhorn: rank " << r
                                                          << " sends " << theirs.size() << " settings, rank 0 "
                                                          << reference.size());
    for (size_t k = 0; k < reference.size(); ++k) {
      if (theirs[k] == reference[k]) continue;
      const size_t equals = reference[k].find('=');
      const std::string name = reference[k].substr(0, equals);
      SINKHORN_CHECK_ARG(false, name, "differs between the ranks: " << reference[k].substr(equals + 1) << " on rank 0, "
                                                                     << theirs[k].substr(theirs[k].find('=') + 1)
                                                                     << " on rank " << r
                                                                     << "; every rank must solve the same problem");
    }
  }
}

GatheredInputs gather_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& b, const at::Tensor& y,
                             const std::function<void()>& check_block, const std::string& settings,
                             const Group& group) {
  std::vector<int64_t> mine(kFields, 0);
  std::exception_ptr refusal;
  std::string refusal_message;
  try {
    check_block();
    mine = {x.dim(), x.dim() == 3 ? x.size(0) : 1, x.size(-2), x.size(-1), y.dim() == 3 ? y.size(0) : 1,
            y.size(-2), y.size(-1), static_cast<int64_t>(x.scalar_type()), a.defined(), b.defined()};
  } catch (const Error& error) {
    refusal = std::current_exception();
    refusal_message = error.what();
  }
  const at::Device device = x.defined() ? x.device() : at::Device(at::kCPU);
  agree_on_refusals(group, refusal_message, device);
  if (refusal) std::rethrow_exception(refusal);
  agree_on_settings(group, settings, device);
  const std::vector<int64_t> all = group.allgather_integers(mine, device);
  const int ranks = group.size();
  const auto field = [&](int rank, Field f) { return all[static_cast<size_t>(rank) * kFields + f]; };
  for (int r = 1; r < ranks; ++r) {
    const auto differs = [&](Field f) { return field(r, f) != field(0, f); };
    SINKHORN_CHECK_ARG(!differs(kPointDims) && !differs(kBatch) && !differs(kBatchY), "x",
                       "and y must have the same layout on every rank: rank 0 has "
                           << (field(0, kPointDims) == 3 ? "batched" : "unbatched") << " clouds with batch size "
                           << field(0, kBatch) << ", rank " << r << " "
                           << (field(r, kPointDims) == 3 ? "batched" : "unbatched") << " ones with " << field(r, kBatch));
    SINKHORN_CHECK_ARG(!differs(kDimX), "x", "has dimension D = " << field(r, kDimX) << " on rank " << r << " but "
                                             << field(0, kDimX) << " on rank 0");
    SINKHORN_CHECK_ARG(!differs(kDtype), "x", "has dtype " << static_cast<at::ScalarType>(field(r, kDtype)) << " on rank "
                                              << r << " but " << static_cast<at::ScalarType>(field(0, kDtype))
                                              << " on rank 0");
    SINKHORN_CHECK_ARG(!differs(kHasA), "a", "is given on rank " << (field(0, kHasA) ? 0 : r) << " but not on rank "
                                             << (field(0, kHasA) ? r : 0) << ": give weights on every rank or on none");
    SINKHORN_CHECK_ARG(!differs(kHasB), "b", "is given on rank " << (field(0, kHasB) ? 0 : r) << " but not on rank "
                                             << (field(0, kHasB) ? r : 0) << ": give weights on every rank or on none");
  }
  GatheredInputs gathered;
  for (int r = 0; r < ranks; ++r) {
    gathered.x_counts.push_back(field(r, kRowsX));
    gathered.y_counts.push_back(field(r, kRowsY));
  }
  const int64_t rows_dim = x.dim() - 2;
  gathered.x = join(group, x, rows_dim, gathered.x_counts);
  gathered.y = join(group, y, rows_dim, gathered.y_counts);
  gathered.a = join(group, a, rows_dim, gathered.x_counts);
  gathered.b = join(group, b, rows_dim, gathered.y_counts);
  return gathered;
}

}  // namespace sinkhorn::dist
