#include "reduce/cost_matrix.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iomanip>

#include "util/check.h"

namespace sinkhorn::reduce {

at::Tensor cost_matrix(const at::Tensor& x, const at::Tensor& y, int p) {
  if (p == 1) {
    // |x - y| from the differences (cdist's mode 2, no matrix product): the expansion below would
    // lose half the digits to the square root near coincident points. Its backward is 0 at x = y.
    return at::cdist(x, y, 2.0, /*compute_mode=*/2);
  }
  // |x|^2 / 2 + |y|^2 / 2 - x.y, the product accumulated onto the norms by one baddbmm (two fewer
  // passes over the N x M matrix than forming it apart: a training step builds three).
  const at::Tensor x_half_norms = 0.5 * (x * x).sum(-1, /*keepdim=*/true);  // (B, N, 1)
  const at::Tensor y_half_norms = (0.5 * (y * y).sum(-1)).unsqueeze(1);     // (B, 1, M)
  return at::baddbmm(x_half_norms + y_half_norms, x, y.transpose(1, 2), /*beta=*/1, /*alpha=*/-1).clamp_min(0);
}

namespace {

// The memory limit of this process's cgroup (v2, then v1), or 0 when there is none.
uint64_t cgroup_limit_bytes() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream file(path);
    unsigned long long limit = 0;
    if (file >> limit && limit > 0) return limit;  // "max" (no limit) does not parse
  }
  return 0;
}

}  // namespace

uint64_t usable_memory_bytes(const at::Device& device) {
  if (!device.is_cpu()) return 0;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  uint64_t usable = pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) : 0;
  const uint64_t limit = cgroup_limit_bytes();
  if (limit > 0 && (usable == 0 || limit < usable)) usable = limit;
  return usable;
}

void check_dense_fits(int64_t batch, int64_t n, int64_t m, int64_t element_size, double matrices,
                      const at::Device& device, const std::string& argument, const std::string& what,
                      const std::string& alternative) {
  const uint64_t available = usable_memory_bytes(device);
  if (available == 0) return;
  const double needed = matrices * static_cast<double>(batch) * static_cast<double>(n) * static_cast<double>(m) *
                        static_cast<double>(element_size);
  const auto gigabytes = [](double bytes) {
    std::ostringstream text;
    text << std::setprecision(3) << bytes / 1e9 << " GB";
    return text.str();
  };
  SINKHORN_CHECK_ARG(needed <= static_cast<double>(available), argument,
                     what << " needs about " << gigabytes(needed) << " for " << (batch > 1 ? std::to_string(batch) + " x " : "")
                          << n << " x " << m << " points (" << matrices << " dense N x M matrices), more than this machine's "
                          << gigabytes(static_cast<double>(available)) << "; " << alternative);
}

}  // namespace sinkhorn::reduce
