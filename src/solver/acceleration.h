// Acceleration of the Sinkhorn loop at the final eps: which update scheme OT(a, b) takes
// (SchemeSelector) and how much the alternating updates are over-relaxed (Relaxation), both
// driven only by the sequence of marginal errors the loop observes, one per sweep. Kept apart
// from the loop so that their decisions can be tested on synthetic error sequences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

namespace sinkhorn::solver {

/// Contraction rates are measured over this many sweeps.
inline constexpr size_t kRateWindow = 5;

/// A scheme that divides the marginal error by at least 1 / kFastRate per sweep needs no help.
inline constexpr double kFastRate = 0.5;

/// The mean contraction per sweep of the marginal error over the last kRateWindow sweeps (needs
/// more than kRateWindow errors); NaN when it cannot be measured (0/0).
double windowed_rate(const std::vector<double>& errors);

/// Appends an error to a history that windowed_rate reads, keeping only the kRateWindow + 1 it
/// needs (a solve may run 10^7 sweeps).
inline void remember_error(std::vector<double>& errors, double error) {
  if (errors.size() > kRateWindow) errors.erase(errors.begin());
  errors.push_back(error);
}

// Over-relaxation of the alternating updates at the final eps (Thibault, Chizat, Dossal,
// Papadakis 2021, "Overrelaxed Sinkhorn-Knopp"). Linearised, Sinkhorn is block Gauss-Seidel on a
// 2-cyclic system, so Young's SOR theory applies: with mu^2 the plain contraction of the error per
// sweep, omega* = 2 / (1 + sqrt(1 - mu^2)) cuts the sweeps per decade from ~1/(1 - mu^2) to
// ~1/sqrt(1 - mu^2). mu^2 is first measured over plain sweeps, then re-estimated from the rate
// rho observed under omega through Young's relation (rho + omega - 1)^2 = rho omega^2 mu^2.
// Before the asymptotic regime the measured rates mislead (too slow), and an omega above omega*
// converges at rate omega - 1 only: so a larger omega is kept only if it measurably beats the
// previous one; otherwise the previous omega is restored and frozen. SOR converges only locally:
// relaxation starts once the marginal error is small, and if the relaxed error diverges or
// stalls, plain sweeps resume and later tries use a smaller omega (plain Sinkhorn always converges).
class Relaxation {
 public:
  /// The over-relaxation factor of the next sweep (1: plain Sinkhorn).
  double omega() const { return omega_; }

  /// Starts relaxed from a plain rate measured elsewhere (the scheme probe below).
  void start_from_plain_rate(double rate, double error) {
    // A fast plain rate (early, far from the optimum) or a meaningless one: measure again later.
    if (!(rate >= kFastRate && rate < 1.0) || !(error < kLinearRegime)) return;
    set_omega(optimal_omega_allowed(rate), error);
  }

  /// Young's optimal factor for a plain contraction rate mu^2 < 1.
  static double optimal_omega(double mu_squared) {
    return std::min(kLargestOmega, 2.0 / (1.0 + std::sqrt(1.0 - mu_squared)));
  }

  /// optimal_omega, capped below the omegas that failed before.
  double optimal_omega_allowed(double mu_squared) const {
    return std::min(largest_omega_, optimal_omega(mu_squared));
  }

  /// start_from_plain_rate(rate, error) at the first error observed in the linear regime (the
  /// first sweeps after a warm start are still far from the optimum).
  void start_from_plain_rate_when_linear(double rate) { pending_plain_rate_ = rate; }

  /// Takes the marginal error of the sweep just run (at the omega() it was run with).
  void observe(double error) {
    remember_error(errors_, error);
    if (abandoned_) return;
    if (pending_plain_rate_ && omega_ == 1.0 && error < kLinearRegime) {
      start_from_plain_rate(*std::exchange(pending_plain_rate_, std::nullopt), error);
      if (omega_ > 1.0) return;
    }
    ++sweeps_since_change_;
    if (omega_ > 1.0) {
      // SOR's error is not monotone (a transient growth of a few times is normal), but it must
      // stay bounded and fall below where it started within a while.
      const bool diverging = !(error <= kGrowthAllowed * error_at_change_);
      const bool stalled = sweeps_since_change_ >= kPatience && !(error < error_at_change_);
      if (diverging || stalled) {
        // Back to plain sweeps; later tries stay below half the failed excess omega - 1.
        largest_omega_ = 1.0 + (omega_ - 1.0) / 2;
        set_omega(1.0, error);
        previous_omega_ = 1.0;
        previous_rate_ = 1.0;
        frozen_ = false;
        abandoned_ = ++failures_ >= kFailuresAllowed;
        return;
      }
    }
    if (frozen_) return;
    const size_t settle = omega_ > 1.0 ? kSettleRelaxed : kSettlePlain;
    if (sweeps_since_change_ < settle + kRateWindow) return;
    const double rate = windowed_rate(errors_);
    if (!(rate > 0.0 && rate < 1.0)) return;
    if (omega_ == 1.0 && (rate < kFastRate || !(error < kLinearRegime))) {
      // Plain Sinkhorn is fast for now, or the iterates are too far from the optimum for the
      // linear theory (relaxing there can blow up): measure again later.
      sweeps_since_change_ = 0;
      return;
    }
    if (omega_ > 1.0 && !(rate < previous_rate_)) {
      set_omega(previous_omega_, error);  // no better than before: step back and stay
      frozen_ = true;
      return;
    }
    const double mu = (rate + omega_ - 1.0) / (omega_ * std::sqrt(rate));  // Young; mu^2 = rate at omega 1
    const double better = mu < 1.0 ? optimal_omega_allowed(mu * mu) : omega_;
    if (!(better > omega_ + 0.01)) {
      frozen_ = true;
      return;
    }
    previous_omega_ = omega_;
    // Plain rates measured early flatter; only a relaxed rate is a baseline worth beating.
    previous_rate_ = omega_ > 1.0 ? rate : 1.0;
    set_omega(better, error);
  }

 private:
  void set_omega(double omega, double error) {
    omega_ = omega;
    sweeps_since_change_ = 0;
    error_at_change_ = error;
  }

  static constexpr size_t kSettlePlain = 10;    // plain sweeps before the first measurement
  // Relaxed sweeps before re-measuring. A rate measured too early still carries SOR's transient;
  // measured too late, a relaxed rate that degrades in the tail (the slowest mode surfacing) is
  // never corrected: on a torus of 100,000 points 20 let the last sweeps crawl at 0.94 (107 sweeps
  // in all), 15 re-measure in time (87); cube, blobs and sphere unchanged (docs/benchmarks.md).
  static constexpr size_t kSettleRelaxed = 15;
  static constexpr double kLargestOmega = 1.98;
  static constexpr double kGrowthAllowed = 100.0;
  static constexpr size_t kPatience = 100;
  static constexpr double kLinearRegime = 5e-2;  // marginal error below which relaxing is safe
  static constexpr int kFailuresAllowed = 3;
  double largest_omega_ = kLargestOmega;
  std::optional<double> pending_plain_rate_;
  int failures_ = 0;
  std::vector<double> errors_;
  double omega_ = 1.0;
  double previous_omega_ = 1.0;
  double previous_rate_ = 1.0;
  double error_at_change_ = 0.0;
  size_t sweeps_since_change_ = 0;
  bool frozen_ = false;
  bool abandoned_ = false;
};

// Chooses the update of OT(a, b) at the final eps: averaged (Jacobi) updates are fast when the
// clouds are close, alternating updates with over-relaxation when they are far apart (see above).
// It starts averaged and measures the rate every few sweeps. When that rate is slow it probes
// plain alternating sweeps once, predicts their relaxed rate by Young's omega* - 1, and keeps
// whichever is faster; since early rates flatter, the averaged rate keeps being re-measured and
// loses to the prediction as soon as it falls behind.
class SchemeSelector {
 public:
  /// The next sweep takes averaged (Jacobi) updates; otherwise alternating ones at omega().
  bool averaged() const { return phase_ == Phase::averaged; }
  /// The over-relaxation of the alternating updates (1 while averaged or probing).
  double omega() const { return phase_ == Phase::alternating ? relaxation_.omega() : 1.0; }

  /// Alternating updates from the first sweep, relaxed from `plain_rate` once the error is in the
  /// linear regime; no averaged sweeps, no probe. For a warm start whose scheme is already known:
  /// the multiscale backend's coarse solve of the same clouds (multiscale.h).
  void start_alternating(double plain_rate) {
    phase_ = Phase::alternating;
    probed_ = true;
    plain_rate_ = plain_rate;
    relaxation_.start_from_plain_rate_when_linear(plain_rate);
  }

  /// The plain alternating rate the probe measured, when the selector ended on alternating
  /// updates: what start_alternating takes (unset while averaged).
  std::optional<double> alternating_plain_rate() const {
    if (phase_ != Phase::alternating) return std::nullopt;
    return plain_rate_;
  }

  /// Takes the marginal error of OT(a, b) after the sweep just run.
  void observe(double error) {
    remember_error(errors_, error);
    if (phase_ == Phase::alternating) {
      relaxation_.observe(error);
      return;
    }
    if (++sweeps_measured_ < kProbe) return;
    const double rate = measured_rate();
    errors_.clear();
    sweeps_measured_ = 0;
    if (phase_ == Phase::probe_alternating) {
      plain_rate_ = rate;
      relaxed_rate_ = rate < 1.0 ? Relaxation::optimal_omega(rate) - 1.0 : rate;
      probed_ = true;
      if (averaged_rate_ <= std::min(plain_rate_, relaxed_rate_)) {
        phase_ = Phase::averaged;
      } else {
        switch_to_alternating(error);
      }
      return;
    }
    // Phase::averaged
    averaged_rate_ = rate;
    if (rate < kFastRate) return;
    if (!probed_) {
      phase_ = Phase::probe_alternating;
    } else if (rate > std::min(plain_rate_, relaxed_rate_)) {
      switch_to_alternating(error);
    }
  }

 private:
  enum class Phase { averaged, probe_alternating, alternating };
  static constexpr size_t kProbe = 8;  // sweeps per measurement; the rate is taken over the last kRateWindow

  double measured_rate() const {
    const double rate = windowed_rate(errors_);
    return rate > 0.0 ? rate : 1.0;  // NaN or 0/0: no information, treat as slow
  }

  void switch_to_alternating(double error) {
    phase_ = Phase::alternating;
    relaxation_.start_from_plain_rate(plain_rate_, error);
  }

  Phase phase_ = Phase::averaged;
  std::vector<double> errors_;
  size_t sweeps_measured_ = 0;  // sweeps since the last measurement
  bool probed_ = false;
  double averaged_rate_ = 1.0;
  double plain_rate_ = 1.0;
  double relaxed_rate_ = 1.0;
  Relaxation relaxation_;
};

}  // namespace sinkhorn::solver
