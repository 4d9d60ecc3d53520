// metrics.csv: one row per logged step of a run, appended as the run goes. A resumed run rewrites it
// to read as if the run had never stopped: rows past the checkpoint are dropped, and a last row cut
// short by a kill is removed, so that the next rows follow on from the checkpoint's step.
//
// A resume reads the file whole, so it accepts at most kMaxMetricsBytes: about 15 million rows,
// e.g. 15 million steps logged every step or 150 million every tenth. A longer log is refused on
// resume with what to do (move it away; the resume then starts a new one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sinkhorn::gen {

/// The largest metrics.csv a resume reads (a row is under 70 bytes).
inline constexpr uint64_t kMaxMetricsBytes = uint64_t{1} << 30;

/// The header line of metrics.csv.
inline constexpr const char* kMetricsHeader =
    "step,loss,critic_loss,seconds,eval_divergence,modes_covered,high_quality_fraction\n";

/// One row of metrics.csv; unset values stay empty.
struct MetricsRow {
  int64_t step = 0;                             ///< the generator update it follows (0: the untrained one)
  std::optional<double> loss, critic_loss;      ///< the step's losses
  double seconds = 0;                           ///< training time so far
  std::optional<double> eval_divergence;        ///< on evaluation steps
  std::optional<int64_t> modes_covered;         ///< mixtures of Gaussians only
  std::optional<double> high_quality_fraction;  ///< mixtures of Gaussians only
};

/// The row as metrics.csv holds it, newline included.
std::string format_metrics_row(const MetricsRow& row);

/// Starts `path` with the header alone (atomically); throws Error("out_dir", ...) if it cannot.
void create_metrics_log(const std::string& path);
/// Appends a row; on failure (a full disk) no partial row stays and Error("out_dir", ...) is thrown.
void append_metrics_row(const std::string& path, const MetricsRow& row);

/// What metrics.csv must hold for a run resumed at a step.
struct MetricsResume {
  std::string text;                  ///< the header and every row up to the step
  std::vector<std::string> repairs;  ///< what was repaired, one line each (empty: nothing)
};

/// Reads `path` without writing and plans its content for a resume from `step`: rows past it
/// dropped, a last row cut short removed, a row glued to one cut short (a failed append whose
/// part row could not be cut back) removed when no kept row follows it, a missing or empty file
/// restarted. Throws Error("out_dir", ...) naming the file, the line (its invisible bytes as \xHH)
/// and what to do when it cannot be repaired (another malformed row, another header, a file past
/// kMaxMetricsBytes).
MetricsResume plan_metrics_resume(const std::string& path, int64_t step);

}  // namespace sinkhorn::gen
