#include "cli.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <exception>
#include <new>
#include <string>
#include <thread>

#include "arguments.h"
#include "flag_names.h"
#include "sinkhorn/error.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

constexpr const char* kUsage =
    "usage: sinkhorn <command> [options]\n"
    "\n"
    "Sinkhorn divergences (entropic optimal transport) between point clouds, and generative\n"
    "models trained with them.\n"
    "\n"
    "commands:\n"
    "  divergence X Y   a Sinkhorn loss (or MMD) between two clouds in .npy or .csv files\n"
    "  demo             the losses and their gradients on built-in clouds\n"
    "  train            fit a generative model with a Sinkhorn loss (2-D toys, MNIST, CIFAR-10)\n"
    "  sample           draw samples from a trained generator's checkpoint\n"
    "  experiment NAME  the paper's experiments as tables (interpolation, sample_complexity)\n"
    "\n"
    "`sinkhorn <command> --help` documents each command's options.\n";

// One line of a message: LibTorch's errors may carry a C++ backtrace after the first line.
std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

}  // namespace

void set_threads(long long requested) {
  SINKHORN_CHECK(requested >= 0 && requested <= kMaxThreads,
                 "--threads must be between 0 and " << kMaxThreads << ", got " << requested);
  const unsigned cores = std::thread::hardware_concurrency();
  const int threads = requested > 0 ? static_cast<int>(requested) : static_cast<int>(cores > 0 ? cores : 1);
  at::set_num_threads(threads);
}

std::optional<ParsedArguments> parse_command(const ArgumentParser& parser, const std::vector<std::string>& arguments,
                                             std::ostream& out) {
  ParsedArguments args = parser.parse(arguments);
  if (args.flag("help")) {
    out << parser.help();
    return std::nullopt;
  }
  set_threads(args.integer("threads").value_or(0));
  return args;
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "divergence") return divergence_command(rest, out, err);
    if (command == "demo") return demo_command(rest, out, err);
    if (command == "train") return train_command(rest, out, err);
    if (command == "sample") return sample_command(rest, out, err);
    if (command == "experiment") return experiment_command(rest, out, err);
    err << "sinkhorn: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const Error& error) {
    err << "sinkhorn " << command << ": error: " << message_for(error) << "\n";
    return 2;
  } catch (const PeerError& error) {
    err << "sinkhorn " << command << ": error: " << error.what() << "\n";
    return 3;
  } catch (const InternalError& error) {
    err << "sinkhorn " << command << ": internal error (please report it): " << error.what() << "\n";
    return 1;
  } catch (const c10::OutOfMemoryError& error) {
    err << "sinkhorn " << command << ": error: out of memory: " << first_line(error.what_without_backtrace())
        << " (use smaller inputs; a solve runs in linear memory with --backend online)\n";
    return 1;
  } catch (const std::bad_alloc&) {
    err << "sinkhorn " << command << ": error: out of memory (use smaller inputs; a solve runs in linear memory "
        << "with --backend online)\n";
    return 1;
  } catch (const c10::Error& error) {
    err << "sinkhorn " << command << ": internal error (please report it): "
        << first_line(error.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& error) {
    err << "sinkhorn " << command << ": internal error (please report it): " << first_line(error.what()) << "\n";
    return 1;
  }
}

}  // namespace sinkhorn::cli
