#include "solver/coarse_correction.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "reduce/grid_clusters.h"
#include "solver/acceleration.h"

namespace sinkhorn::solver {
namespace {

constexpr double kNegativeInfinity = -std::numeric_limits<double>::infinity();

std::vector<int64_t> labels_of(const reduce::GridClusters& clusters) {
  std::vector<int64_t> labels(clusters.order.size());
  for (int64_t c = 0; c < clusters.size(); ++c) {
    for (int64_t k = clusters.starts[c]; k < clusters.starts[c + 1]; ++k) labels[clusters.order[k]] = c;
  }
  return labels;
}

// The coarse problem between K source and L target clusters, solved by Sinkhorn in the scaling
// domain: plan_KL = k_KL U_K V_L, with k = exp(log_plan + log_u + log_v - shift) carrying the
// scalings absorbed so far. Scalings that leave [kSmallestScaling, 1 / kSmallestScaling] are
// absorbed into the kernel (K L exps, rare; Schmitzer 2019's stabilisation), so that neither the
// products nor k's entries leave float64's range. Clusters without mass keep their scaling.
class CoarseProblem {
 public:
  CoarseProblem(int64_t rows, int64_t columns, std::vector<double> log_plan, const std::vector<double>& source_mass,
                const std::vector<double>& target_mass)
      : rows_(rows), columns_(columns), log_plan_(std::move(log_plan)), source_mass_(source_mass),
        target_mass_(target_mass), log_u_(static_cast<size_t>(rows), 0.0), log_v_(static_cast<size_t>(columns), 0.0) {
    for (double m : source_mass_) total_mass_ += m;
    shift_ = *std::max_element(log_plan_.begin(), log_plan_.end());
    absorb();
  }

  // The solution in the log domain: the coarse plan is exp(log_plan_KL + u(K) + v(L)).
  // Clusters without mass carry no marginal: their shift is 0.
  double u(int64_t k) const {
    return source_mass_[k] > 0 ? log_u_[k] + std::log(scaling_u_[k]) - shift_ : 0.0;
  }
  double v(int64_t l) const { return target_mass_[l] > 0 ? log_v_[l] + std::log(scaling_v_[l]) : 0.0; }

  // Relative L1 error of the rows' marginal (the columns are exact after a sweep).
  double row_error() const {
    double error = 0.0;
    for (int64_t k = 0; k < rows_; ++k) {
      if (source_mass_[k] > 0) error += std::abs(scaling_u_[k] * row_sum(k) - source_mass_[k]);
    }
    return error / total_mass_;
  }

  // One alternating sweep, over-relaxed by omega: U <- U^(1 - omega) (A / k V)^omega, then V.
  // False when a scaling is not finite and positive (nothing can be trusted then).
  bool sweep(double omega) {
    for (int64_t k = 0; k < rows_; ++k) {
      if (source_mass_[k] > 0) scaling_u_[k] = relaxed(scaling_u_[k], source_mass_[k] / row_sum(k), omega);
    }
    std::vector<double> column_sums(static_cast<size_t>(columns_), 0.0);
    for (int64_t k = 0; k < rows_; ++k) {
      const double* row = &kernel_[k * columns_];
      for (int64_t l = 0; l < columns_; ++l) column_sums[l] += row[l] * scaling_u_[k];
    }
    for (int64_t l = 0; l < columns_; ++l) {
      if (target_mass_[l] > 0) scaling_v_[l] = relaxed(scaling_v_[l], target_mass_[l] / column_sums[l], omega);
    }
    bool in_range = true;
    for (const std::vector<double>* scalings : {&scaling_u_, &scaling_v_}) {
      for (double s : *scalings) {
        if (!std::isfinite(s) || !(s > 0)) return false;
        in_range = in_range && s >= kSmallestScaling && s <= 1.0 / kSmallestScaling;
      }
    }
    if (!in_range) {
      for (int64_t k = 0; k < rows_; ++k) log_u_[k] += std::log(scaling_u_[k]);
      for (int64_t l = 0; l < columns_; ++l) log_v_[l] += std::log(scaling_v_[l]);
      absorb();
    }
    return true;
  }

 private:
  static constexpr double kSmallestScaling = 1e-100;

  static double relaxed(double old, double target, double omega) {
    return omega == 1.0 ? target : std::exp((1.0 - omega) * std::log(old) + omega * std::log(target));
  }
  double row_sum(int64_t k) const {
    const double* row = &kernel_[k * columns_];
    double sum = 0.0;
    for (int64_t l = 0; l < columns_; ++l) sum += row[l] * scaling_v_[l];
    return sum;
  }
  // Rebuilds k from the absorbed scalings; the plan is unchanged (U = V = 1 after). The shift stays
  // the first kernel's largest entry: later kernels are plans reached since, below the masses.
  void absorb() {
    kernel_.resize(log_plan_.size());
    for (int64_t k = 0; k < rows_; ++k) {
      for (int64_t l = 0; l < columns_; ++l) {
        kernel_[k * columns_ + l] = std::exp(log_plan_[k * columns_ + l] + log_u_[k] + log_v_[l] - shift_);
      }
    }
    scaling_u_.assign(static_cast<size_t>(rows_), 1.0);
    scaling_v_.assign(static_cast<size_t>(columns_), 1.0);
  }

  int64_t rows_, columns_;
  std::vector<double> log_plan_, source_mass_, target_mass_;
  double total_mass_ = 0.0;
  std::vector<double> log_u_, log_v_;  // the scalings absorbed so far
  std::vector<double> kernel_, scaling_u_, scaling_v_;
  double shift_ = 0.0;
};

std::vector<double> cluster_masses(const at::Tensor& weights, const std::vector<int64_t>& labels, int64_t clusters) {
  const at::Tensor w = weights.detach().to(at::kDouble).contiguous();
  std::vector<double> mass(static_cast<size_t>(clusters), 0.0);
  for (size_t i = 0; i < labels.size(); ++i) mass[labels[i]] += w.data_ptr<double>()[i];
  return mass;
}

std::optional<EntryPartition> entry_partition(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                                              const at::Tensor& b, int p) {
  const int64_t n = x.size(0), d = x.size(1);
  const at::Tensor both = at::cat({x, y}).to(at::kDouble);
  const double diameter = (both.amax(0) - both.amin(0)).norm().item<double>();
  if (!(diameter > 0) || !std::isfinite(diameter)) return std::nullopt;
  // Cells of diameter / 16 split a mixture's modes into a few clusters each (any partition gives an
  // ascent step; finer ones also catch slow modes inside a mode), grown until the coarse problem
  // stays small.
  for (double cell = diameter / 16;; cell *= 1.4) {
    const reduce::GridClusters source = reduce::cluster_on_grid(x, a, cell);
    const reduce::GridClusters target = reduce::cluster_on_grid(y, b, cell);
    if (source.size() > kCoarseClusters || target.size() > kCoarseClusters) continue;
    if (source.size() < 2 || target.size() < 2) return std::nullopt;
    EntryPartition entry;
    entry.source_labels = labels_of(source);
    entry.target_labels = labels_of(target);
    entry.source_clusters = source.size();
    entry.target_clusters = target.size();
    int64_t largest = 0;
    for (int64_t c = 0; c < target.size(); ++c) largest = std::max(largest, target.starts[c + 1] - target.starts[c]);
    std::vector<int64_t> index(static_cast<size_t>(target.size() * largest), 0);
    std::vector<uint8_t> padding(index.size(), 1);
    for (int64_t c = 0; c < target.size(); ++c) {
      for (int64_t k = target.starts[c]; k < target.starts[c + 1]; ++k) {
        index[c * largest + k - target.starts[c]] = target.order[k];
        padding[c * largest + k - target.starts[c]] = 0;
      }
    }
    // The batched softmin visits L x N x (largest cluster) pairs: unbalanced clusters would make
    // that many times N M.
    if (static_cast<double>(target.size()) * n * largest > 4.0 * static_cast<double>(kCoarsePairsAllowed)) {
      return std::nullopt;
    }
    entry.target_index = at::tensor(index, at::kLong).reshape({target.size(), largest});
    entry.target_padding = at::tensor(padding, at::kByte).to(at::kBool).reshape({target.size(), largest});
    entry.source_points = x.unsqueeze(0).expand({target.size(), n, d}).contiguous();
    entry.target_points = y.index_select(0, entry.target_index.reshape({-1})).reshape({target.size(), largest, d});
    entry.reducer = reduce::make_reducer(Backend::tensorized, p, entry.source_points, entry.target_points);
    return entry;
  }
}

// One entry's correction: its (u, v) as shifts eps u_K(i), eps v_L(j), or nothing.
struct EntryShifts {
  at::Tensor f, g;
  int coarse_sweeps = 0;
  double error_before = 0.0, error_after = 0.0;
};

std::optional<EntryShifts> entry_correction(const EntryPartition& entry, const at::Tensor& log_a,
                                            const at::Tensor& a, const at::Tensor& f, const at::Tensor& log_b,
                                            const at::Tensor& b, const at::Tensor& g, double eps) {
  const int64_t n = f.size(0);
  const int64_t rows = entry.source_clusters, columns = entry.target_clusters;
  // For every i and target cluster L: -eps log sum_{j in L} exp(h_j - C_ij / eps), h = log b + g / eps
  // (the padding at -inf), by one batched softmin.
  const at::Tensor h = (log_b + g / eps)
                           .index_select(0, entry.target_index.reshape({-1}))
                           .reshape(entry.target_index.sizes())
                           .masked_fill(entry.target_padding, kNegativeInfinity);
  const at::Tensor per_cluster =
      entry.reducer->softmin(entry.source_points, entry.target_points, h.contiguous(), eps);  // (L, N)
  // log of the plan's mass from i to cluster L: log a_i + f_i / eps - softmin_Li / eps, (N, L), float64.
  const at::Tensor log_row_sums =
      ((log_a + f / eps).to(at::kDouble).unsqueeze(1) - per_cluster.to(at::kDouble).t() / eps).contiguous();
  const double* per_row = log_row_sums.data_ptr<double>();
  // log P_KL = log sum_{i in K} exp(log_row_sums_iL): maxima first, then the shifted sums.
  std::vector<double> largest(static_cast<size_t>(rows * columns), kNegativeInfinity);
  for (int64_t i = 0; i < n; ++i) {
    double* top = &largest[entry.source_labels[i] * columns];
    for (int64_t l = 0; l < columns; ++l) top[l] = std::max(top[l], per_row[i * columns + l]);
  }
  std::vector<double> sums(largest.size(), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = entry.source_labels[i];
    for (int64_t l = 0; l < columns; ++l) {
      const double top = largest[k * columns + l];
      if (std::isfinite(top)) sums[k * columns + l] += std::exp(per_row[i * columns + l] - top);
    }
  }
  std::vector<double> log_plan(largest.size());
  for (size_t kl = 0; kl < largest.size(); ++kl) {
    log_plan[kl] = std::isfinite(largest[kl]) ? largest[kl] + std::log(sums[kl]) : kNegativeInfinity;
  }
  const std::vector<double> source_mass = cluster_masses(a, entry.source_labels, rows);
  std::vector<double> target_mass = cluster_masses(b, entry.target_labels, columns);
  // Balanced inputs may differ in total mass by up to 1e-4 (api/inputs.cpp): scaled to a's total,
  // the coarse problem has a solution (a constant shift of g, which the fine loop absorbs).
  double source_total = 0.0, target_total = 0.0;
  for (double m : source_mass) source_total += m;
  for (double m : target_mass) target_total += m;
  for (double& m : target_mass) m *= source_total / target_total;
  // Where the coarse solve starts: the fine plan's row error on the clusters.
  EntryShifts shifts;
  double total_mass = 0.0;
  for (int64_t k = 0; k < rows; ++k) {
    double row = 0.0;
    for (int64_t l = 0; l < columns; ++l) row += std::exp(log_plan[k * columns + l]);
    shifts.error_before += std::abs(row - source_mass[k]);
    total_mass += source_mass[k];
  }
  shifts.error_before /= total_mass;
  // Already solved on the clusters (an entry of a batch that has converged): nothing to do. (u
  // is exact only after a sweep: before it the kernel still carries the shift.)
  if (!(shifts.error_before > kCoarseTolerance) ||
      !std::isfinite(*std::max_element(log_plan.begin(), log_plan.end()))) {
    return std::nullopt;
  }

  CoarseProblem coarse(rows, columns, std::move(log_plan), source_mass, target_mass);
  double error = shifts.error_before;
  Relaxation relaxation;
  bool finite = true;
  while (finite && shifts.coarse_sweeps < kCoarseSweepsAllowed && error > kCoarseTolerance) {
    finite = coarse.sweep(relaxation.omega());
    ++shifts.coarse_sweeps;
    error = coarse.row_error();
    relaxation.observe(error);
  }
  if (finite && shifts.coarse_sweeps > 0) {  // a last plain sweep: over-relaxed, the columns lag
    finite = coarse.sweep(1.0);
    error = coarse.row_error();
  }
  shifts.error_after = error;
  // Only a solution better than where it started is an ascent step worth taking.
  if (!finite || !std::isfinite(error) || !(error < shifts.error_before || error <= kCoarseTolerance)) {
    return std::nullopt;
  }
  std::vector<double> shift_f(static_cast<size_t>(n)), shift_g(entry.target_labels.size());
  for (int64_t i = 0; i < n; ++i) shift_f[i] = eps * coarse.u(entry.source_labels[i]);
  for (size_t j = 0; j < shift_g.size(); ++j) shift_g[j] = eps * coarse.v(entry.target_labels[j]);
  shifts.f = at::tensor(shift_f, at::kDouble);
  shifts.g = at::tensor(shift_g, at::kDouble);
  return shifts;
}

}  // namespace

std::optional<std::vector<EntryPartition>> coarse_partition(const Cloud& a, const Cloud& b, int p) {
  const at::Tensor& x = a.points;
  const at::Tensor& y = b.points;
  if (x.size(2) > 3 || !x.device().is_cpu() || !y.device().is_cpu()) return std::nullopt;
  const int64_t n = x.size(1), m = y.size(1);
  if (n < 2 || m < 2 || static_cast<double>(n) * m > static_cast<double>(kCoarsePairsAllowed)) return std::nullopt;
  std::vector<EntryPartition> entries;
  for (int64_t e = 0; e < x.size(0); ++e) {
    std::optional<EntryPartition> entry =
        entry_partition(x[e].detach(), a.weights[e].detach(), y[e].detach(), b.weights[e].detach(), p);
    if (!entry) return std::nullopt;
    entries.push_back(std::move(*entry));
  }
  return entries;
}

CoarseCorrectionReport correct_on_clusters(const std::vector<EntryPartition>& partition, const Cloud& a,
                                           const Cloud& b, double eps, PotentialPair& potentials) {
  CoarseCorrectionReport report;
  const at::Tensor f = potentials.f.detach(), g = potentials.g.detach();
  at::Tensor shift_f = at::zeros(f.sizes(), f.options().dtype(at::kDouble));
  at::Tensor shift_g = at::zeros(g.sizes(), g.options().dtype(at::kDouble));
  for (size_t e = 0; e < partition.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const std::optional<EntryShifts> shifts =
        entry_correction(partition[e], a.log_weights[i].detach(), a.weights[i], f[i], b.log_weights[i].detach(),
                         b.weights[i], g[i], eps);
    if (!shifts) continue;
    shift_f[i] = shifts->f;
    shift_g[i] = shifts->g;
    report.coarse_sweeps = std::max(report.coarse_sweeps, shifts->coarse_sweeps);
    report.error_before = std::max(report.error_before, shifts->error_before);
    report.error_after = std::max(report.error_after, shifts->error_after);
    report.applied = true;
  }
  if (report.applied) {
    potentials.f = potentials.f + shift_f.to(f.scalar_type());
    potentials.g = potentials.g + shift_g.to(g.scalar_type());
  }
  return report;
}

}  // namespace sinkhorn::solver
