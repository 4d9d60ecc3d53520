#include "gen/checkpoint.h"

#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "gen/models/networks.h"
#include "gen/optimizers.h"
#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "io/zip_archive.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

constexpr const char* kCheckpointFormat = "sinkhorn-checkpoint-1";

std::string describe(at::IntArrayRef sizes, at::ScalarType type) {
  std::ostringstream text;
  text << sizes << " " << type;
  return text.str();
}
std::string describe(const at::Tensor& tensor) { return describe(tensor.sizes(), tensor.scalar_type()); }

// The name, sizes and type of every parameter and buffer of a module.
struct TensorLayout {
  std::string name;
  std::vector<int64_t> sizes;
  at::ScalarType type;
};

std::vector<TensorLayout> layout_of(const torch::nn::Module& module) {
  std::vector<TensorLayout> layout;
  for (const auto& item : module.named_parameters()) {
    layout.push_back({item.key(), item.value().sizes().vec(), item.value().scalar_type()});
  }
  for (const auto& item : module.named_buffers()) {
    layout.push_back({item.key(), item.value().sizes().vec(), item.value().scalar_type()});
  }
  return layout;
}

// What of `module` no longer has the layout it had before loading, or "" when nothing.
std::string layout_change(const std::vector<TensorLayout>& before, const torch::nn::Module& module) {
  const std::vector<TensorLayout> after = layout_of(module);
  if (after.size() != before.size()) return "it has another number of tensors";
  for (size_t k = 0; k < before.size(); ++k) {
    if (after[k].sizes != before[k].sizes || after[k].type != before[k].type) {
      return "'" + before[k].name + "' is " + describe(after[k].sizes, after[k].type) + " where the settings build " +
             describe(before[k].sizes, before[k].type);
    }
  }
  return "";
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointContents& contents) {
  SINKHORN_INTERNAL_CHECK(contents.config && contents.generator && contents.generator_optimizer,
                          "a checkpoint needs a config, a generator and its optimiser");
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(to_json(*contents.config)));
  archive.write("step", c10::IValue(contents.step));
  archive.write("seconds", c10::IValue(contents.seconds));
  auto write_part = [&](const char* name, auto* saved) {
    torch::serialize::OutputArchive part;
    saved->save(part);
    archive.write(name, part);
  };
  write_part("generator", contents.generator);
  write_part("generator_optimizer", contents.generator_optimizer);
  if (contents.critic) {
    SINKHORN_INTERNAL_CHECK(contents.critic_optimizer, "a critic without its optimiser");
    write_part("critic", contents.critic);
    write_part("critic_optimizer", contents.critic_optimizer);
  }
  // In memory first: LibTorch's file writer aborts the process (an exception thrown from a
  // destructor) when the disk fills; a vector does not fill.
  std::vector<char> bytes;
  archive.save_to([&](const void* data, size_t size) -> size_t {
    bytes.insert(bytes.end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    return size;
  });
  io::write_file_atomically(path, bytes.data(), bytes.size(), "out_dir");
}

struct Checkpoint::State {
  std::string path, argument;
  std::string bytes;  // kept for the archive's life: it may read records lazily
  torch::serialize::InputArchive archive;
  TrainConfig config;
  int64_t step = 0;
  double seconds = 0;

  [[noreturn]] void fail(const std::string& problem) const { throw Error(argument, "'" + path + "' " + problem); }

  // Runs LibTorch's reading of `what`; whatever LibTorch throws (c10::Error, or a standard
  // exception from deep inside its unpickler) becomes one line naming the checkpoint. Our own
  // errors pass through as they are.
  template <typename Action>
  void guarded(const std::string& what, Action&& action) {
    std::string detail;
    try {
      action();
      return;
    } catch (const Error&) {
      throw;
    } catch (const InternalError&) {
      throw;
    } catch (const c10::Error& error) {
      detail = error.what_without_backtrace();
    } catch (const std::exception& error) {
      detail = error.what();
    }
    // LibTorch's messages run over several lines: the first says what went wrong (when it says
    // anything: its TorchScript lexer throws some errors with an empty first line).
    const std::string first_line = detail.substr(0, detail.find('\n'));
    fail("is not a usable sinkhorn checkpoint: cannot read its " + what + " (" +
         (first_line.empty() ? std::string("LibTorch could not parse it") : first_line) + ")");
  }
};

Checkpoint::Checkpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::read(const std::string& path, const std::string& argument) {
  auto state = std::make_unique<State>();
  State& s = *state;
  s.path = path;
  s.argument = argument;
  s.bytes = io::read_regular_file(path, kMaxCheckpointBytes, argument);
  io::verify_zip(s.bytes, path, argument);
  // Onto the CPU whatever device wrote it (a run trained on a GPU is read on a machine without
  // one); the trainer moves what it loads to its own device.
  s.guarded("archive", [&] { s.archive.load_from(s.bytes.data(), s.bytes.size(), at::Device(at::kCPU)); });
  c10::IValue value;
  bool tagged = false;
  s.guarded("format tag", [&] {
    tagged = s.archive.try_read("format", value) && value.isString() && value.toStringRef() == kCheckpointFormat;
  });
  if (!tagged) s.fail(std::string("is not a sinkhorn checkpoint (no format tag ") + kCheckpointFormat + ")");
  std::string json;
  s.guarded("settings", [&] {
    s.archive.read("config", value);
    json = value.toStringRef();
    s.archive.read("step", value);
    s.step = value.toInt();
    s.archive.read("seconds", value);
    s.seconds = value.toDouble();
  });
  try {
    s.config = train_config_from_json(json);
    validate(s.config);
  } catch (const Error& error) {
    s.fail(std::string("holds unusable settings: ") + error.what());
  }
  if (s.step < 0 || s.step > s.config.steps) {
    s.fail("records step " + std::to_string(s.step) + ", outside its run of " + std::to_string(s.config.steps) + " steps");
  }
  if (!(s.seconds >= 0 && std::isfinite(s.seconds))) s.fail("records an impossible training time");
  return Checkpoint(std::move(state));
}

const TrainConfig& Checkpoint::config() const { return state_->config; }
int64_t Checkpoint::step() const { return state_->step; }
double Checkpoint::seconds() const { return state_->seconds; }

void Checkpoint::load_module(const std::string& part, torch::nn::Module& module) const {
  State& s = *state_;
  // LibTorch's load replaces each tensor with the saved one (Tensor::set_), whatever its shape.
  const std::vector<TensorLayout> layout = layout_of(module);
  s.guarded(part, [&] {
    torch::serialize::InputArchive archive;
    s.archive.read(part, archive);
    module.load(archive);
  });
  const std::string change = layout_change(layout, module);
  if (!change.empty()) s.fail("holds a " + part + " that does not fit its settings: " + change);
  // The CRCs prove the file is as written, not that what was written is usable.
  if (!all_finite(module)) s.fail("holds non-finite (NaN or Inf) weights in its " + part + "; it cannot be used");
}

void Checkpoint::load_optimizer(const std::string& part, torch::optim::Optimizer& optimizer) const {
  State& s = *state_;
  s.guarded(part, [&] {
    torch::serialize::InputArchive archive;
    s.archive.read(part, archive);
    optimizer.load(archive);
  });
  // Each parameter's state (running averages) must have the parameter's shape and type, or the
  // next update fails deep in LibTorch or, worse, broadcasts.
  for (const auto& group : optimizer.param_groups()) {
    for (const at::Tensor& parameter : group.params()) {
      const auto found = optimizer.state().find(parameter.unsafeGetTensorImpl());
      if (found == optimizer.state().end()) continue;  // no update yet
      for (const auto& [name, tensor] : state_tensors(*found->second)) {
        if (tensor.sizes() != parameter.sizes() || tensor.scalar_type() != parameter.scalar_type()) {
          s.fail("holds a " + part + " that does not fit its settings: its " + name + " is " + describe(tensor) +
                 " for a parameter of " + describe(parameter));
        }
      }
    }
  }
}

void Checkpoint::with_saved_settings(const std::function<void()>& build) const {
  try {
    build();
  } catch (const Error& error) {
    if (error.argument().empty()) throw;  // it names its own file (a data file), not a setting
    state_->fail("holds settings that cannot be used now: " + std::string(error.what()));
  }
}

}  // namespace sinkhorn::gen
