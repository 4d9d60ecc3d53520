#include "solver/coarse_correction.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/check.h"

namespace sinkhorn::solver {
namespace {

constexpr double kNegativeInfinity = -std::numeric_limits<double>::infinity();
// Newton steps a sweep's cost model assumes per semi-dual (measured: 3 to 12 on the mixtures of
// docs/numerics.md, most solves under 8).
constexpr double kSemiDualCostSteps = 8.0;
// Armijo's sufficient increase, and the halvings a line search may take.
constexpr double kArmijo = 1e-4;
constexpr int kLineSearchHalvings = 60;
// Newton at the maximiser to rounding: a step that moves no shift by more than this many eps
// (Psi's increases there are noise, which the line search would go on taking).
constexpr double kNegligibleStep = 1e-9;

// log sum_L exp(z_iL) per row of z (N, L): float64, -inf for a row of -inf.
at::Tensor row_log_sum_exp(const at::Tensor& z) { return at::logsumexp(z, {1}); }

// Psi(v) = mass . v - weights . logsumexp_L(v_L + log_sums_iL); -inf where a row sees nothing.
double semi_dual(const at::Tensor& log_sums, const at::Tensor& weights, const at::Tensor& mass,
                 const at::Tensor& v) {
  const at::Tensor lse = row_log_sum_exp(log_sums + v.unsqueeze(0));
  // Rows of zero weight take no part (their -inf would give 0 * -inf).
  const at::Tensor terms = at::where(weights > 0, weights * lse, at::zeros_like(lse));
  return (mass * v).sum().item<double>() - terms.sum().item<double>();
}

}  // namespace

std::vector<double> solve_laplacian(std::vector<double> weights, std::vector<double> rhs, int64_t ground) {
  const auto n = static_cast<int64_t>(rhs.size());
  // position[k]: when k was eliminated (n for the ground, which never is).
  std::vector<int64_t> position(static_cast<size_t>(n), n), order;
  std::vector<double> pivot(static_cast<size_t>(n), 0.0), x(static_cast<size_t>(n), 0.0);
  const auto live = [&](int64_t j, int64_t k) { return j != k && position[j] > position[k]; };
  // Elimination (Grassmann, Taksar and Heyman 1985): removing node k joins each pair (i, j) of its
  // live neighbours by W_ik W_kj / d_k and hands them its rhs in proportion W_ik / d_k. The pivot
  // d_k is the sum of k's live edges (the ground's included): a sum of positive terms.
  for (int64_t k = 0; k < n; ++k) {
    if (k == ground) continue;
    position[k] = static_cast<int64_t>(order.size());
    order.push_back(k);
  }
  for (const int64_t k : order) {
    const double* row = &weights[k * n];
    double d = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      if (live(j, k)) d += row[j];
    }
    pivot[k] = d;
    if (!(d > 0)) continue;  // cut off from the ground's side: fixed below
    for (int64_t i = 0; i < n; ++i) {
      if (!live(i, k) || row[i] == 0) continue;
      const double share = row[i] / d;
      rhs[i] += share * rhs[k];
      double* joined = &weights[i * n];
      for (int64_t j = 0; j < n; ++j) {
        if (j != i && live(j, k)) joined[j] += share * row[j];
      }
    }
  }
  // Back substitution, last eliminated first: x_k = (rhs_k + sum_{j live at k} W_kj x_j) / d_k.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int64_t k = *it;
    if (!(pivot[k] > 0)) {
      // No edge joins k (nor what was eliminated into it) to the rest: its couplings underflowed.
      x[k] = rhs[k] > 0 ? kDisconnectedStep : (rhs[k] < 0 ? -kDisconnectedStep : 0.0);
      continue;
    }
    const double* row = &weights[k * n];
    double sum = rhs[k];
    for (int64_t j = 0; j < n; ++j) {
      if (live(j, k)) sum += row[j] * x[j];
    }
    x[k] = sum / pivot[k];
  }
  return x;
}

std::optional<std::vector<double>> maximise_semi_dual(const at::Tensor& log_sums, const at::Tensor& weights,
                                                      const std::vector<double>& mass, double* error) {
  const int64_t clusters = log_sums.size(1);
  SINKHORN_INTERNAL_CHECK(static_cast<int64_t>(mass.size()) == clusters, "one mass per cluster");
  // Rows that see no cluster (all -inf) cannot send mass: out of the problem.
  const at::Tensor sees = at::isfinite(log_sums.amax({1})) & (weights > 0);
  const at::Tensor rows_weight = at::where(sees, weights, at::zeros_like(weights));
  const at::Tensor rows_log_sums = at::where(sees.unsqueeze(1), log_sums, at::zeros_like(log_sums));
  const double total = rows_weight.sum().item<double>();
  double mass_total = 0.0;
  for (double m : mass) mass_total += m;
  if (!(total > 0) || !(mass_total > 0)) return std::nullopt;
  // The clusters' masses scaled to the rows' total (balanced inputs may differ by 1e-4): Psi then
  // has a maximiser.
  std::vector<double> scaled_mass(mass);
  for (double& m : scaled_mass) m *= total / mass_total;
  const at::Tensor target = at::tensor(scaled_mass, at::kDouble);
  const int64_t ground = std::max_element(scaled_mass.begin(), scaled_mass.end()) - scaled_mass.begin();

  at::Tensor v = at::zeros({clusters}, at::kDouble);
  double value = semi_dual(rows_log_sums, rows_weight, target, v);
  double mass_error = std::numeric_limits<double>::infinity();
  for (int step = 0; step <= kSemiDualNewtonSteps; ++step) {
    const at::Tensor z = rows_log_sums + v.unsqueeze(0);
    const at::Tensor plan = at::exp(z - row_log_sum_exp(z).unsqueeze(1)) * rows_weight.unsqueeze(1);  // (N, L)
    const at::Tensor gradient = (target - plan.sum(0)).contiguous();
    mass_error = gradient.abs().sum().item<double>() / total;
    if (!std::isfinite(mass_error)) return std::nullopt;
    if (mass_error <= kSemiDualTolerance || step == kSemiDualNewtonSteps) break;
    // The Hessian's edges W_LL' = sum_i a_i pi_iL pi_iL' = (plan^T pi)_LL': positive sums.
    const at::Tensor pi = at::where(rows_weight.unsqueeze(1) > 0, plan / rows_weight.unsqueeze(1), at::zeros_like(plan));
    const at::Tensor edges = at::mm(plan.t(), pi).contiguous();
    std::vector<double> w(edges.data_ptr<double>(), edges.data_ptr<double>() + clusters * clusters);
    std::vector<double> g(gradient.data_ptr<double>(), gradient.data_ptr<double>() + clusters);
    const std::vector<double> direction = solve_laplacian(std::move(w), g, ground);
    const at::Tensor x = at::tensor(direction, at::kDouble);
    const double slope = (gradient * x).sum().item<double>();
    if (!(slope > 0) || !std::isfinite(slope)) break;  // no ascent direction left
    // A step beyond kDisconnectedStep (a pivot of e^-700: a crossing that underflows) starts shorter.
    const double longest = x.abs().max().item<double>();
    double length = longest > kDisconnectedStep ? kDisconnectedStep / longest : 1.0;
    bool raised = false;
    for (int halving = 0; halving < kLineSearchHalvings; ++halving, length *= 0.5) {
      const at::Tensor trial = v + length * x;
      const double trial_value = semi_dual(rows_log_sums, rows_weight, target, trial);
      if (std::isfinite(trial_value) && trial_value >= value + kArmijo * length * slope) {
        v = trial;
        value = trial_value;
        raised = true;
        break;
      }
    }
    if (!raised || length * longest < kNegligibleStep) break;  // at the maximiser to rounding
  }
  if (error) *error = mass_error;
  std::vector<double> result(v.data_ptr<double>(), v.data_ptr<double>() + clusters);
  for (int64_t l = 0; l < clusters; ++l) {
    if (!std::isfinite(result[l])) return std::nullopt;
    if (!(mass[l] > 0)) result[l] = 0.0;
  }
  return result;
}

std::vector<int64_t> lloyd_clusters(const at::Tensor& x, const at::Tensor& y, int64_t clusters) {
  const at::Tensor points = at::cat({x.detach(), y.detach()}).to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = points.size(0);
  clusters = std::max<int64_t>(1, std::min(clusters, n));
  const at::Tensor squared_norms = (points * points).sum(1);
  const auto squared_distances = [&](const at::Tensor& centres) {  // (n, K), clamped at 0
    return (squared_norms.unsqueeze(1) + (centres * centres).sum(1).unsqueeze(0) - 2 * at::mm(points, centres.t()))
        .clamp_min(0);
  };
  // Farthest-point seeds (Gonzalez 1985) from point 0: each seed the point farthest from the others.
  std::vector<int64_t> seeds{0};
  at::Tensor nearest = ((points - points[0]) * (points - points[0])).sum(1);
  while (static_cast<int64_t>(seeds.size()) < clusters) {
    const int64_t far = nearest.argmax().item<int64_t>();
    if (!(nearest[far].item<double>() > 0)) break;  // fewer distinct points than clusters
    seeds.push_back(far);
    nearest = at::minimum(nearest, ((points - points[far]) * (points - points[far])).sum(1));
  }
  at::Tensor centres = points.index_select(0, at::tensor(seeds, at::kLong));
  at::Tensor labels = squared_distances(centres).argmin(1);
  for (int step = 0; step < kLloydSteps; ++step) {
    const int64_t k = centres.size(0);
    const at::Tensor counts = at::zeros({k}, at::kDouble).index_add_(0, labels, at::ones({n}, at::kDouble));
    const at::Tensor sums = at::zeros({k, points.size(1)}, at::kDouble).index_add_(0, labels, points);
    // An empty cluster keeps its centre.
    centres = at::where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1), centres);
    const at::Tensor moved = squared_distances(centres).argmin(1);
    const bool same = moved.equal(labels);
    labels = moved;
    if (same) break;
  }
  // Dense labels: clusters in order of first appearance.
  std::vector<int64_t> dense(static_cast<size_t>(centres.size(0)), -1), result(static_cast<size_t>(n));
  int64_t next = 0;
  const int64_t* raw = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (dense[raw[i]] < 0) dense[raw[i]] = next++;
    result[i] = dense[raw[i]];
  }
  return result;
}

namespace {

std::vector<double> cluster_masses(const at::Tensor& weights, const std::vector<int64_t>& labels, int64_t clusters) {
  const at::Tensor w = weights.detach().to(at::kCPU, at::kDouble).contiguous();
  std::vector<double> mass(static_cast<size_t>(clusters), 0.0);
  for (size_t i = 0; i < labels.size(); ++i) mass[labels[i]] += w.data_ptr<double>()[i];
  return mass;
}

// Each cluster's points of `points` (N, D) as (1, n_k, D) and their indices, on points' device.
void split_by_cluster(const at::Tensor& points, const std::vector<int64_t>& labels, int64_t clusters,
                      std::vector<at::Tensor>& cluster_points, std::vector<at::Tensor>& cluster_index) {
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(clusters));
  for (size_t i = 0; i < labels.size(); ++i) members[labels[i]].push_back(static_cast<int64_t>(i));
  for (const std::vector<int64_t>& indices : members) {
    const at::Tensor index = at::tensor(indices, at::kLong).to(points.device());
    cluster_index.push_back(index);
    cluster_points.push_back(points.index_select(0, index).unsqueeze(0).contiguous());
  }
}

std::optional<EntryClusters> entry_clusters(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                                            const at::Tensor& b) {
  const int64_t n = x.size(0);
  const std::vector<int64_t> labels = lloyd_clusters(x, y, kCorrectionClusters);
  EntryClusters entry;
  entry.source_labels.assign(labels.begin(), labels.begin() + n);
  entry.target_labels.assign(labels.begin() + n, labels.end());
  entry.clusters = *std::max_element(labels.begin(), labels.end()) + 1;
  if (entry.clusters < 2) return std::nullopt;
  split_by_cluster(x.detach(), entry.source_labels, entry.clusters, entry.source_points, entry.source_index);
  split_by_cluster(y.detach(), entry.target_labels, entry.clusters, entry.target_points, entry.target_index);
  entry.source_mass = cluster_masses(a, entry.source_labels, entry.clusters);
  entry.target_mass = cluster_masses(b, entry.target_labels, entry.clusters);
  return entry;
}

}  // namespace

std::unique_ptr<ClusterCorrection> ClusterCorrection::make(const Cloud& a, const Cloud& b, int p) {
  const at::Tensor& x = a.points;
  const at::Tensor& y = b.points;
  if (x.size(1) < 2 || y.size(1) < 2) return nullptr;
  c10::NoGradGuard no_grad;
  std::vector<EntryClusters> entries;
  for (int64_t e = 0; e < x.size(0); ++e) {
    std::optional<EntryClusters> entry = entry_clusters(x[e], a.weights[e], y[e], b.weights[e]);
    if (!entry) return nullptr;
    entries.push_back(std::move(*entry));
  }
  // The clusters' sums stream over each cluster's points: the online kernels where they run
  // (linear memory), stored matrices elsewhere.
  const Backend backend = reduce::resolve_backend(Backend::automatic, 1, x.size(1), y.size(1), x.size(2),
                                                  x.device(), /*needs_autograd=*/false);
  const Backend kind = x.device().is_cpu() || backend == Backend::online ? Backend::online : backend;
  return std::unique_ptr<ClusterCorrection>(
      new ClusterCorrection(a, b, std::move(entries), reduce::make_reducer(kind, p, x, y)));
}

ClusterCorrection::ClusterCorrection(const Cloud& a, const Cloud& b, std::vector<EntryClusters> entries,
                                     std::unique_ptr<reduce::Reducer> reducer)
    : a_(a), b_(b), entries_(std::move(entries)), reducer_(std::move(reducer)) {}

at::Tensor ClusterCorrection::segmented_log_sums(const at::Tensor& source, const std::vector<at::Tensor>& cluster_points,
                                                 const std::vector<at::Tensor>& cluster_index, const at::Tensor& h,
                                                 double eps, int64_t clusters) const {
  const at::Tensor rows = source.unsqueeze(0);
  std::vector<reduce::SoftminRequest> requests;
  std::vector<int64_t> asked;
  for (int64_t l = 0; l < clusters; ++l) {
    if (cluster_index[l].numel() == 0) continue;
    requests.push_back({&rows, &cluster_points[l], h.index_select(0, cluster_index[l]).unsqueeze(0), eps});
    asked.push_back(l);
  }
  const std::vector<at::Tensor> softmins = reducer_->softmins(requests);
  at::Tensor log_sums = at::full({source.size(0), clusters}, kNegativeInfinity, at::kDouble);
  for (size_t r = 0; r < asked.size(); ++r) {
    log_sums.select(1, asked[r]).copy_(softmins[r][0].to(at::kCPU, at::kDouble) / -eps);
  }
  return log_sums;
}

at::Tensor ClusterCorrection::row_pass(const at::Tensor& g, double eps) {
  c10::NoGradGuard no_grad;
  row_log_sums_.clear();
  row_eps_ = eps;
  std::vector<at::Tensor> softmins;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const at::Tensor h = b_.log_weights[i] + g[i].detach() / eps;
    row_log_sums_.push_back(segmented_log_sums(a_.points[i], entries_[e].target_points, entries_[e].target_index, h,
                                               eps, entries_[e].clusters));
    softmins.push_back(-eps * row_log_sum_exp(row_log_sums_.back()));
  }
  return at::stack(softmins).to(g.device(), g.scalar_type());
}

CorrectionReport ClusterCorrection::finish_sweep(PotentialPair& potentials, double eps) {
  SINKHORN_INTERNAL_CHECK(row_log_sums_.size() == entries_.size() && row_eps_ == eps,
                          "finish_sweep follows row_pass at the same eps");
  c10::NoGradGuard no_grad;
  CorrectionReport report;
  const auto device = potentials.f.device();
  const auto dtype = potentials.f.scalar_type();
  std::vector<at::Tensor> f_rows, g_rows;
  // The row half: v on b's clusters, g shifted, f the exact row update.
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const EntryClusters& entry = entries_[e];
    const at::Tensor& log_sums = row_log_sums_[e];
    double error = 0.0;
    std::optional<std::vector<double>> v =
        maximise_semi_dual(log_sums, a_.weights[i].detach().to(at::kCPU, at::kDouble), entry.target_mass, &error);
    if (!v) {
      v = std::vector<double>(static_cast<size_t>(entry.clusters), 0.0);
      ++report.plain_halves;
    } else {
      report.cluster_error = std::max(report.cluster_error, error);
    }
    const at::Tensor shifts = at::tensor(*v, at::kDouble);
    const at::Tensor labels = at::tensor(entry.target_labels, at::kLong);
    g_rows.push_back(potentials.g[i].detach().to(at::kCPU, at::kDouble) + eps * shifts.index_select(0, labels));
    f_rows.push_back(-eps * row_log_sum_exp(log_sums + shifts.unsqueeze(0)));
  }
  potentials.f = at::stack(f_rows).to(device, dtype);
  potentials.g = at::stack(g_rows).to(device, dtype);
  row_log_sums_.clear();
  // The column half from the new f: u on a's clusters, f shifted, g the exact column update.
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const EntryClusters& entry = entries_[e];
    const at::Tensor h = a_.log_weights[i] + potentials.f[i] / eps;
    const at::Tensor log_sums =
        segmented_log_sums(b_.points[i], entry.source_points, entry.source_index, h, eps, entry.clusters);
    double error = 0.0;
    std::optional<std::vector<double>> u =
        maximise_semi_dual(log_sums, b_.weights[i].detach().to(at::kCPU, at::kDouble), entry.source_mass, &error);
    if (!u) {
      u = std::vector<double>(static_cast<size_t>(entry.clusters), 0.0);
      ++report.plain_halves;
    } else {
      report.cluster_error = std::max(report.cluster_error, error);
    }
    const at::Tensor shifts = at::tensor(*u, at::kDouble);
    const at::Tensor labels = at::tensor(entry.source_labels, at::kLong);
    f_rows[e] = potentials.f[i].to(at::kCPU, at::kDouble) + eps * shifts.index_select(0, labels);
    g_rows[e] = -eps * row_log_sum_exp(log_sums + shifts.unsqueeze(0));
  }
  potentials.f = at::stack(f_rows).to(device, dtype);
  potentials.g = at::stack(g_rows).to(device, dtype);
  return report;
}

double ClusterCorrection::newton_work() const {
  double work = 0.0;
  for (const EntryClusters& entry : entries_) {
    const auto rows = static_cast<double>(entry.source_labels.size() + entry.target_labels.size());
    const auto l = static_cast<double>(entry.clusters);
    work += kSemiDualCostSteps * rows * l * (l + 8.0);  // the Hessian's product and the exps, per step
  }
  return work;
}

}  // namespace sinkhorn::solver
