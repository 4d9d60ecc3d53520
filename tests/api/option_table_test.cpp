// The option table (src/api/option_table.h): each entry reads back what it writes, its sample is
// a valid value away from the default, the loss rules name the option, and the fingerprint
// changes with every option. The front ends' round trips are in tests/apps/cli_test.cpp
// (flags), tests/gen/trainer_test.cpp (config.json) and python/tests/test_options.py (keywords).
#include <gtest/gtest.h>

#include <set>

#include "api/option_table.h"
#include "sinkhorn/error.h"

namespace sinkhorn::api {
namespace {

SinkhornOptions all_samples() {
  SinkhornOptions options;
  for (const OptionSpec& spec : option_table()) spec.set(options, spec.sample);
  return options;
}

TEST(OptionTable, EveryEntryReadsBackItsSampleAwayFromTheDefault) {
  const SinkhornOptions defaults;
  std::set<std::string> names, flags;
  for (const OptionSpec& spec : option_table()) {
    SCOPED_TRACE(spec.name);
    EXPECT_TRUE(names.insert(spec.name).second);
    EXPECT_TRUE(flags.insert(spec.flag).second);
    EXPECT_NE(to_text(spec.get(defaults)), to_text(spec.sample));
    SinkhornOptions options;
    spec.set(options, spec.sample);
    EXPECT_EQ(to_text(spec.get(options)), to_text(spec.sample));
    EXPECT_EQ(find_option(spec.name), &spec);
    EXPECT_NE(std::string(spec.doc), "");
  }
  EXPECT_EQ(find_option("no_such_option"), nullptr);
  // Together the samples are a valid solve (the front ends' round trips set them all at once).
  EXPECT_NO_THROW(validate(all_samples()));
}

TEST(OptionTable, WrongKindsAndNamesNameTheOption) {
  SinkhornOptions options;
  try {
    find_option("blur")->set(options, std::string("wide"));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "blur");
  }
  try {
    find_option("p")->set(options, 3LL);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.argument(), "p");
  }
  EXPECT_THROW(find_option("backend")->set(options, std::string("keops")), Error);
  find_option("reach")->set(options, 0.5);
  find_option("reach")->set(options, std::monostate{});
  EXPECT_FALSE(options.reach.has_value());
}

TEST(OptionTable, OptionsALossIgnoresAreRefusedNamingThem) {
  const auto refused = [](Loss loss, const std::string& name) {
    try {
      check_options_apply(loss, {name});
    } catch (const Error& error) {
      EXPECT_EQ(error.argument(), name);
      return true;
    }
    return false;
  };
  // The cases: --loss energy --reach 1, --loss ot --gradient unrolled.
  EXPECT_TRUE(refused(Loss::energy, "reach"));
  EXPECT_TRUE(refused(Loss::ot, "gradient"));
  for (const char* name : {"p", "scaling", "diameter", "cluster_scale", "iterations", "coarse_correction"}) {
    EXPECT_TRUE(refused(Loss::gaussian, name)) << name;
  }
  EXPECT_FALSE(refused(Loss::ot, "p"));
  EXPECT_FALSE(refused(Loss::energy, "blur"));
  EXPECT_FALSE(refused(Loss::energy, "backend"));
  for (const OptionSpec& spec : option_table()) {
    EXPECT_FALSE(refused(Loss::divergence, spec.name)) << spec.name;
    EXPECT_FALSE(refused(Loss::primal, spec.name)) << spec.name;
  }
}

TEST(OptionTable, TheFingerprintChangesWithEveryOption) {
  const std::string reference = options_fingerprint(SinkhornOptions{});
  for (const OptionSpec& spec : option_table()) {
    SinkhornOptions options;
    spec.set(options, spec.sample);
    EXPECT_NE(options_fingerprint(options), reference) << spec.name;
  }
  EXPECT_EQ(options_fingerprint(SinkhornOptions{}), reference);
}

}  // namespace
}  // namespace sinkhorn::api
