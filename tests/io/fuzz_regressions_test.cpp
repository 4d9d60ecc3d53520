// The inputs `make fuzz` found crashing a reader (fuzz/regressions/<reader>/), replayed on every
// test run: each is hostile, so the reader must refuse it with sinkhorn::Error — not crash, not
// accept it, not throw anything else.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>

#include "gen/data/image_datasets.h"
#include "gen/saved_generator.h"
#include "gen/train_config.h"
#include "io/array_io.h"
#include "io/file_bytes.h"
#include "sinkhorn/error.h"

namespace sinkhorn {
namespace {

// The same entry points the fuzz targets call (fuzz/*_fuzzer.cpp), by reader.
const std::map<std::string, std::function<void(const std::string&)>>& readers() {
  static const std::map<std::string, std::function<void(const std::string&)>> table{
      {"npy", [](const std::string& path) { io::read_npy(path); }},
      {"csv", [](const std::string& path) { io::read_csv(path); }},
      {"idx", [](const std::string& path) { gen::read_idx(path); }},
      {"cifar", [](const std::string& path) { gen::load_cifar10(path); }},
      {"checkpoint", [](const std::string& path) { gen::SavedGenerator::load(path); }},
      {"config",
       [](const std::string& path) { gen::validate(gen::train_config_from_json(io::read_regular_file(path))); }},
  };
  return table;
}

TEST(FuzzRegressions, EveryFoundInputIsRefusedWithAnError) {
  const std::filesystem::path root = SINKHORN_FUZZ_REGRESSIONS_DIR;
  ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
  int replayed = 0;
  for (const auto& folder : std::filesystem::directory_iterator(root)) {
    const std::string reader = folder.path().filename().string();
    ASSERT_TRUE(readers().count(reader)) << "no reader for fuzz/regressions/" << reader;
    for (const auto& input : std::filesystem::directory_iterator(folder.path())) {
      SCOPED_TRACE(input.path().string());
      EXPECT_THROW(readers().at(reader)(input.path().string()), Error);
      ++replayed;
    }
  }
  EXPECT_GT(replayed, 0);
}

}  // namespace
}  // namespace sinkhorn
