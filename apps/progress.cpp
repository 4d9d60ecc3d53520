#include "progress.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace sinkhorn::cli {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  std::ostringstream text;
  if (total >= 3600) text << total / 3600 << ':' << std::setw(2) << std::setfill('0') << (total / 60) % 60;
  else text << total / 60;
  text << ':' << std::setw(2) << std::setfill('0') << total % 60;
  return text.str();
}

ProgressReporter::ProgressReporter(std::ostream& out, bool terminal, int64_t first_step, int64_t total_steps)
    : out_(out), terminal_(terminal), first_step_(first_step), total_steps_(total_steps),
      plain_every_(std::max<int64_t>(1, total_steps / 20)), started_(std::chrono::steady_clock::now()),
      last_draw_(started_) {}

void ProgressReporter::update(int64_t step, double loss, std::optional<double> critic_loss, std::optional<double> eval) {
  if (eval) last_eval_ = eval;
  const auto now = std::chrono::steady_clock::now();
  const bool last = step == total_steps_;
  if (terminal_) {
    // Redraw at most ten times a second: drawing costs more than a small model's step.
    if (!last && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else if (!last && step % plain_every_ != 0 && !eval) {
    return;
  }
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(step - first_step_) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_steps_ - step) / rate : NAN;
  std::ostringstream line;
  line << "step " << step << "/" << total_steps_;
  if (terminal_) {
    constexpr int kWidth = 24;
    const int filled = total_steps_ > 0 ? static_cast<int>(kWidth * step / total_steps_) : kWidth;
    line << " [" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "]";
  }
  line << std::setprecision(4) << "  loss " << loss;
  if (critic_loss) line << "  critic " << *critic_loss;
  if (last_eval_) line << "  eval " << *last_eval_;
  line << std::setprecision(3) << "  " << rate << " steps/s  ETA " << format_duration(eta);
  if (terminal_) {
    out_ << "\r" << line.str() << "\x1b[K" << std::flush;  // \x1b[K clears the rest of the old line
    drawn_ = true;
  } else {
    out_ << line.str() << "\n" << std::flush;
  }
}

void ProgressReporter::finish() {
  if (terminal_ && drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace sinkhorn::cli
