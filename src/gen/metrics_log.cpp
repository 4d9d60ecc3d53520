#include "gen/metrics_log.h"

#include <charconv>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "gen/atomic_file.h"
#include "io/file_bytes.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

// A metrics.csv bigger than this is not one this program wrote (a row is under 100 bytes).
constexpr int64_t kMaxMetricsBytes = int64_t{4} << 30;
constexpr size_t kColumns = 7;

std::string shortened(const std::string& line) {
  constexpr size_t kShown = 60;
  return line.size() <= kShown ? line : line.substr(0, kShown) + "...";
}

// The row's step, when every field of the line is a number or empty and the first an integer.
std::optional<int64_t> row_step(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  for (std::string field; std::getline(stream, field, ',');) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  if (fields.size() != kColumns) return std::nullopt;
  int64_t step = 0;
  const std::string& first = fields[0];
  const auto parsed = std::from_chars(first.data(), first.data() + first.size(), step);
  if (parsed.ec != std::errc() || parsed.ptr != first.data() + first.size() || step < 0) return std::nullopt;
  for (size_t k = 1; k < kColumns; ++k) {
    if (fields[k].empty()) continue;
    char* end = nullptr;
    std::strtod(fields[k].c_str(), &end);
    if (end != fields[k].c_str() + fields[k].size()) return std::nullopt;
  }
  return step;
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

void create_metrics_log(const std::string& path) { write_file_atomically(path, kMetricsHeader, "out_dir"); }

void append_metrics_row(const std::string& path, const MetricsRow& row) {
  append_to_file(path, format_metrics_row(row), "out_dir");
}

MetricsResume plan_metrics_resume(const std::string& path, int64_t step) {
  MetricsResume plan;
  plan.text = kMetricsHeader;
  if (!io::path_exists(path)) {
    plan.repairs.push_back("'" + path + "' was missing: a new one starts after step " + std::to_string(step));
    return plan;
  }
  const std::vector<char> bytes = read_regular_file(path, kMaxMetricsBytes, "out_dir");
  const std::string text(bytes.begin(), bytes.end());
  const std::string header = kMetricsHeader;
  if (text.compare(0, header.size(), header) != 0) {
    // A file cut inside its header (a kill right after the run started) holds no row to keep.
    SINKHORN_CHECK_ARG(header.compare(0, text.size(), text) == 0, "out_dir",
                       "'" << path << "' is not a metrics log of this program (its first line is not the header '"
                           << header.substr(0, header.size() - 1) << "'); move it away to resume");
    plan.repairs.push_back("'" + path + "' ended inside its header: it was restarted after step " +
                           std::to_string(step));
    return plan;
  }
  size_t line_number = 2;  // the header is line 1
  for (size_t at = header.size(); at < text.size(); ++line_number) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (end == std::string::npos) {
      // No newline: the process was killed while it wrote this row. The checkpoint is older than
      // the row (rows are appended before a checkpoint is written), so nothing is lost.
      plan.repairs.push_back("'" + path + "' ended in a row cut short ('" + shortened(line) +
                             "'); it was removed, the log resumes after step " + std::to_string(step));
      break;
    }
    at = end + 1;
    if (line.empty()) continue;
    const std::optional<int64_t> row = row_step(line);
    SINKHORN_CHECK_ARG(row.has_value(), "out_dir",
                       "'" << path << "' has a malformed row: '" << shortened(line) << "' (line " << line_number
                           << "); fix or delete that line to resume");
    if (*row <= step) plan.text += line + "\n";
  }
  return plan;
}

}  // namespace sinkhorn::gen
