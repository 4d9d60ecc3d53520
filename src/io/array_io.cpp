#include "io/array_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "io/file_bytes.h"
#include "io/npy_writer.h"
#include "util/strings.h"
#include "util/check.h"

namespace sinkhorn::io {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLength = 6;


// The value of `key` in the .npy header, a Python dict literal such as
// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }.
std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
  const size_t key_at = header.find("'" + key + "'");
  SINKHORN_CHECK(key_at != std::string::npos, path << ": .npy header has no '" << key << "'");
  size_t start = header.find(':', key_at);
  SINKHORN_CHECK(start != std::string::npos, path << ": malformed .npy header");
  ++start;
  while (start < header.size() && header[start] == ' ') ++start;
  SINKHORN_CHECK(start < header.size(), path << ": malformed .npy header");
  size_t end = start;
  if (header[start] == '(') {
    end = header.find(')', start);
    SINKHORN_CHECK(end != std::string::npos, path << ": malformed shape in .npy header");
    return header.substr(start, end - start + 1);
  }
  if (header[start] == '\'') {
    end = header.find('\'', start + 1);
    SINKHORN_CHECK(end != std::string::npos, path << ": malformed .npy header");
    return header.substr(start + 1, end - start - 1);
  }
  end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

std::vector<int64_t> parse_shape(const std::string& tuple, const std::string& path) {
  SINKHORN_CHECK(tuple.size() >= 2 && tuple.front() == '(' && tuple.back() == ')',
                 path << ": malformed .npy header (shape '" << visible_bytes(tuple) << "' is not a tuple)");
  std::vector<int64_t> shape;
  std::string inner = tuple.substr(1, tuple.size() - 2);
  std::replace(inner.begin(), inner.end(), ',', ' ');
  std::istringstream stream(inner);
  std::string token;
  while (stream >> token) {
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(token.c_str(), &end, 10);
    SINKHORN_CHECK(*end == '\0' && value >= 0 && errno != ERANGE,
                   path << ": bad dimension '" << visible_bytes(token) << "' in .npy shape");
    shape.push_back(value);
  }
  return shape;
}

template <typename T>
void decode(const char* data, size_t count, bool swap_bytes, std::vector<double>& out) {
  out.resize(count);
  for (size_t i = 0; i < count; ++i) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, data + i * sizeof(T), sizeof(T));
    if (swap_bytes) std::reverse(bytes, bytes + sizeof(T));
    T value;
    std::memcpy(&value, bytes, sizeof(T));
    out[i] = static_cast<double>(value);
  }
}

bool host_is_little_endian() {
  const uint16_t probe = 1;
  char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// Splits a csv line into fields: on semicolons when the line has any (the separator of locales
// that write decimal commas), else on commas, else on white space; fields are trimmed.
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  const char separator = line.find(';') != std::string::npos ? ';' : line.find(',') != std::string::npos ? ',' : ' ';
  const bool delimited = separator != ' ';
  std::string current;
  const auto flush = [&](bool keep_empty) {
    const size_t first = current.find_first_not_of(" \t\r");
    const size_t last = current.find_last_not_of(" \t\r");
    std::string field = first == std::string::npos ? "" : current.substr(first, last - first + 1);
    if (!field.empty() || keep_empty) fields.push_back(field);
    current.clear();
  };
  for (const char c : line) {
    if (delimited ? c == separator : (c == ' ' || c == '\t' || c == '\r')) {
      flush(delimited);
    } else {
      current += c;
    }
  }
  flush(delimited);
  return fields;
}

// "1,5": a number written with a decimal comma (digits on both sides of one comma).
bool has_decimal_comma(const std::string& field) {
  const size_t comma = field.find(',');
  return comma != std::string::npos && comma > 0 && comma + 1 < field.size() &&
         field.find(',', comma + 1) == std::string::npos && std::isdigit(static_cast<unsigned char>(field[comma - 1])) &&
         std::isdigit(static_cast<unsigned char>(field[comma + 1]));
}

bool parse_number(const std::string& field, double& value) {
  if (field.empty()) return false;
  char* end = nullptr;
  value = std::strtod(field.c_str(), &end);
  return *end == '\0';
}

}  // namespace

Array read_array(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ends_with(lower, ".npy")) return read_npy(path);
  if (ends_with(lower, ".csv") || ends_with(lower, ".txt")) return read_csv(path);
  SINKHORN_CHECK(false, path << ": unknown file type (expected .npy or .csv)");
  return {};
}

Array read_npy(const std::string& path) {
  const std::string bytes = read_regular_file(path);
  SINKHORN_CHECK(bytes.size() >= kNpyMagicLength + 4 &&
                     bytes.compare(0, kNpyMagicLength, kNpyMagic, kNpyMagicLength) == 0,
                 path << ": not a .npy file (bad magic string)");
  const int major = static_cast<unsigned char>(bytes[6]);
  SINKHORN_CHECK(major >= 1 && major <= 3, path << ": unsupported .npy version " << major);
  size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    SINKHORN_CHECK(bytes.size() >= 12, path << ": truncated .npy header");
    for (int k = 3; k >= 0; --k) header_length = (header_length << 8) | static_cast<unsigned char>(bytes[8 + k]);
    header_start = 12;
  }
  SINKHORN_CHECK(bytes.size() >= header_start + header_length, path << ": truncated .npy header");
  const std::string header = bytes.substr(header_start, header_length);

  const std::string descr = header_field(header, "descr", path);
  const std::string fortran = header_field(header, "fortran_order", path);
  SINKHORN_CHECK(fortran.find("False") != std::string::npos,
                 path << ": Fortran-order arrays are not supported; save a C-order array "
                         "(numpy.ascontiguousarray)");
  Array array;
  array.shape = parse_shape(header_field(header, "shape", path), path);
  SINKHORN_CHECK(descr.size() == 3 && (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' || descr[0] == '=') &&
                     (descr.substr(1) == "f4" || descr.substr(1) == "f8"),
                 path << ": unsupported dtype '" << descr << "' (expected float32 '<f4' or float64 '<f8')");
  const bool is_double = descr.substr(1) == "f8";
  array.dtype = is_double ? "float64" : "float32";
  const bool big_endian = descr[0] == '>';
  const bool swap_bytes = big_endian == host_is_little_endian();

  // The shape's product, in overflow-checked arithmetic, against the bytes actually there: a
  // header may claim (2^61 + 50, 3) over 1,200 bytes of data.
  const size_t item_size = is_double ? 8 : 4;
  const size_t data_start = header_start + header_length;
  size_t count = 1, data_bytes = 0;
  bool overflow = false;
  for (const int64_t dim : array.shape) overflow = overflow || __builtin_mul_overflow(count, static_cast<size_t>(dim), &count);
  overflow = overflow || __builtin_mul_overflow(count, item_size, &data_bytes);
  SINKHORN_CHECK(!overflow, path << ": the .npy shape " << header_field(header, "shape", path) << " holds more values than "
                                 << "any file can (" << bytes.size() - data_start << " data bytes here): corrupt header");
  SINKHORN_CHECK(bytes.size() - data_start == data_bytes,
                 path << ": data size " << bytes.size() - data_start << " bytes does not match shape ("
                      << count << " values of " << item_size << " bytes): truncated or corrupt file");
  if (is_double) {
    decode<double>(bytes.data() + data_start, count, swap_bytes, array.values);
  } else {
    decode<float>(bytes.data() + data_start, count, swap_bytes, array.values);
  }
  return array;
}

Array read_csv(const std::string& path) {
  std::string text = read_regular_file(path);
  // A UTF-8 byte-order mark (spreadsheets write one) is not part of the first number.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  SINKHORN_CHECK(text.compare(0, 2, "\xFF\xFE") != 0 && text.compare(0, 2, "\xFE\xFF") != 0,
                 path << ": UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8 or ASCII");
  std::istringstream lines(text);
  std::string line;
  Array array;
  int64_t rows = 0, columns = -1, line_number = 0;
  bool first_content_line = true;
  while (std::getline(lines, line)) {
    ++line_number;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::vector<std::string> fields = split_fields(line.substr(first));
    std::vector<double> row;
    bool any_number = false;
    std::string bad_field;
    int64_t bad_column = 0;
    for (size_t k = 0; k < fields.size(); ++k) {
      double value = 0.0;
      if (parse_number(fields[k], value)) {
        any_number = true;
        row.push_back(value);
      } else if (bad_column == 0) {
        bad_field = fields[k];
        bad_column = static_cast<int64_t>(k) + 1;
      }
    }
    const bool decimal_commas = std::any_of(fields.begin(), fields.end(), has_decimal_comma);
    if (first_content_line && !any_number && !decimal_commas) {  // a header line
      first_content_line = false;
      continue;
    }
    first_content_line = false;
    SINKHORN_CHECK(!has_decimal_comma(bad_field),
                   path << ": line " << line_number << ", column " << bad_column << ": '" << visible_bytes(bad_field)
                        << "' has a decimal comma; write numbers with a decimal point (1.5)");
    SINKHORN_CHECK(bad_column == 0, path << ": line " << line_number << ", column " << bad_column << ": '"
                                         << visible_bytes(bad_field) << "' is not a number");
    if (columns < 0) columns = static_cast<int64_t>(row.size());
    SINKHORN_CHECK(static_cast<int64_t>(row.size()) == columns,
                   path << ": line " << line_number << " has " << row.size() << " columns, expected "
                        << columns);
    array.values.insert(array.values.end(), row.begin(), row.end());
    ++rows;
  }
  SINKHORN_CHECK(rows > 0, path << ": no data rows");
  array.shape = {rows, columns};
  return array;
}

void write_npy(const std::string& path, const Array& array) {
  SINKHORN_CHECK(array.dtype == "float32" || array.dtype == "float64",
                 path << ": can only write float32 or float64, not " << array.dtype);
  NpyWriter writer(path, array.dtype, array.shape);
  writer.append(array.values.data(), array.values.size());
  writer.finish();
}

}  // namespace sinkhorn::io
