// `sinkhorn experiment` at tiny sizes (CI's smoke run of the paper's figures), checking what the
// figures are meant to show: the two limits of the interpolation (Genevay et al. 2018, theorem 1).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli.h"
#include "gen/gen_test_support.h"

namespace sinkhorn::cli {
namespace {

namespace fs = std::filesystem;

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(file, line)) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, ',')) fields.push_back(field);
    rows.push_back(fields);
  }
  return rows;
}

class ExperimentCommand : public ::testing::Test {
 protected:
  sinkhorn::testing::ScratchFolder scratch;
  fs::path folder{scratch.path()};
  std::ostringstream out, err;
};

TEST_F(ExperimentCommand, InterpolationReachesExactOtAndMmdAtItsEnds) {
  ASSERT_EQ(run({"experiment", "interpolation", "--n", "30", "--points", "3", "--threads", "1", "--out", folder.string()},
                out, err),
            0)
      << err.str();
  for (const int p : {1, 2}) {
    const auto rows = read_csv((folder / ("interpolation_p" + std::to_string(p) + ".csv")).string());
    ASSERT_EQ(rows.size(), 4u) << "header + 3 eps values";
    ASSERT_EQ(rows[0][3], "S_eps");
    const auto value = [&](size_t row, size_t column) { return std::stod(rows[row][column]); };
    const double ot = value(1, 7), mmd = value(1, 8);
    ASSERT_GT(ot, 0);
    ASSERT_GT(mmd, 0);
    // eps = 1e-3 diameter^p: S_eps near OT, E_eps near 2 OT.
    EXPECT_NEAR(value(1, 3), ot, 0.05 * ot) << "p = " << p;
    EXPECT_NEAR(value(1, 4), 2 * ot, 0.05 * ot) << "p = " << p;
    // eps = 1e3 diameter^p: S_eps near MMD / 2, E_eps near MMD (to O(1/eps)).
    EXPECT_NEAR(value(3, 3), mmd / 2, 1e-3 * mmd) << "p = " << p;
    EXPECT_NEAR(value(3, 4), mmd, 1e-3 * mmd) << "p = " << p;
    // In between, S_eps lies between its limits.
    EXPECT_LT(value(2, 3), ot);
    EXPECT_GT(value(2, 3), mmd / 2);
  }
}

TEST_F(ExperimentCommand, SampleComplexityWritesEveryDimensionLossAndSize) {
  const fs::path tables = folder / "not" / "yet";  // created by the command, like train --out
  ASSERT_EQ(run({"experiment", "sample_complexity", "--n", "16", "--repeats", "2", "--threads", "1", "--out",
                 tables.string()},
                out, err),
            0)
      << err.str();
  const auto rows = read_csv((tables / "sample_complexity.csv").string());
  // 3 dimensions x (OT, 4 eps, MMD) x n in {8, 16}.
  ASSERT_EQ(rows.size(), 1u + 3 * 6 * 2);
  for (size_t k = 1; k < rows.size(); ++k) {
    EXPECT_GT(std::stod(rows[k][4]), 0.0) << "row " << k;  // two independent samples differ
  }
  EXPECT_EQ(run({"experiment", "nothing", "--out", folder.string()}, out, err), 2);
}

}  // namespace
}  // namespace sinkhorn::cli
