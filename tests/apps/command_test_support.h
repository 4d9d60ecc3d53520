// The fixture of the in-process command tests (`sinkhorn train`, `sample`, `--device`): a scratch
// folder, the command's output and error streams, a quick toy training run, and the check of a
// refused command's one-line error.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "gen/gen_test_support.h"

namespace sinkhorn::cli {

class CommandTest : public ::testing::Test {
 protected:
  int run_command(const std::vector<std::string>& args) {
    out.str("");
    err.str("");
    return run(args, out, err);
  }
  std::string path(const std::string& name) const { return (directory / name).string(); }

  // A quick toy run: small network, small batches, a large blur.
  std::vector<std::string> quick_train(const std::string& folder, int steps) const {
    return {"train", "--steps", std::to_string(steps), "--out", path(folder), "--batch-size", "32", "--hidden", "16",
            "--eval-samples", "100", "--heldout", "100", "--blur", "0.3", "--eval-every", "2", "--threads", "1"};
  }

  // The command's error: exit status 2 and one line, "sinkhorn <command>: error: ..." holding
  // `fragment`; after the progress lines of the steps it ran when `ran_steps`, else alone.
  void expect_error(const std::vector<std::string>& args, const std::string& fragment, bool ran_steps = false) {
    EXPECT_EQ(run_command(args), 2) << err.str();
    const std::string text = err.str();
    const size_t last_line = text.rfind('\n', text.size() >= 2 ? text.size() - 2 : 0);
    const std::string line = last_line == std::string::npos ? text : text.substr(last_line + 1);
    if (!ran_steps) {
      EXPECT_EQ(line, text);
    }
    EXPECT_EQ(line.rfind("sinkhorn " + args[0] + ": error: ", 0), 0u) << text;
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << text;
    EXPECT_NE(line.find(fragment), std::string::npos) << text;
  }

  sinkhorn::testing::ScratchFolder scratch;
  std::filesystem::path directory{scratch.path()};
  std::ostringstream out, err;
};

}  // namespace sinkhorn::cli
