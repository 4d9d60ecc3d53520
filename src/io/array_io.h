// Reading and writing dense arrays in the two formats researchers hand around: NumPy's .npy
// (version 1-3, little- or big-endian float32/float64, C order) and plain .csv (one row per point).
// No LibTorch here: the command line turns an Array into a tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::io {

/// A dense row-major array of doubles, with the element type it was stored as.
struct Array {
  std::vector<int64_t> shape;
  std::vector<double> values;
  /// "float32" or "float64": the stored type (csv files read as float64).
  std::string dtype = "float64";
};

/// Reads a .npy or .csv file, chosen by extension. Throws sinkhorn::Error naming the file and
/// the problem (missing, unreadable, truncated, wrong magic, unsupported dtype or order, ragged
/// rows, a field that is not a number).
Array read_array(const std::string& path);
Array read_npy(const std::string& path);
/// Rows of numbers separated by commas, semicolons or white space; blank lines and lines starting
/// with '#' are skipped; a first line with no number at all is taken as a header.
Array read_csv(const std::string& path);

/// Writes a C-order .npy file (version 1.0) of float32 or float64 ("float32" / "float64").
/// Throws sinkhorn::Error if the file cannot be written.
void write_npy(const std::string& path, const Array& array);

}  // namespace sinkhorn::io
