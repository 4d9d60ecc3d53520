#include "solver/coarse_correction.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

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
// A row's scaled sum below this is evaluated in the log domain (maximise_semi_dual's Psi).
constexpr double kScaledFloor = 1e-290;

// log sum_L exp(z_iL) per row of z (N, L): float64, -inf for a row of -inf.
at::Tensor row_log_sum_exp(const at::Tensor& z) { return at::logsumexp(z, {1}); }

}  // namespace

std::vector<double> solve_laplacian(std::vector<double> weights, std::vector<double> rhs, int64_t ground) {
  const auto n = static_cast<int64_t>(rhs.size());
  // A cut-off node's accumulated rhs below this is rounding of masses that balance: no step.
  double scale = 0.0;
  for (double r : rhs) scale += std::abs(r);
  const double noise = 1e-12 * scale;
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
      x[k] = rhs[k] > noise ? kDisconnectedStep : (rhs[k] < -noise ? -kDisconnectedStep : 0.0);
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
  const at::Tensor ls_tensor = log_sums.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor w_tensor = weights.to(at::kCPU, at::kDouble).contiguous();
  const double* ls = ls_tensor.data_ptr<double>();
  const double* all_weights = w_tensor.data_ptr<double>();
  // Rows that see no cluster cannot send mass, rows of weight 0 have none: out of the problem.
  // Plain loops (L <= 16 clusters): per step a few N L operations, where tensor ops would cost
  // more in dispatch than in arithmetic on a training batch.
  std::vector<int64_t> rows;
  double total = 0.0;
  for (int64_t i = 0; i < log_sums.size(0); ++i) {
    const double* row = ls + i * clusters;
    const bool sees = std::any_of(row, row + clusters, [](double value) { return std::isfinite(value); });
    if (sees && all_weights[i] > 0) {
      rows.push_back(i);
      total += all_weights[i];
    }
  }
  double mass_total = 0.0;
  for (double m : mass) mass_total += m;
  if (!(total > 0) || !(mass_total > 0)) return std::nullopt;
  // The clusters' masses scaled to the rows' total (balanced inputs may differ by 1e-4): Psi then
  // has a maximiser.
  std::vector<double> target(mass);
  for (double& m : target) m *= total / mass_total;
  const int64_t ground = std::max_element(target.begin(), target.end()) - target.begin();

  // Each row's sums scaled by its largest, s_iL = S_iL / max_L S_iL in [0, 1], exponentiated once:
  // an evaluation of Psi at v then takes L exponentials (e^{v_L - max v}) and N logarithms instead
  // of N L exponentials (the Newton steps' line searches evaluate it a few dozen times per solve).
  // A row whose scaled sum falls under kScaledFloor (its mass on clusters whose shift is far below
  // the largest) is evaluated in the log domain instead; above it, a term that underflows is under
  // 1e-18 of its row's sum, below float64's rounding.
  std::vector<double> row_top(rows.size()), scaled(rows.size() * clusters);
  for (size_t r = 0; r < rows.size(); ++r) {
    const double* row = ls + rows[r] * clusters;
    row_top[r] = *std::max_element(row, row + clusters);
    for (int64_t l = 0; l < clusters; ++l) scaled[r * clusters + l] = std::exp(row[l] - row_top[r]);
  }
  std::vector<double> lifted(static_cast<size_t>(clusters));
  // Psi(v), and optionally each row's softmax pi_i over the clusters (row-major, rows x L).
  const auto psi = [&](const std::vector<double>& v, std::vector<double>* pi) {
    double value = 0.0, highest = kNegativeInfinity;
    for (int64_t l = 0; l < clusters; ++l) {
      value += target[l] * v[l];
      highest = std::max(highest, v[l]);
    }
    for (int64_t l = 0; l < clusters; ++l) lifted[l] = std::exp(v[l] - highest);
    for (size_t r = 0; r < rows.size(); ++r) {
      const double* s = &scaled[r * clusters];
      double sum = 0.0;
      for (int64_t l = 0; l < clusters; ++l) sum += s[l] * lifted[l];
      double* out = pi ? &(*pi)[r * clusters] : nullptr;
      if (sum >= kScaledFloor) {
        value -= all_weights[rows[r]] * (row_top[r] + highest + std::log(sum));
        if (out) {
          for (int64_t l = 0; l < clusters; ++l) out[l] = s[l] * lifted[l] / sum;
        }
        continue;
      }
      const double* row = ls + rows[r] * clusters;
      double top = kNegativeInfinity;
      for (int64_t l = 0; l < clusters; ++l) top = std::max(top, row[l] + v[l]);
      double exact = 0.0;
      for (int64_t l = 0; l < clusters; ++l) exact += std::exp(row[l] + v[l] - top);
      value -= all_weights[rows[r]] * (top + std::log(exact));
      if (out) {
        for (int64_t l = 0; l < clusters; ++l) out[l] = std::exp(row[l] + v[l] - top) / exact;
      }
    }
    return value;
  };

  std::vector<double> v(static_cast<size_t>(clusters), 0.0), pi(rows.size() * clusters);
  std::vector<double> gradient(static_cast<size_t>(clusters)), edges(static_cast<size_t>(clusters * clusters));
  std::vector<double> trial(v.size());
  double value = psi(v, &pi);
  double mass_error = std::numeric_limits<double>::infinity();
  for (int step = 0;; ++step) {
    // The gradient (each cluster's mass less what the rows send it) and the Hessian's edges
    // W_LL' = sum_i a_i pi_iL pi_iL': sums of positive terms.
    gradient = target;
    std::fill(edges.begin(), edges.end(), 0.0);
    for (size_t r = 0; r < rows.size(); ++r) {
      const double weight = all_weights[rows[r]];
      const double* p = &pi[r * clusters];
      for (int64_t l = 0; l < clusters; ++l) {
        if (p[l] == 0) continue;
        const double sent = weight * p[l];
        gradient[l] -= sent;
        double* edge = &edges[l * clusters];
        for (int64_t k = l; k < clusters; ++k) edge[k] += sent * p[k];  // the upper triangle; W is symmetric
      }
    }
    for (int64_t l = 0; l < clusters; ++l) {
      for (int64_t k = 0; k < l; ++k) edges[l * clusters + k] = edges[k * clusters + l];
    }
    mass_error = 0.0;
    for (double g : gradient) mass_error += std::abs(g);
    mass_error /= total;
    if (!std::isfinite(mass_error)) return std::nullopt;
    if (mass_error <= kSemiDualTolerance || step == kSemiDualNewtonSteps) break;
    const std::vector<double> x = solve_laplacian(edges, gradient, ground);
    double slope = 0.0, longest = 0.0;
    for (int64_t l = 0; l < clusters; ++l) {
      slope += gradient[l] * x[l];
      longest = std::max(longest, std::abs(x[l]));
    }
    if (!(slope > 0) || !std::isfinite(slope)) break;  // no ascent direction left
    // A step beyond kDisconnectedStep (a pivot of e^-700: a crossing that underflows) starts shorter.
    double length = longest > kDisconnectedStep ? kDisconnectedStep / longest : 1.0;
    bool raised = false;
    for (int halving = 0; halving < kLineSearchHalvings; ++halving, length *= 0.5) {
      for (int64_t l = 0; l < clusters; ++l) trial[l] = v[l] + length * x[l];
      const double trial_value = psi(trial, nullptr);
      if (std::isfinite(trial_value) && trial_value >= value + kArmijo * length * slope) {
        v.swap(trial);
        value = psi(v, &pi);
        raised = true;
        break;
      }
    }
    if (!raised || length * longest < kNegligibleStep) break;  // at the maximiser to rounding
  }
  if (error) *error = mass_error;
  for (int64_t l = 0; l < clusters; ++l) {
    if (!std::isfinite(v[l])) return std::nullopt;
    if (!(mass[l] > 0)) v[l] = 0.0;
  }
  return v;
}

std::vector<int64_t> lloyd_clusters(const at::Tensor& x, const at::Tensor& y, int64_t clusters) {
  const int64_t total = x.size(0) + y.size(0);
  // Lloyd on every k-th point of the union (all of them up to kLloydSample), in float64.
  const int64_t stride = (total + kLloydSample - 1) / kLloydSample;
  const at::Tensor points = at::cat({x.detach().slice(0, 0, x.size(0), stride), y.detach().slice(0, 0, y.size(0), stride)})
                                .to(at::kCPU, at::kDouble)
                                .contiguous();
  const int64_t n = points.size(0);
  clusters = std::max<int64_t>(1, std::min(clusters, n));
  const at::Tensor squared_norms = (points * points).sum(1);
  const auto nearest_centre = [](const at::Tensor& cloud, const at::Tensor& centres) {  // |p - c|^2 by expansion
    const at::Tensor p = cloud.scalar_type() == at::kDouble ? cloud : cloud.to(at::kFloat);
    const at::Tensor c = centres.to(p.options());
    return (-2 * at::mm(p, c.t()) + (c * c).sum(1).unsqueeze(0)).argmin(1);  // |p|^2 is the same per row
  };
  // Farthest-point seeds (Gonzalez 1985) from point 0: each seed the point farthest from the others.
  std::vector<int64_t> seeds{0};
  const auto distance_to = [&](int64_t s) {
    return (squared_norms - 2 * at::mv(points, points[s]) + squared_norms[s]).clamp_min(0);
  };
  at::Tensor nearest = distance_to(0);
  while (static_cast<int64_t>(seeds.size()) < clusters) {
    const int64_t far = nearest.argmax().item<int64_t>();
    if (!(nearest[far].item<double>() > 0)) break;  // fewer distinct points than clusters
    seeds.push_back(far);
    nearest = at::minimum(nearest, distance_to(far));
  }
  at::Tensor centres = points.index_select(0, at::tensor(seeds, at::kLong));
  at::Tensor labels = nearest_centre(points, centres);
  for (int step = 0; step < kLloydSteps; ++step) {
    const int64_t k = centres.size(0);
    const at::Tensor counts = at::zeros({k}, at::kDouble).index_add_(0, labels, at::ones({n}, at::kDouble));
    const at::Tensor sums = at::zeros({k, points.size(1)}, at::kDouble).index_add_(0, labels, points);
    // An empty cluster keeps its centre.
    centres = at::where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1), centres);
    const at::Tensor moved = nearest_centre(points, centres);
    const bool same = moved.equal(labels);
    labels = moved;
    if (same) break;
  }
  // Every point's nearest centre, in its cloud's dtype; dense labels, clusters in order of first appearance.
  const at::Tensor all = at::cat({nearest_centre(x.detach(), centres), nearest_centre(y.detach(), centres)})
                             .to(at::kCPU)
                             .contiguous();
  std::vector<int64_t> dense(static_cast<size_t>(centres.size(0)), -1), result(static_cast<size_t>(total));
  int64_t next = 0;
  const int64_t* raw = all.data_ptr<int64_t>();
  for (int64_t i = 0; i < total; ++i) {
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

// `points` (M, D) by cluster, for the segmented passes of `rows` (R, D).
ClusterSegments segments_of(const at::Tensor& points, const std::vector<int64_t>& labels, int64_t clusters,
                            const at::Tensor& rows, bool batched) {
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(clusters));
  for (size_t i = 0; i < labels.size(); ++i) members[labels[i]].push_back(static_cast<int64_t>(i));
  ClusterSegments segments;
  size_t largest = 0;
  for (int64_t c = 0; c < clusters; ++c) {
    if (members[c].empty()) continue;
    const at::Tensor index = at::tensor(members[c], at::kLong).to(points.device());
    segments.ids.push_back(c);
    segments.index.push_back(index);
    segments.points.push_back(points.index_select(0, index).unsqueeze(0).contiguous());
    largest = std::max(largest, members[c].size());
  }
  const auto count = static_cast<int64_t>(segments.ids.size());
  const auto width = static_cast<int64_t>(largest);
  const double limit = static_cast<double>(kBatchedSegmentPairs);
  if (!batched || static_cast<double>(count) * width * rows.size(0) > limit ||
      static_cast<double>(count) * rows.size(0) * rows.size(1) > limit) {
    return segments;
  }
  std::vector<int64_t> index(static_cast<size_t>(count * width), 0);
  std::vector<uint8_t> padding(index.size(), 1);
  for (int64_t k = 0; k < count; ++k) {
    const std::vector<int64_t>& own = members[segments.ids[k]];
    for (size_t t = 0; t < own.size(); ++t) {
      index[k * width + static_cast<int64_t>(t)] = own[t];
      padding[k * width + static_cast<int64_t>(t)] = 0;
    }
  }
  segments.padded_index = at::tensor(index, at::kLong).to(points.device());
  segments.padding = at::tensor(padding, at::kByte).to(at::kBool).reshape({count, width}).to(points.device());
  segments.padded_points = points.index_select(0, segments.padded_index).reshape({count, width, points.size(1)});
  segments.rows = rows.unsqueeze(0).expand({count, rows.size(0), rows.size(1)}).contiguous();
  return segments;
}

// The rows `begin`, `count` of `points` (N, D), or all of them (count < 0).
at::Tensor own_rows(const at::Tensor& points, int64_t begin, int64_t count) {
  return count < 0 ? points : points.narrow(0, begin, count);
}

std::optional<EntryClusters> entry_clusters(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y,
                                            const at::Tensor& b, bool batched,
                                            const std::optional<LoopSettings::RowShards>& shards) {
  const int64_t n = x.size(0);
  const std::vector<int64_t> labels = lloyd_clusters(x, y, kCorrectionClusters);
  EntryClusters entry;
  entry.source_labels.assign(labels.begin(), labels.begin() + n);
  entry.target_labels.assign(labels.begin() + n, labels.end());
  entry.clusters = *std::max_element(labels.begin(), labels.end()) + 1;
  if (entry.clusters < 2) return std::nullopt;
  // The rows each pass reduces here: this rank's, or all of them.
  const at::Tensor x_rows = shards ? own_rows(x, shards->source_begin, shards->source_rows) : x;
  const at::Tensor y_rows = shards ? own_rows(y, shards->target_begin, shards->target_rows) : y;
  entry.target_segments = segments_of(y.detach(), entry.target_labels, entry.clusters, x_rows.detach(), batched);
  entry.source_segments = segments_of(x.detach(), entry.source_labels, entry.clusters, y_rows.detach(), batched);
  entry.source_mass = cluster_masses(a, entry.source_labels, entry.clusters);
  entry.target_mass = cluster_masses(b, entry.target_labels, entry.clusters);
  return entry;
}

}  // namespace

std::unique_ptr<ClusterCorrection> ClusterCorrection::make(const Cloud& a, const Cloud& b, int p,
                                                          const reduce::Reducer& loop_reducer,
                                                          const std::optional<LoopSettings::RowShards>& shards) {
  const at::Tensor& x = a.points;
  const at::Tensor& y = b.points;
  if (x.size(1) < 2 || y.size(1) < 2) return nullptr;
  c10::NoGradGuard no_grad;
  // Where the loop stores cost matrices, the clusters' sums do too (one batched softmin); else
  // they stream over each cluster's points with the loop's kind of kernels (linear memory, and a
  // row's sums do not depend on the rows beside it: a sharded solve's ranks get the one
  // process's rows bit for bit).
  const bool batched = loop_reducer.name() == "tensorized" && x.size(0) <= kBatchedSegmentEntries;
  std::vector<EntryClusters> entries;
  for (int64_t e = 0; e < x.size(0); ++e) {
    std::optional<EntryClusters> entry = entry_clusters(x[e], a.weights[e], y[e], b.weights[e], batched, shards);
    if (!entry) return nullptr;
    entries.push_back(std::move(*entry));
  }
  const Backend stream = x.device().is_cpu() ? Backend::online
                                             : reduce::resolve_backend(Backend::automatic, 1, x.size(1), y.size(1),
                                                                       x.size(2), x.device(), /*needs_autograd=*/false);
  auto correction = std::unique_ptr<ClusterCorrection>(
      new ClusterCorrection(a, b, std::move(entries), reduce::make_reducer(stream, p, x, y)));
  correction->batched_reducer_ = reduce::make_reducer(Backend::tensorized, p, x, y);
  correction->shards_ = shards;
  return correction;
}

ClusterCorrection::ClusterCorrection(const Cloud& a, const Cloud& b, std::vector<EntryClusters> entries,
                                     std::unique_ptr<reduce::Reducer> reducer)
    : a_(a), b_(b), entries_(std::move(entries)), reducer_(std::move(reducer)) {}

at::Tensor ClusterCorrection::segmented_log_sums(const at::Tensor& all_rows, const ClusterSegments& segments,
                                                 const at::Tensor& h, double eps, int64_t clusters,
                                                 bool source_rows) const {
  // This rank's rows (all of them in one process); their sums, then every rank's.
  const at::Tensor rows = !shards_ ? all_rows
                          : source_rows ? own_rows(all_rows, shards_->source_begin, shards_->source_rows)
                                        : own_rows(all_rows, shards_->target_begin, shards_->target_rows);
  at::Tensor log_sums = at::full({rows.size(0), clusters}, kNegativeInfinity, at::kDouble);
  const at::Tensor ids = at::tensor(segments.ids, at::kLong);
  if (segments.rows.defined()) {
    // One softmin over every cluster at once: (L, R).
    const at::Tensor padded_h = h.index_select(0, segments.padded_index)
                                    .reshape(segments.padding.sizes())
                                    .masked_fill(segments.padding, kNegativeInfinity);
    const at::Tensor softmins = batched_reducer_->softmin(segments.rows, segments.padded_points, padded_h, eps);
    log_sums.index_copy_(1, ids, softmins.t().to(at::kCPU, at::kDouble) / -eps);
  } else if (rows.size(0) > 0) {
    const at::Tensor batched_rows = rows.unsqueeze(0).contiguous();
    std::vector<reduce::SoftminRequest> requests;
    for (size_t k = 0; k < segments.ids.size(); ++k) {
      requests.push_back({&batched_rows, &segments.points[k], h.index_select(0, segments.index[k]).unsqueeze(0), eps});
    }
    const std::vector<at::Tensor> softmins = reducer_->softmins(requests);
    for (size_t k = 0; k < segments.ids.size(); ++k) {
      log_sums.select(1, segments.ids[k]).copy_(softmins[k][0].to(at::kCPU, at::kDouble) / -eps);
    }
  }
  if (!shards_) return log_sums;
  // -inf travels as the float64 it is; the group's device carries it.
  return shards_->gather(log_sums.to(all_rows.device()), source_rows).to(at::kCPU, at::kDouble).contiguous();
}

at::Tensor ClusterCorrection::row_pass(const at::Tensor& g, double eps) {
  c10::NoGradGuard no_grad;
  row_log_sums_.clear();
  row_eps_ = eps;
  std::vector<at::Tensor> softmins;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const at::Tensor h = b_.log_weights[i] + g[i].detach() / eps;
    row_log_sums_.push_back(
        segmented_log_sums(a_.points[i], entries_[e].target_segments, h, eps, entries_[e].clusters, true));
    softmins.push_back(-eps * row_log_sum_exp(row_log_sums_.back()));
  }
  return at::stack(softmins).to(g.device(), g.scalar_type());
}

namespace {

// One half of a corrected sweep for one batch entry, from its rows' per-cluster log sums: the
// semi-dual's maximiser v over the other cloud's clusters (0, the plain half, where it cannot be
// trusted). Returns the other cloud's potential shifted by eps v on its clusters and the rows'
// exact update -eps log sum_L e^{v_L} S_iL, both float64 on the CPU.
std::pair<at::Tensor, at::Tensor> corrected_half(const at::Tensor& log_sums, const at::Tensor& row_weights,
                                                 const std::vector<double>& cluster_mass,
                                                 const std::vector<int64_t>& cluster_labels, const at::Tensor& other,
                                                 int64_t clusters, double eps, CorrectionReport& report) {
  double error = 0.0;
  std::optional<std::vector<double>> v =
      maximise_semi_dual(log_sums, row_weights.detach().to(at::kCPU, at::kDouble), cluster_mass, &error);
  if (!v) {
    v = std::vector<double>(static_cast<size_t>(clusters), 0.0);
    ++report.plain_halves;
  } else {
    report.cluster_error = std::max(report.cluster_error, error);
  }
  const at::Tensor shifts = at::tensor(*v, at::kDouble);
  const at::Tensor labels = at::tensor(cluster_labels, at::kLong);
  return {other.detach().to(at::kCPU, at::kDouble) + eps * shifts.index_select(0, labels),
          -eps * row_log_sum_exp(log_sums + shifts.unsqueeze(0))};
}

}  // namespace

CorrectionReport ClusterCorrection::finish_sweep(PotentialPair& potentials, double eps) {
  SINKHORN_INTERNAL_CHECK(row_log_sums_.size() == entries_.size() && row_eps_ == eps,
                          "finish_sweep follows row_pass at the same eps");
  c10::NoGradGuard no_grad;
  CorrectionReport report;
  const auto device = potentials.f.device();
  const auto dtype = potentials.f.scalar_type();
  std::vector<at::Tensor> f_rows(entries_.size()), g_rows(entries_.size());
  // The row half: v on b's clusters, g shifted, f the exact row update.
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const EntryClusters& entry = entries_[e];
    std::tie(g_rows[e], f_rows[e]) = corrected_half(row_log_sums_[e], a_.weights[i], entry.target_mass,
                                                    entry.target_labels, potentials.g[i], entry.clusters, eps, report);
  }
  potentials.f = at::stack(f_rows).to(device, dtype);
  potentials.g = at::stack(g_rows).to(device, dtype);
  row_log_sums_.clear();
  // The column half from the new f: u on a's clusters, f shifted, g the exact column update.
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto i = static_cast<int64_t>(e);
    const EntryClusters& entry = entries_[e];
    const at::Tensor h = a_.log_weights[i] + potentials.f[i] / eps;
    const at::Tensor log_sums = segmented_log_sums(b_.points[i], entry.source_segments, h, eps, entry.clusters, false);
    std::tie(f_rows[e], g_rows[e]) = corrected_half(log_sums, b_.weights[i], entry.source_mass, entry.source_labels,
                                                    potentials.f[i], entry.clusters, eps, report);
  }
  potentials.f = at::stack(f_rows).to(device, dtype);
  potentials.g = at::stack(g_rows).to(device, dtype);
  return report;
}

double ClusterCorrection::clustered_share(const at::Tensor& f, const at::Tensor& softmin, double eps) const {
  c10::NoGradGuard no_grad;
  const at::Tensor excess = (a_.weights.detach().to(at::kDouble) *
                             at::expm1((f.detach().to(at::kDouble) - softmin.detach().to(at::kDouble)) / eps))
                                .to(at::kCPU)
                                .contiguous();
  double share = 1.0;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const double* r = excess[static_cast<int64_t>(e)].data_ptr<double>();
    std::vector<double> by_cluster(static_cast<size_t>(entries_[e].clusters), 0.0);
    double total = 0.0;
    for (size_t i = 0; i < entries_[e].source_labels.size(); ++i) {
      by_cluster[entries_[e].source_labels[i]] += r[i];
      total += std::abs(r[i]);
    }
    double clustered = 0.0;
    for (double sum : by_cluster) clustered += std::abs(sum);
    if (total > 0) share = std::min(share, clustered / total);
  }
  return share;
}

double ClusterCorrection::labels_checksum() const {
  double sum = 0.0;
  for (const EntryClusters& entry : entries_) {
    sum += static_cast<double>(entry.clusters);
    int64_t i = 0;
    for (const std::vector<int64_t>* labels : {&entry.source_labels, &entry.target_labels}) {
      for (const int64_t label : *labels) sum += static_cast<double>((label + 1) * (i++ % 9973 + 1));
    }
  }
  return sum;
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
