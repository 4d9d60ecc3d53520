// Training progress on the terminal: a redrawn bar (step, loss, rate, ETA) when stderr is a
// terminal, plain lines otherwise (logs, CI), so the same command reads well in both.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>

namespace sinkhorn::cli {

class ProgressReporter {
 public:
  /// `first_step`: where this process starts (a resumed run does not count earlier steps in its rate).
  ProgressReporter(std::ostream& out, bool terminal, int64_t first_step, int64_t total_steps);
  void update(int64_t step, double loss, std::optional<double> critic_loss, std::optional<double> eval);
  /// Ends the bar's line.
  void finish();

 private:
  std::ostream& out_;
  bool terminal_;
  int64_t first_step_, total_steps_, plain_every_;
  std::chrono::steady_clock::time_point started_, last_draw_;
  std::optional<double> last_eval_;
  bool drawn_ = false;
};

/// Seconds as h:mm:ss or m:ss.
std::string format_duration(double seconds);

}  // namespace sinkhorn::cli
