#include "gen/metrics_log.h"

#include <charconv>
#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <string_view>

#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "util/check.h"
#include "util/strings.h"

namespace sinkhorn::gen {
namespace {

constexpr size_t kColumns = 7;
constexpr size_t kShown = 60;  // bytes of a bad row quoted in a message

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return fields;
}

std::optional<int64_t> integer_of(std::string_view text) {
  int64_t value = 0;
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// The row's step, when the line has the columns of a row, every field a number or empty and the
// first an integer.
std::optional<int64_t> row_step(std::string_view line) {
  const std::vector<std::string_view> fields = fields_of(line);
  if (fields.size() != kColumns) return std::nullopt;
  for (size_t k = 1; k < kColumns; ++k) {
    if (fields[k].empty()) continue;
    const std::string field(fields[k]);
    char* end = nullptr;
    std::strtod(field.c_str(), &end);
    if (end != field.c_str() + field.size()) return std::nullopt;
  }
  return integer_of(fields[0]);
}

// A row glued to the part of a row before it: a failed append whose part row could not be cut
// back, then a later one. It has more columns than a row and begins with the cut row's step.
bool is_glued_row(std::string_view line, int64_t step) {
  const std::vector<std::string_view> fields = fields_of(line);
  const std::optional<int64_t> first = integer_of(fields[0]);
  return fields.size() > kColumns && first && *first > step;
}

}  // namespace

std::string format_metrics_row(const MetricsRow& row) {
  std::ostringstream line;
  line << std::setprecision(8) << row.step << ',';
  if (row.loss) line << *row.loss;
  line << ',';
  if (row.critic_loss) line << *row.critic_loss;
  line << ',' << std::setprecision(6) << row.seconds << ',' << std::setprecision(8);
  if (row.eval_divergence) line << *row.eval_divergence;
  line << ',';
  if (row.modes_covered) line << *row.modes_covered;
  line << ',';
  if (row.high_quality_fraction) line << *row.high_quality_fraction;
  line << '\n';
  return line.str();
}

void create_metrics_log(const std::string& path) { io::write_file_atomically(path, kMetricsHeader, "out_dir"); }

void append_metrics_row(const std::string& path, const MetricsRow& row) {
  io::append_to_file(path, format_metrics_row(row), "out_dir");
}

MetricsResume plan_metrics_resume(const std::string& path, int64_t step) {
  MetricsResume plan;
  plan.text = kMetricsHeader;
  if (!io::path_exists(path)) {
    plan.repairs.push_back("'" + path + "' was missing: a new one starts after step " + std::to_string(step));
    return plan;
  }
  std::string text;
  try {
    text = io::read_regular_file(path, kMaxMetricsBytes, "out_dir");
  } catch (const Error& error) {
    throw Error("out_dir", error.problem() + "; move it away to resume (a new metrics.csv then starts after step " +
                               std::to_string(step) + ")");
  }
  const std::string_view all(text);
  const std::string_view header = kMetricsHeader;
  if (!starts_with(all, header)) {
    // A file cut inside its header (a kill right after the run started) holds no row to keep.
    SINKHORN_CHECK_ARG(starts_with(header, all), "out_dir",
                       "'" << path << "' is not a metrics log of this program (its first line is not the header '"
                           << header.substr(0, header.size() - 1) << "'); move it away to resume");
    plan.repairs.push_back("'" + path + "' ended inside its header: it was restarted after step " +
                           std::to_string(step));
    return plan;
  }
  // A glued row, remembered until a kept row shows it was not the end of the log.
  std::optional<std::pair<size_t, std::string_view>> glued;
  size_t line_number = 2;  // the header is line 1
  for (size_t at = header.size(); at < all.size(); ++line_number) {
    const size_t end = all.find('\n', at);
    const std::string_view line = all.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (end == std::string_view::npos) {
      // No newline: the process was killed while it wrote this row. The checkpoint is older than
      // the row (rows are appended before a checkpoint is written), so nothing is lost.
      plan.repairs.push_back("'" + path + "' ended in a row cut short ('" + visible_bytes(line, kShown) +
                             "'); it was removed, the log resumes after step " + std::to_string(step));
      break;
    }
    at = end + 1;
    if (line.empty()) continue;
    const std::optional<int64_t> row = row_step(line);
    if (!row && !glued && is_glued_row(line, step)) {
      glued.emplace(line_number, line);
      continue;
    }
    const auto refuse = [&](size_t number, std::string_view bad) {
      SINKHORN_CHECK_ARG(false, "out_dir",
                         "'" << path << "' has a malformed row: '" << visible_bytes(bad, kShown) << "' (line " << number
                             << "); fix or delete that line to resume");
    };
    if (!row) refuse(line_number, line);
    if (*row <= step) {
      if (glued) refuse(glued->first, glued->second);  // a kept row follows it: not a cut-short end
      plan.text.append(line).push_back('\n');
    }
  }
  if (glued) {
    plan.repairs.push_back("'" + path + "' had a row glued to one cut short by a failed write ('" +
                           visible_bytes(glued->second, kShown) + "', line " + std::to_string(glued->first) +
                           "); it was removed, the log resumes after step " + std::to_string(step));
  }
  return plan;
}

}  // namespace sinkhorn::gen
