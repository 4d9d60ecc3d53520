// The `sinkhorn divergence` command run in-process: values agree with the library, --json carries
// the diagnostics, --grad-x writes the gradient, and bad input exits with 2 and a clear message.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/option_table.h"
#include "cli.h"
#include "loss_options.h"
#include "train_options.h"
#include "gen/train_options.h"
#include "flag_names.h"
#include "test_support.h"
#include "io/array_io.h"
#include "reduce/cost_matrix.h"
#include "sinkhorn/divergence.h"
#include "platform/devices.h"

namespace sinkhorn::cli {
namespace {

class DivergenceCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    directory = std::filesystem::temp_directory_path() /
                ("sinkhorn_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(directory);
    at::manual_seed(41);
    x = at::randn({40, 3}, at::kDouble);
    y = at::randn({30, 3}, at::kDouble) + 0.5;
    x_path = save("x.npy", x);
    y_path = save("y.npy", y);
  }
  void TearDown() override { testing::remove_tree(directory.string()); }

  std::string save(const std::string& name, const at::Tensor& t) const {
    io::Array array;
    array.shape.assign(t.sizes().begin(), t.sizes().end());
    const at::Tensor c = t.contiguous();
    array.values.assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    const std::string path = (directory / name).string();
    io::write_npy(path, array);
    return path;
  }

  int run_command(std::vector<std::string> args) {
    out.str("");
    err.str("");
    args.insert(args.begin(), "divergence");
    return run(args, out, err);
  }

  std::filesystem::path directory;
  at::Tensor x, y;
  std::string x_path, y_path;
  std::ostringstream out, err;
};

TEST_F(DivergenceCommand, PrintsTheLibraryValue) {
  ASSERT_EQ(run_command({x_path, y_path, "--blur", "0.1", "--p", "1", "--threads", "2"}), 0) << err.str();
  SinkhornOptions options;
  options.blur = 0.1;
  options.p = 1;
  EXPECT_NEAR(std::stod(out.str()), divergence(x, y, options).item<double>(), 1e-10);
}

TEST_F(DivergenceCommand, DeviceCudaAgreesWithCpuOrIsRefusedWithAReason) {
  ASSERT_EQ(run_command({x_path, y_path, "--device", "cpu", "--blur", "0.1"}), 0) << err.str();
  const double on_cpu = std::stod(out.str());
  const int status = run_command({x_path, y_path, "--device", "cuda", "--blur", "0.1"});
  if (sinkhorn::platform::gpu_available()) {
    ASSERT_EQ(status, 0) << err.str();
    EXPECT_NEAR(std::stod(out.str()), on_cpu, 1e-9 * std::abs(on_cpu));  // float64 clouds on both devices
  } else {
    EXPECT_EQ(status, 2);
    EXPECT_NE(err.str().find("--device cuda: this build's LibTorch has no CUDA support"), std::string::npos) << err.str();
  }
  EXPECT_EQ(run_command({x_path, y_path, "--device", "tpu"}), 2);
  EXPECT_NE(err.str().find("--device: expected cpu, cuda or cuda:K, got 'tpu'"), std::string::npos) << err.str();
  // One grammar with the training configuration's (platform/devices.h): "cuda:1x" is neither.
  EXPECT_EQ(run_command({x_path, y_path, "--device", "cuda:1x"}), 2);
}

TEST_F(DivergenceCommand, JsonCarriesDiagnostics) {
  ASSERT_EQ(run_command({x_path, y_path, "--json", "--loss", "ot_eps", "--reach", "1"}), 0) << err.str();
  const std::string json = out.str();
  for (const char* key : {"\"value\": ", "\"iterations\": ", "\"marginal_error\": ", "\"seconds\": ",
                          "\"loss\": \"ot_eps\"", "\"converged\": true", "\"device\": \"cpu\"", "\"n\": 40", "\"m\": 30", "\"d\": 3"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing from " << json;
  }
}

TEST_F(DivergenceCommand, WritesTheGradient) {
  const std::string gradient_path = (directory / "grad.npy").string();
  ASSERT_EQ(run_command({x_path, y_path, "--grad-x", gradient_path}), 0) << err.str();
  const io::Array gradient = io::read_npy(gradient_path);
  ASSERT_EQ(gradient.shape, (std::vector<int64_t>{40, 3}));
  const at::Tensor points = x.clone().requires_grad_(true);
  const at::Tensor expected = torch::autograd::grad({divergence(points, y)}, {points})[0];
  const at::Tensor actual = at::tensor(gradient.values, at::kDouble).reshape({40, 3});
  EXPECT_TRUE(at::allclose(actual, expected, 1e-8, 1e-12));
}

TEST_F(DivergenceCommand, ReadsCsvAndWeights) {
  const std::string csv = (directory / "x.csv").string();
  std::ofstream(csv) << "0,0\n1,0\n0,1\n";
  const std::string weights = (directory / "w.csv").string();
  std::ofstream(weights) << "0.5\n0.25\n0.25\n";
  ASSERT_EQ(run_command({csv, csv, "--wx", weights, "--wy", weights}), 0) << err.str();
  EXPECT_NEAR(std::stod(out.str()), 0.0, 1e-9);
}

TEST_F(DivergenceCommand, BadInputExitsWithTwoAndNamesTheProblem) {
  const auto expect_failure = [&](const std::vector<std::string>& args, const std::string& fragment) {
    EXPECT_EQ(run_command(args), 2) << "args: " << ::testing::PrintToString(args);
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
  };
  expect_failure({x_path, y_path, "--blur", "-1"}, "--blur must be a finite number > 0");
  expect_failure({x_path, y_path, "--blur", "abc"}, "--blur: expected a number, got 'abc'");
  expect_failure({x_path, y_path, "--scaling", "1.5"}, "--scaling must be in the open interval");
  // Two-word options are named by their flag, not the library's field name.
  expect_failure({x_path, y_path, "--max-iterations", "-1"}, "--max-iterations must be between 0 and 10000000, got -1");
  expect_failure({x_path, y_path, "--cluster-scale", "-1"}, "--cluster-scale must be a finite number > 0");
  expect_failure({x_path, y_path, "--backend", "multiscale", "--cluster-scale", "1e-9"},
                 "--cluster-scale makes a grid of");
  expect_failure({x_path, y_path, "--loss", "sliced"}, "--loss must be one of divergence, primal");
  expect_failure({x_path, (directory / "none.npy").string()}, "cannot open '");
  // In one process an empty file is the library's empty cloud, named with its file.
  const std::string empty = save("empty.npy", at::zeros({0, 3}, at::kDouble));
  expect_failure({empty, y_path}, "X (" + empty + ") is an empty cloud");
  expect_failure({x_path}, "expected 2 positional argument(s)");
  expect_failure({x_path, y_path, "--frobnicate"}, "unknown option --frobnicate");
  const std::string flat = save("flat.npy", at::randn({30, 2}, at::kDouble));
  expect_failure({x_path, flat}, "same dimension D");
  const std::string nan_csv = (directory / "nan.csv").string();
  std::ofstream(nan_csv) << "0,0,0\nnan,1,2\n";
  expect_failure({x_path, nan_csv}, "Y (" + nan_csv + ") contains NaN");
  const std::string short_weights = (directory / "short_w.csv").string();
  std::ofstream(short_weights) << "1\n";
  expect_failure({x_path, y_path, "--wx", short_weights}, "--wx (" + short_weights + ") must have shape [40]");
  at::Tensor weights = at::full({40}, 1.0 / 40, at::kDouble);
  weights[3] = -0.1;
  const std::string negative = save("negative.npy", weights);
  expect_failure({x_path, y_path, "--wx", negative}, "--wx (" + negative + ") has negative weights");
}

// The command lines a new user or an attacker tried (the foundations issue): each ends at once with
// exit status 2 and one line naming the argument and the problem.
TEST_F(DivergenceCommand, HostileInputEndsWithOneLineNamingTheArgument) {
  const auto expect_refusal = [&](const std::vector<std::string>& args, const std::string& fragment) {
    EXPECT_EQ(run_command(args), 2) << "args: " << ::testing::PrintToString(args) << "\n" << err.str();
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
    const std::string message = err.str();
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  };
  // Integers are range-checked before they are narrowed: 2^32 + 2 must not run as p = 2.
  expect_refusal({x_path, y_path, "--p", "4294967298"}, "--p must be between 1 and 2, got 4294967298");
  expect_refusal({x_path, y_path, "--iterations", "4294967297"}, "--iterations must be between 1 and");
  expect_refusal({x_path, y_path, "--max-iterations", "4294967296"}, "--max-iterations must be between 0 and");
  expect_refusal({x_path, y_path, "--threads", "100000"}, "--threads must be between 0 and 1024");
  expect_refusal({x_path, y_path, "--threads", "99999999999999999999"}, "--threads must be between 0 and 1024");
  // Scales whose ratios to the clouds' cost leave the range where the arithmetic holds, and a
  // schedule of 3.5e9 steps.
  expect_refusal({x_path, y_path, "--blur", "1e-300"}, "--blur gives eps = blur^p 1e-300^2 = 0,");
  expect_refusal({x_path, y_path, "--reach", "1e300"}, "--reach is 1e+300 for clouds");
  expect_refusal({x_path, y_path, "--diameter", "0"}, "--diameter must be a finite number > 0");
  expect_refusal({x_path, y_path, "--scaling", "0.999999999"}, "--scaling 0.999999999 anneals");
  // Coordinates near 1e154: |x - y|^2 overflows a double.
  const std::string far = save("far.npy", at::tensor({1e154, 0.0, 0.0, -1e154, 0.0, 1.0}, at::kDouble).reshape({2, 3}));
  expect_refusal({far, y_path}, "X (" + far + ") spans 2e+154");
  expect_refusal({x_path, far}, "Y (" + far + ") spans 2e+154");
  // A file that never ends.
  const std::string zero = (directory / "zero.npy").string();
  std::filesystem::create_symlink("/dev/zero", zero);
  expect_refusal({zero, y_path}, "zero.npy' is not a regular file");
  // The dense backend at 100,000 x 100,000 (here: twice what this machine's memory allows): refused
  // from an estimate, not an 80 GB allocation.
  const double usable = static_cast<double>(reduce::usable_memory_bytes(at::Device(at::kCPU)));
  ASSERT_GT(usable, 0);
  const int64_t points = std::max<int64_t>(100000, static_cast<int64_t>(2 * std::sqrt(usable / (3 * 8))));
  const std::string big = save("big.npy", at::rand({points, 3}, at::kDouble));
  expect_refusal({big, big, "--backend", "tensorized"}, "--backend tensorized needs about");
  expect_refusal({big, big, "--loss", "energy"}, "--loss energy (a kernel MMD, computed with dense matrices) needs about");
}

TEST_F(DivergenceCommand, OutputsThatAreInputsOrNotRegularFilesAreRefusedBeforeAnything) {
  const std::string weights_path = save("w.npy", testing::random_weights(40));
  const std::filesystem::path link = directory / "x_link.npy";
  std::filesystem::create_symlink(x_path, link);
  const std::string same_x_spelled_otherwise = (directory / "." / "x.npy").string();
  const auto expect_refusal = [&](std::vector<std::string> args, const std::string& fragment) {
    args.insert(args.begin(), {x_path, y_path});
    EXPECT_EQ(run_command(args), 2) << fragment;
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
  };
  expect_refusal({"--grad-x", x_path}, "--grad-x (" + x_path + ") is the input X");
  expect_refusal({"--grad-x", same_x_spelled_otherwise}, "is the input X");
  expect_refusal({"--grad-y", y_path}, "is the input Y");
  expect_refusal({"--wx", weights_path, "--grad-y", weights_path}, "is the input --wx");
  const std::string new_file = (directory / "g.npy").string();
  expect_refusal({"--grad-x", new_file, "--grad-y", (directory / "." / "g.npy").string()},
                 "--grad-x and --grad-y name the same file");
  // A link is refused (not written through: the rename would replace the link), and so are a
  // folder and a device, where the rename would replace the node (as root, /dev/full itself).
  expect_refusal({"--grad-x", link.string()}, "--grad-x cannot write '" + link.string() + "': it exists and is a symbolic link");
  expect_refusal({"--grad-x", directory.string()}, "is a folder");
  if (std::filesystem::exists("/dev/full")) expect_refusal({"--grad-x", "/dev/full"}, "is a device");
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/full") || !std::filesystem::exists("/dev/full"));
  // The inputs are intact and nothing was written.
  EXPECT_TRUE(at::equal(at::tensor(io::read_npy(x_path).values, at::kDouble).reshape(x.sizes()), x));
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_FALSE(std::filesystem::exists(new_file));
}

TEST(LossOptions, EveryOptionOfTheTableIsAFlagThatSetsIt) {
  // Every option at its sample value through its flag: one the parser does not declare or read
  // fails here (the table is the only list, src/api/option_table.h).
  ArgumentParser parser("t", "t");
  add_loss_options(parser);
  std::vector<std::string> arguments;
  for (const api::OptionSpec& spec : api::option_table()) {
    // A flag whose sample is off (its default being on) is given as --no-<flag>.
    const bool off = spec.kind == api::OptionKind::flag && api::to_text(spec.sample) == "false";
    arguments.push_back(std::string(off ? "--no-" : "--") + spec.flag);
    if (spec.kind != api::OptionKind::flag) arguments.push_back(api::to_text(spec.sample));
  }
  const SinkhornOptions options = loss_options_from(parser.parse(arguments));
  for (const api::OptionSpec& spec : api::option_table()) {
    EXPECT_EQ(api::to_text(spec.get(options)), api::to_text(spec.sample)) << spec.flag;
  }
}

TEST(TrainOptions, EverySettingOfTheTableIsAFlagThatSetsIt) {
  // Every training setting with a flag at its sample value through that flag, on top of the
  // recipe: one the command does not declare or read fails here (src/gen/train_options.h).
  ArgumentParser parser("t", "t");
  add_train_options(parser);
  add_loss_options(parser);
  std::vector<std::string> arguments;
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (*spec.flag == '\0') continue;
    arguments.insert(arguments.end(), {std::string("--") + spec.flag, gen::to_text(spec.sample)});
  }
  const gen::TrainConfig config = train_config_from(parser.parse(arguments));
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (*spec.flag == '\0') continue;
    EXPECT_EQ(gen::to_text(spec.get(config)), gen::to_text(spec.sample)) << spec.flag;
    // The resume rule is the table's: --steps, --lr and --device only.
    EXPECT_EQ(may_change_on_resume(spec.flag), spec.may_change_on_resume) << spec.flag;
    // An error naming the setting speaks of its flag.
    EXPECT_EQ(flag_for(spec.key), std::string("--") + spec.flag) << spec.key;
  }
  EXPECT_FALSE(may_change_on_resume("blur"));
  EXPECT_TRUE(may_change_on_resume("threads"));
}

TEST_F(DivergenceCommand, OptionsTheLossIgnoresAndBadTimeoutsAreRefused) {
  const auto expect_refusal = [&](std::vector<std::string> args, const std::string& fragment) {
    args.insert(args.begin(), {x_path, y_path});
    EXPECT_EQ(run_command(args), 2) << fragment;
    EXPECT_NE(err.str().find(fragment), std::string::npos) << err.str();
  };
  expect_refusal({"--loss", "energy", "--reach", "1"}, "--reach does not apply to the kernel loss energy");
  expect_refusal({"--loss", "ot", "--gradient", "unrolled"}, "--gradient does not apply to the exact OT loss");
  expect_refusal({"--loss", "gaussian", "--coarse-correction"}, "--coarse-correction does not apply");
  expect_refusal({"--loss", "gaussian", "--no-coarse-correction"}, "--coarse-correction does not apply");
  expect_refusal({"--coarse-correction", "--no-coarse-correction"}, "exclude each other");
  expect_refusal({"--timeout", "abc"}, "--timeout");
  EXPECT_EQ(run_command({x_path, y_path, "--loss", "energy", "--blur", "0.5", "--backend", "tensorized"}), 0) << err.str();
}

TEST(CommandLine, HelpAndUnknownCommand) {
  std::ostringstream out, err;
  EXPECT_EQ(run({"divergence", "--help"}, out, err), 0);
  for (const char* option : {"--loss", "--p", "--blur", "--reach", "--scaling", "--iterations", "--tolerance",
                             "--backend", "--dtype", "--json", "--grad-x", "--wx", "--wy"}) {
    EXPECT_NE(out.str().find(option), std::string::npos) << option;
  }
  EXPECT_EQ(run({"demo", "--n", "-5"}, out, err), 2);
  EXPECT_NE(err.str().find("--n must be between 2 and 1000000, got -5"), std::string::npos) << err.str();
  // The smallest demo prints the rows it has (it indexed a third row of two).
  EXPECT_EQ(run({"demo", "--n", "2", "--threads", "1"}, out, err), 0) << err.str();
  EXPECT_EQ(run({"demo", "--n", "4294967297"}, out, err), 2);
  EXPECT_NE(err.str().find("--n must be between 2 and 1000000"), std::string::npos) << err.str();
  EXPECT_EQ(run({"frobnicate"}, out, err), 2);
  EXPECT_NE(err.str().find("unknown command 'frobnicate'"), std::string::npos);
  EXPECT_EQ(run({}, out, err), 2);
}

}  // namespace
}  // namespace sinkhorn::cli
