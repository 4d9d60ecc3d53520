// sinkhorn divergence X Y [options]: one loss between two clouds read from files.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <exception>
#include <iomanip>
#include <map>
#include <sstream>

#include "cli.h"
#include "arguments.h"
#include "loss_options.h"
#include "api/sharded_divergence.h"
#include "dist/sharded_inputs.h"
#include "dist/world.h"
#include "flag_names.h"
#include "io/array_io.h"
#include "io/atomic_file.h"
#include "sinkhorn/divergence.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

ArgumentParser divergence_parser() {
  ArgumentParser parser(
      "sinkhorn divergence X Y [options]",
      "Computes a Sinkhorn loss between the point clouds X (N x D) and Y (M x D), read from .npy\n"
      "(float32/float64, 2-D, C order) or .csv files (one point per row), and prints its value.\n"
      "Conventions follow GeomLoss's SamplesLoss(\"sinkhorn\", p, blur, reach, scaling).\n"
      "Under torchrun (WORLD_SIZE > 1) the ranks share the solve: each takes a contiguous block of\n"
      "rows of X and Y; rank 0 alone prints and writes the gradients.");
  parser.positional("X", "first cloud: .npy or .csv, N rows of D coordinates")
      .positional("Y", "second cloud: .npy or .csv, M rows of D coordinates")
      .option("wx", "FILE", "weights of X (N values, nonnegative); default uniform 1/N")
      .option("wy", "FILE", "weights of Y (M values, nonnegative); default uniform 1/M")
      .option("dtype", "TYPE", "float32 or float64 (default: the type stored in X; csv: float64)")
      .integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads)
      .option("device", "NAME", "cpu (default) or cuda[:K]: where the clouds and the solve live")
      .option("grad-x", "FILE.npy", "write the gradient of the loss with respect to X")
      .option("grad-y", "FILE.npy", "write the gradient of the loss with respect to Y")
      .flag("json", "print one JSON object: value, iterations, marginal_error, seconds, ...")
      .option("timeout", "SECONDS", "under torchrun: a rank lost or stalled this long ends the others (default 60)");
  add_loss_options(parser);
  return parser;
}

at::Tensor to_tensor(const io::Array& array, at::ScalarType dtype) {
  return at::tensor(array.values, at::kDouble).reshape(array.shape).to(dtype);
}

at::Tensor points_tensor(const io::Array& array, const std::string& path, const char* name,
                         at::ScalarType dtype) {
  SINKHORN_CHECK(array.shape.size() == 2, name << " (" << path << ") must be a 2-D array (points x "
                                               << "coordinates), got " << array.shape.size() << " dimensions");
  return to_tensor(array, dtype);
}

at::Tensor read_weights(const std::optional<std::string>& path, const char* name, at::ScalarType dtype) {
  if (!path) return {};
  const io::Array array = io::read_array(*path);
  const bool vector_like = array.shape.size() == 1 ||
                           (array.shape.size() == 2 && (array.shape[0] == 1 || array.shape[1] == 1));
  SINKHORN_CHECK(vector_like, name << " (" << *path << ") must hold one weight per point (a vector), got shape "
                                   << at::IntArrayRef(array.shape));
  return to_tensor(array, dtype).reshape({-1});
}

// A 64-bit FNV-1a hash of the values (in hexadecimal; "none" for an undefined tensor), to compare
// what the ranks read without sending it.
std::string content_hash(const at::Tensor& values) {
  if (!values.defined()) return "none";
  const at::Tensor bytes = values.detach().to(at::kCPU).contiguous();
  const auto* data = static_cast<const unsigned char*>(bytes.data_ptr());
  uint64_t hash = 1469598103934665603ULL;
  for (size_t i = 0; i < bytes.nbytes(); ++i) hash = (hash ^ data[i]) * 1099511628211ULL;
  std::ostringstream text;
  text << "content " << std::hex << hash << std::dec << " of shape " << bytes.sizes();
  return text.str();
}

void write_gradient(const std::string& path, const at::Tensor& gradient) {
  const at::Tensor values = gradient.detach().to(at::kCPU, at::kDouble).contiguous();
  io::Array array;
  array.shape.assign(values.sizes().begin(), values.sizes().end());
  array.values.assign(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
  array.dtype = gradient.scalar_type() == at::kDouble ? "float64" : "float32";
  io::write_npy(path, array);
}

// Rows [begin, end) of this rank's block of `rows`: everything in one process.
at::Tensor block_of(const at::Tensor& tensor, const dist::World* world) {
  if (!world || !tensor.defined()) return tensor;
  return dist::own_block(tensor, world->group()).contiguous();
}

// The ranks' blocks of a (rows, ...) tensor, joined (every rank takes part; one process: itself).
at::Tensor gather_rows(const at::Tensor& block, int64_t rows, const dist::World* world) {
  if (!world) return block;
  return world->group().allgather_rows(block, 0, dist::even_blocks(rows, world->size()));
}

at::ScalarType dtype_from(const ParsedArguments& args, const io::Array& x_array) {
  const std::optional<std::string> name = args.value("dtype");
  if (!name) return x_array.dtype == "float32" ? at::kFloat : at::kDouble;
  SINKHORN_CHECK(*name == "float32" || *name == "float64",
                 "--dtype: expected float32 or float64, got '" << *name << "'");
  return *name == "float32" ? at::kFloat : at::kDouble;
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  std::ostringstream out;
  out << std::setprecision(17) << value;
  return out.str();
}

}  // namespace

int divergence_command(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err) {
  const ArgumentParser parser = divergence_parser();
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  const SinkhornOptions options = loss_options_from(args);
  const std::chrono::milliseconds timeout = timeout_from(args);  // checked with or without torchrun
  const std::string& x_path = args.positionals()[0];
  const std::string& y_path = args.positionals()[1];
  // An output may not be an input (the gradient would replace the points it was computed from)
  // nor the other output: the same file by device and inode, through links too.
  const std::pair<std::string, std::optional<std::string>> inputs[] = {
      {"X", x_path}, {"Y", y_path}, {"--wx", args.value("wx")}, {"--wy", args.value("wy")}};
  for (const char* output : {"grad-x", "grad-y"}) {
    const std::optional<std::string> output_path = args.value(output);
    if (!output_path) continue;
    io::check_replaceable(*output_path, output, /*link_allowed=*/false);
    for (const auto& [name, input_path] : inputs) {
      SINKHORN_CHECK(!input_path || !io::same_file(*output_path, *input_path),
                     "--" << output << " (" << *output_path << ") is the input " << name << " (" << *input_path
                          << "): writing the gradient would replace it; give another file");
    }
  }
  if (args.value("grad-x") && args.value("grad-y")) {
    SINKHORN_CHECK(!io::same_file(*args.value("grad-x"), *args.value("grad-y")),
                   "--grad-x and --grad-y name the same file (" << *args.value("grad-x") << "); give two files");
  }
  // Under torchrun: one group for the ranks, each GPU rank on its LOCAL_RANK's device. The group
  // comes first, so that a rank that cannot read its files is named by the others at once.
  const std::optional<dist::LaunchEnvironment> launch = dist::launch_environment();
  at::Device device = device_from(args);
  if (launch && device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, launch->local_rank);
  std::unique_ptr<dist::World> world;
  if (launch) world = std::make_unique<dist::World>(*launch, device, timeout);
  const bool speaks = !world || world->rank() == 0;
  at::Tensor x, y, a, b;
  std::exception_ptr failure;
  std::string refusal;
  try {
    const io::Array x_array = io::read_array(x_path);
    const at::ScalarType dtype = dtype_from(args, x_array);
    x = points_tensor(x_array, x_path, "X", dtype);
    y = points_tensor(io::read_array(y_path), y_path, "Y", dtype);
    a = read_weights(args.value("wx"), "--wx", dtype);
    b = read_weights(args.value("wy"), "--wy", dtype);
    // One process leaves empty clouds to the library, which names the cloud.
    SINKHORN_CHECK(!world || (x.size(0) >= world->size() && y.size(0) >= world->size()),
                   "X (" << x_path << ") and Y (" << y_path << ") need at least one row per rank: " << x.size(0)
                         << " and " << y.size(0) << " rows for " << world->size() << " ranks");
    SINKHORN_CHECK(!world || !a.defined() || a.size(0) == x.size(0),
                   "--wx (" << *args.value("wx") << ") must hold " << x.size(0) << " weights, one per row of X, got "
                            << a.size(0));
    SINKHORN_CHECK(!world || !b.defined() || b.size(0) == y.size(0),
                   "--wy (" << *args.value("wy") << ") must hold " << y.size(0) << " weights, one per row of Y, got "
                            << b.size(0));
  } catch (const Error& error) {
    failure = std::current_exception();
    refusal = message_for(error);
  }
  if (world) {
    // Every rank reads the whole files and solves its block of rows: they must have read the same
    // values (a rank given other files would mix two problems into one value).
    dist::agree_on_refusals(world->group(), refusal, at::kCPU);
    if (failure) std::rethrow_exception(failure);
    std::ostringstream contents;
    contents << "x=" << content_hash(x) << "\ny=" << content_hash(y) << "\na=" << content_hash(a)
             << "\nb=" << content_hash(b) << "\n";
    dist::agree_on_settings(world->group(), contents.str(), at::kCPU);
  } else if (failure) {
    std::rethrow_exception(failure);
  }
  const int64_t n = x.size(0), m = y.size(0);
  x = block_of(x, world.get()).to(device);
  y = block_of(y, world.get()).to(device);
  a = block_of(a, world.get());
  b = block_of(b, world.get());
  if (a.defined()) a = a.to(device);
  if (b.defined()) b = b.to(device);
  const std::optional<std::string> grad_x_path = args.value("grad-x");
  const std::optional<std::string> grad_y_path = args.value("grad-y");
  if (grad_x_path) x.requires_grad_(true);
  if (grad_y_path) y.requires_grad_(true);

  const auto start = std::chrono::steady_clock::now();
  // The library names its inputs x, y, a, b; say which file each came from.
  const auto with_file = [&](const Error& error) -> Error {
    const std::map<std::string, std::string> files{
        {"x", x_path}, {"y", y_path}, {"a", args.value("wx").value_or("")}, {"b", args.value("wy").value_or("")}};
    const auto file = files.find(error.argument());
    if (file == files.end() || file->second.empty()) return error;
    return Error(error.argument(), "(" + file->second + ") " + error.problem());
  };
  DivergenceResult result;
  try {
    result = api::divergence_over(a, x, b, y, options, world ? world->shared_group() : nullptr);
  } catch (const Error& error) {
    throw with_file(error);
  }
  if (grad_x_path || grad_y_path) torch::autograd::backward({result.value});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double value = result.value.item<double>();
  SINKHORN_CHECK(std::isfinite(value), "the loss is not finite (" << value << "); check the inputs' scale");

  // Each rank holds its rows' gradients; rank 0 writes them whole.
  if (grad_x_path) {
    const at::Tensor gradient = gather_rows(x.grad(), n, world.get());
    if (speaks) write_gradient(*grad_x_path, gradient);
  }
  if (grad_y_path) {
    const at::Tensor gradient = gather_rows(y.grad(), m, world.get());
    if (speaks) write_gradient(*grad_y_path, gradient);
  }
  if (!speaks) return 0;
  const Diagnostics& d = result.diagnostics;
  if (!d.converged) {
    err << "sinkhorn divergence: warning: not converged after " << d.iterations
        << " iterations (marginal error " << d.marginal_error << " > tolerance " << d.tolerance
        << "); raise --max-iterations or --blur\n";
  }
  if (args.flag("json")) {
    out << "{\"loss\": \"" << to_string(options.loss) << "\", \"value\": " << json_number(value)
        << ", \"iterations\": " << d.iterations << ", \"marginal_error\": " << json_number(d.marginal_error)
        << ", \"converged\": " << (d.converged ? "true" : "false") << ", \"schedule_length\": "
        << d.schedule_length << ", \"epsilon\": " << json_number(d.epsilon)
        << ", \"diameter\": " << json_number(d.diameter) << ", \"backend\": \"" << d.backend
        << "\", \"dtype\": \"" << (x.scalar_type() == at::kDouble ? "float64" : "float32") << "\", \"device\": \""
        << device.str() << "\", \"n\": "
        << n << ", \"m\": " << m << ", \"d\": " << x.size(1) << ", \"world_size\": " << d.world_size
        << ", \"visited_pairs_fraction\": " << json_number(d.visited_pairs_fraction)
        << ", \"truncation_rebuilds\": " << d.truncation_rebuilds << ", \"corrected_sweeps\": " << d.corrected_sweeps
        << ", \"truncation_seconds\": " << json_number(d.truncation_seconds)
        << ", \"seconds\": " << json_number(seconds) << "}\n";
  } else {
    out << std::setprecision(12) << value << "\n";
  }
  return 0;
}

}  // namespace sinkhorn::cli
