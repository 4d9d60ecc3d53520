// The .npy and .csv readers against hand-made files (bytes written here, as NumPy would), and
// their errors on corrupted ones.
#include "io/array_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include "sinkhorn/error.h"
#include "test_support.h"

namespace sinkhorn::io {
namespace {

class ArrayIo : public ::testing::Test {
 protected:
  void SetUp() override {
    directory = std::filesystem::temp_directory_path() /
                ("sinkhorn_io_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(directory);
  }
  void TearDown() override { testing::remove_tree(directory.string()); }

  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = (directory / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // A version-1 .npy file: magic, version, little-endian header length, header, data.
  static std::string npy_bytes(const std::string& header_dict, const std::string& data, char major = 1) {
    std::string header = header_dict;
    const size_t prefix = major == 1 ? 10 : 12;
    while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string bytes = std::string("\x93NUMPY", 6) + std::string(1, major) + std::string(1, '\0');
    if (major == 1) {
      bytes += static_cast<char>(header.size() & 0xff);
      bytes += static_cast<char>(header.size() >> 8);
    } else {
      for (int k = 0; k < 4; ++k) bytes += static_cast<char>((header.size() >> (8 * k)) & 0xff);
    }
    return bytes + header + data;
  }

  template <typename T>
  static std::string raw(std::initializer_list<T> values, bool big_endian = false) {
    std::string bytes;
    for (const T value : values) {
      char buffer[sizeof(T)];
      std::memcpy(buffer, &value, sizeof(T));
      if (big_endian) std::reverse(buffer, buffer + sizeof(T));
      bytes.append(buffer, sizeof(T));
    }
    return bytes;
  }

  static void expect_error(const std::function<void()>& call, const std::string& fragment) {
    try {
      call();
      ADD_FAILURE() << "expected an error mentioning '" << fragment << "'";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    }
  }

  std::filesystem::path directory;
};

TEST_F(ArrayIo, ReadsHandMadeNpyFiles) {
  const std::string f8 = write("a.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
                                                  raw<double>({1, 2, 3, 4, 5, 6.5})));
  const Array a = read_npy(f8);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.dtype, "float64");
  EXPECT_EQ(a.values, (std::vector<double>{1, 2, 3, 4, 5, 6.5}));

  const std::string f4 = write("b.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                                                  raw<float>({0.5f, -1.0f, 2.0f})));
  const Array b = read_array(f4);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(b.dtype, "float32");
  EXPECT_EQ(b.values, (std::vector<double>{0.5, -1.0, 2.0}));

  const std::string big = write("c.npy", npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
                                                   raw<double>({3.25, -7.0}, /*big_endian=*/true)));
  EXPECT_EQ(read_npy(big).values, (std::vector<double>{3.25, -7.0}));

  const std::string v2 = write("d.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
                                                  raw<double>({42.0}), /*major=*/2));
  EXPECT_EQ(read_npy(v2).values, (std::vector<double>{42.0}));
}

TEST_F(ArrayIo, WriteThenReadRoundTrips) {
  for (const std::string dtype : {"float32", "float64"}) {
    Array array;
    array.shape = {3, 2};
    array.values = {0.25, -1.5, 3.0, 4.75, 1e-3, -2.0};
    array.dtype = dtype;
    const std::string path = (directory / ("round_" + dtype + ".npy")).string();
    write_npy(path, array);
    const Array back = read_npy(path);
    EXPECT_EQ(back.shape, array.shape);
    EXPECT_EQ(back.dtype, dtype);
    for (size_t k = 0; k < array.values.size(); ++k) {
      EXPECT_NEAR(back.values[k], array.values[k], dtype == "float32" ? 1e-7 : 0.0);
    }
  }
}

TEST_F(ArrayIo, RejectsCorruptNpyFiles) {
  expect_error([&] { read_npy(write("magic.npy", "NOT A NUMPY FILE AT ALL")); }, "bad magic");
  const std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  expect_error([&] { read_npy(write("short.npy", npy_bytes(header, raw<double>({1, 2, 3})))); },
               "truncated or corrupt");
  expect_error([&] {
    read_npy(write("fortran.npy", npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }",
                                            raw<double>({1, 2}))));
  }, "Fortran-order");
  expect_error([&] {
    read_npy(write("int.npy", npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                                        raw<int64_t>({1, 2}))));
  }, "unsupported dtype '<i8'");
  expect_error([&] { read_npy((directory / "missing.npy").string()); }, "cannot open '");
  expect_error([&] { read_array(write("points.bin", "1,2")); }, "unknown file type");
}

TEST_F(ArrayIo, ReadsCsvWithHeaderCommentsAndSeparators) {
  const Array a = read_csv(write("a.csv", "x,y\n# a comment\n1.5, 2\n\n-3,4e-1\n"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.values, (std::vector<double>{1.5, 2, -3, 0.4}));
  const Array b = read_csv(write("b.csv", "1 2 3\n4\t5 6\n"));
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
  const Array c = read_csv(write("c.csv", "1;2\r\n3;4\r\n"));
  EXPECT_EQ(c.values, (std::vector<double>{1, 2, 3, 4}));
}

TEST_F(ArrayIo, RejectsMalformedCsv) {
  expect_error([&] { read_csv(write("ragged.csv", "1,2\n3,4,5\n")); }, "line 2 has 3 columns, expected 2");
  expect_error([&] { read_csv(write("text.csv", "1,2\n3,abc\n")); }, "line 2, column 2: 'abc' is not a number");
  expect_error([&] { read_csv(write("empty.csv", "# nothing\n\n")); }, "no data rows");
}

// A header may claim any shape: its product is checked, in overflow-safe arithmetic, against the
// bytes actually there before anything is allocated.
TEST_F(ArrayIo, RefusesAShapeWhoseProductOverflows) {
  const std::string data(1200, '\0');
  expect_error([&] { read_npy(write("overflow.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, "
                                                              "'shape': (2305843009213694002, 3), }", data))); },
               "holds more values than any file can");
  expect_error([&] { read_npy(write("huge.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, "
                                                          "'shape': (99999999999999999999, 3), }", data))); },
               "bad dimension '99999999999999999999'");
  expect_error([&] { read_npy(write("claims.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                            "'shape': (1000000, 3), }", data))); },
               "does not match shape");
  expect_error([&] { read_npy(write("cut.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape':", ""))); },
               "malformed .npy header");
}

// Reads that never end are refused before they start: a link to /dev/zero, a FIFO, a folder.
TEST_F(ArrayIo, RefusesFilesThatAreNotRegular) {
  const std::string zero = (directory / "zero.npy").string();
  std::filesystem::create_symlink("/dev/zero", zero);
  expect_error([&] { read_npy(zero); }, "is not a regular file");
  const std::string fifo = (directory / "fifo.csv").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { read_csv(fifo); }, "is not a regular file");
  std::filesystem::create_directories(directory / "folder.csv");
  expect_error([&] { read_csv((directory / "folder.csv").string()); }, "is a folder");
}

TEST_F(ArrayIo, CsvByteOrderMarksAndDecimalCommas) {
  // A UTF-8 byte-order mark (spreadsheets write one) is skipped: the first number reads right.
  const Array bom = read_csv(write("bom.csv", "\xEF\xBB\xBF" "1.5,2\n3,4\n"));
  EXPECT_EQ(bom.values, (std::vector<double>{1.5, 2, 3, 4}));
  expect_error([&] { read_csv(write("utf16.csv", std::string("\xFF\xFE" "1\0,\0" "2\0", 8))); }, "UTF-16");
  // Semicolon-separated numbers with decimal commas: named, not read as extra columns.
  expect_error([&] { read_csv(write("comma.csv", "1,5;2,25\n3,0;4,5\n")); },
               "line 1, column 1: '1,5' has a decimal comma");
  const Array semicolons = read_csv(write("semicolons.csv", "1.5; 2\n3;4\n"));
  EXPECT_EQ(semicolons.values, (std::vector<double>{1.5, 2, 3, 4}));
  // An invisible character is shown as its bytes.
  expect_error([&] { read_csv(write("nbsp.csv", "1,2\n3,\xC2\xA0" "4\n")); }, "'\\xC2\\xA04' is not a number");
}

}  // namespace
}  // namespace sinkhorn::io
