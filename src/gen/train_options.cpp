#include "gen/train_options.h"

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <type_traits>

#include "platform/devices.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

template <typename T>
const T& value_as(const TrainValue& value, const char* key) {
  SINKHORN_INTERNAL_CHECK(std::holds_alternative<T>(value), "a value of the wrong kind for the setting " << key);
  return std::get<T>(value);
}

TrainOptionSpec entry(const char* key, const char* flag, const char* value_name, const char* doc,
                      TrainOptionKind kind) {
  TrainOptionSpec spec{};
  spec.key = key;
  spec.flag = flag;
  spec.value_name = value_name;
  spec.doc = doc;
  spec.kind = kind;
  return spec;
}

// The entries' builders. `field` is a generic lambda returning a reference to the TrainConfig
// field, const or not as its argument is: one accessor serves get and set.
template <typename Field>
TrainOptionSpec integer_setting(const char* key, const char* flag, const char* value_name, const char* doc,
                                IntegerRange range, Field field, long long sample) {
  TrainOptionSpec spec = entry(key, flag, value_name, doc, TrainOptionKind::integer);
  spec.range = range;
  spec.get = [field](const TrainConfig& c) -> TrainValue { return static_cast<long long>(field(c)); };
  spec.set = [field, key](TrainConfig& c, const TrainValue& value) {
    using Stored = std::decay_t<decltype(field(c))>;
    field(c) = static_cast<Stored>(value_as<long long>(value, key));
  };
  spec.sample = sample;
  return spec;
}

template <typename Field>
TrainOptionSpec number_setting(const char* key, const char* flag, const char* value_name, const char* doc,
                               double minimum, bool minimum_allowed, Field field, double sample) {
  TrainOptionSpec spec = entry(key, flag, value_name, doc, TrainOptionKind::number);
  spec.minimum = minimum;
  spec.minimum_allowed = minimum_allowed;
  spec.get = [field](const TrainConfig& c) -> TrainValue { return field(c); };
  spec.set = [field, key](TrainConfig& c, const TrainValue& value) { field(c) = value_as<double>(value, key); };
  spec.sample = sample;
  return spec;
}

template <typename Field>
TrainOptionSpec text_setting(const char* key, const char* flag, const char* value_name, const char* doc, Field field,
                             const char* sample) {
  TrainOptionSpec spec = entry(key, flag, value_name, doc, TrainOptionKind::text);
  spec.get = [field](const TrainConfig& c) -> TrainValue { return field(c); };
  spec.set = [field, key](TrainConfig& c, const TrainValue& value) { field(c) = value_as<std::string>(value, key); };
  spec.sample = std::string(sample);
  return spec;
}

// A setting named by an enum: written with to_string, read with the parser, which refuses an
// unknown name naming the key.
template <typename Field, typename Parse>
TrainOptionSpec enum_setting(const char* key, const char* flag, const char* value_name, const char* doc, Field field,
                             Parse parse, const char* sample) {
  TrainOptionSpec spec = entry(key, flag, value_name, doc, TrainOptionKind::name);
  spec.get = [field](const TrainConfig& c) -> TrainValue { return to_string(field(c)); };
  spec.set = [field, parse, key](TrainConfig& c, const TrainValue& value) {
    field(c) = parse(value_as<std::string>(value, key), key);
  };
  spec.sample = std::string(sample);
  return spec;
}

template <typename Field>
TrainOptionSpec shape_setting(const char* key, const char* doc, Field field) {
  TrainOptionSpec spec = entry(key, "", "", doc, TrainOptionKind::shape);
  spec.get = [field](const TrainConfig& c) -> TrainValue { return field(c); };
  spec.set = [field, key](TrainConfig& c, const TrainValue& value) {
    field(c) = value_as<std::vector<int64_t>>(value, key);
  };
  spec.sample = std::vector<int64_t>{1, 28, 28};
  return spec;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream text;
  text << "[";
  for (size_t k = 0; k < shape.size(); ++k) text << (k ? ", " : "") << shape[k];
  text << "]";
  return text.str();
}

std::vector<TrainOptionSpec> build_table() {
  // The accessors: one generic lambda per field.
#define SINKHORN_FIELD(path) [](auto& c) -> auto& { return c.path; }
  std::vector<TrainOptionSpec> table{
      text_setting("data.name", "data", "NAME", "ring8 (default), grid25, swiss_roll, moons, ellipse, mnist, cifar10",
                   SINKHORN_FIELD(data.name), "moons"),
      text_setting("data.path", "data-path", "PATH",
                   "mnist: IDX files (or their folder), raw or .gz; cifar10: binary batches or folder",
                   SINKHORN_FIELD(data.path), "/data/mnist"),
      text_setting("data.split", "split", "NAME", "train (default) or test: which file of the image set to read",
                   SINKHORN_FIELD(data.split), "test"),
      integer_setting("data.heldout", "heldout", "N",
                      "held-out samples for evaluation (toys: drawn apart; images: the last N; default 1000)",
                      kHeldoutRange, SINKHORN_FIELD(data.heldout), 321),
      text_setting("generator.architecture", "generator", "NAME", "mlp or dcgan (default: mlp, dcgan for cifar10)",
                   SINKHORN_FIELD(generator.architecture), "dcgan"),
      integer_setting("generator.latent_dim", "latent-dim", "K", "latent dimension (default 2; cifar10: 100)",
                      kLatentDimRange, SINKHORN_FIELD(generator.latent_dim), 7),
      text_setting("generator.latent", "latent", "NAME",
                   "uniform on [-1,1]^K (default for images, the paper's) or gaussian (default for toys)",
                   SINKHORN_FIELD(generator.latent), "gaussian"),
      integer_setting("generator.hidden", "hidden", "H", "MLP hidden width (default 500 for images, 128 for toys)",
                      kHiddenRange, SINKHORN_FIELD(generator.hidden), 33),
      text_setting("generator.activation", "activation", "NAME",
                   "MLP activation: softplus (default for images, the paper's) or relu (default for toys)",
                   SINKHORN_FIELD(generator.activation), "relu"),
      integer_setting("generator.width", "width", "C", "DCGAN generator channels (default 64)", kWidthRange,
                      SINKHORN_FIELD(generator.width), 48),
      shape_setting("generator.sample_shape", "the shape of one sample, set from the data",
                    SINKHORN_FIELD(generator.sample_shape)),
      enum_setting("cost", "cost", "NAME",
                   "fixed (default: the loss on raw samples) or learned (on critic features, Algorithm 2)",
                   SINKHORN_FIELD(cost), parse_cost, "learned"),
      text_setting("critic.architecture", "critic", "NAME", "learned cost: mlp or dcgan (default: dcgan for images, mlp for toys)",
                   SINKHORN_FIELD(critic.architecture), "dcgan"),
      integer_setting("critic.feature_dim", "feature-dim", "K", "learned cost: critic feature dimension (default 16)",
                      kWidthRange, SINKHORN_FIELD(critic.feature_dim), 12),
      integer_setting("critic.width", "critic-width", "C", "learned cost: critic width (default 64)", kWidthRange,
                      SINKHORN_FIELD(critic.width), 40),
      shape_setting("critic.sample_shape", "the shape of one sample the critic reads, set from the data",
                    SINKHORN_FIELD(critic.sample_shape)),
      integer_setting("critic_steps", "critic-steps", "N",
                      "learned cost: critic updates per generator update (default 5)", kCriticStepsRange,
                      SINKHORN_FIELD(critic_steps), 3),
      number_setting("clip", "clip", "C", "learned cost: weight clipping bound of the critic (default 0.01; 0: none)", 0,
                     true, SINKHORN_FIELD(clip), 0.02),
      number_setting("critic_learning_rate", "critic-lr", "LR", "learned cost: critic learning rate (default 5e-5)", 0,
                     false, SINKHORN_FIELD(critic_learning_rate), 3e-5),
      enum_setting("optimizer", "optimizer", "NAME",
                   "adam (default) or rmsprop (default for the learned cost, as in the paper)",
                   SINKHORN_FIELD(optimizer), parse_optimizer, "rmsprop"),
      number_setting("learning_rate", "lr", "LR",
                     "generator learning rate (default 5e-3 for toys, 1e-3 for images; learned cost: 5e-5)", 0, false,
                     SINKHORN_FIELD(learning_rate), 2e-4),
      enum_setting("schedule", "lr-schedule", "NAME",
                   "constant (default for images) or cosine (to 5% of --lr; default for toys)", SINKHORN_FIELD(schedule),
                   parse_schedule, "cosine"),
      integer_setting("batch_size", "batch-size", "N", "samples per batch (default 200)", kBatchSizeRange,
                      SINKHORN_FIELD(batch_size), 64),
      integer_setting("steps", "steps", "N", "generator updates (default 2000; with --resume: the new total)",
                      kStepsRange, SINKHORN_FIELD(steps), 77),
      integer_setting("seed", "seed", "S", "seeds initialisation and every batch (default 0)",
                      {0, static_cast<int64_t>(kMaxSeed)}, SINKHORN_FIELD(seed), 12345),
      integer_setting("eval_every", "eval-every", "N", "evaluate the held-out divergence every N steps (default 100)",
                      kEveryRange, SINKHORN_FIELD(eval_every), 7),
      integer_setting("eval_samples", "eval-samples", "N", "generated samples per evaluation (default 1000)",
                      kEvalSamplesRange, SINKHORN_FIELD(eval_samples), 99),
      number_setting("eval_blur", "eval-blur", "B", "blur of the evaluation divergence (default 0.05 for toys, 1 for images)",
                     0, false, SINKHORN_FIELD(eval_blur), 0.3),
      integer_setting("sample_every", "sample-every", "N", "write pictures every N steps (default 500; 0: only at the end)",
                      kSampleEveryRange, SINKHORN_FIELD(sample_every), 11),
      integer_setting("checkpoint_every", "checkpoint-every", "N", "write checkpoint.pt every N steps (default 500)",
                      kEveryRange, SINKHORN_FIELD(checkpoint_every), 13),
      integer_setting("log_every", "log-every", "N", "append to metrics.csv every N steps (default 10)", kEveryRange,
                      SINKHORN_FIELD(log_every), 3),
      text_setting("out_dir", "out", "DIR", "the run folder (default runs/<data>)", SINKHORN_FIELD(out_dir),
                   "runs/elsewhere"),
  };
#undef SINKHORN_FIELD

  TrainOptionSpec solve = enum_setting(
      "data_parallel_solve", "data-parallel-solve", "NAME",
      "under torchrun: auto (default), gathered (all-gather the batch once, every rank solves it whole), "
      "split (gathered, the divergence's three problems on different ranks, potentials exchanged once) or "
      "sharded (each rank its rows, potentials exchanged every sweep)",
      [](auto& c) -> auto& { return c.data_parallel_solve; }, parse_data_parallel_solve, "sharded");
  solve.may_be_absent = true;  // runs written before the setting existed
  table.push_back(std::move(solve));

  TrainOptionSpec draw_on = enum_setting(
      "draw_on", "draw-on", "WHERE",
      "host (default: latents and batches drawn on the CPU and copied, the same on any device) or device "
      "(drawn on --device, an image set copied there once: no copy per step; on a GPU other streams)",
      [](auto& c) -> auto& { return c.draw_on; }, parse_draw_on, "device");
  draw_on.may_be_absent = true;  // runs written before the setting existed drew on the host
  table.push_back(std::move(draw_on));

  // The device: a name in the one grammar (platform/devices.h), kept as a c10::Device.
  TrainOptionSpec device = entry("device", "device", "NAME",
                                 "cpu (default) or cuda[:K]: where the networks, batches and loss live (with --resume: "
                                 "default the run's saved device; a run may continue on another)",
                                 TrainOptionKind::name);
  device.get = [](const TrainConfig& c) -> TrainValue { return c.device.str(); };
  device.set = [](TrainConfig& c, const TrainValue& value) {
    const std::string& name = value_as<std::string>(value, "device");
    const std::optional<c10::Device> parsed = platform::parse_device_name(name);
    SINKHORN_CHECK_ARG(parsed.has_value(), "device", "must be 'cpu', 'cuda' or 'cuda:K', got '" << name << "'");
    c.device = *parsed;
  };
  device.sample = std::string("cuda:1");
  // Runs written before the setting existed trained on the CPU.
  device.may_be_absent = true;
  table.push_back(std::move(device));

  for (TrainOptionSpec& spec : table) {
    const std::string key = spec.key;
    // The folder is where a resume finds the run (it may have moved since); the rest may change
    // without changing what the run is.
    spec.may_change_on_resume = key == "out_dir" || key == "steps" || key == "learning_rate" || key == "device" ||
                                key == "data_parallel_solve" || key == "draw_on";
  }
  return table;
}

}  // namespace

const std::vector<TrainOptionSpec>& train_option_table() {
  static const std::vector<TrainOptionSpec> table = build_table();
  return table;
}

const TrainOptionSpec* find_train_option(const std::string& key) {
  for (const TrainOptionSpec& spec : train_option_table()) {
    if (key == spec.key) return &spec;
  }
  return nullptr;
}

void check_train_value(const TrainOptionSpec& spec, const TrainValue& value) {
  switch (spec.kind) {
    case TrainOptionKind::integer: {
      const long long integer = value_as<long long>(value, spec.key);
      SINKHORN_CHECK_ARG(integer >= spec.range.min && integer <= spec.range.max, spec.key,
                         "must be between " << spec.range.min << " and " << spec.range.max << ", got " << integer);
      break;
    }
    case TrainOptionKind::number: {
      const double number = value_as<double>(value, spec.key);
      const bool above = spec.minimum_allowed ? number >= spec.minimum : number > spec.minimum;
      const std::string bound = spec.minimum == 0 && !spec.minimum_allowed
                                    ? std::string("positive")
                                    : (spec.minimum_allowed ? ">= " : "> ") + to_text(spec.minimum);
      SINKHORN_CHECK_ARG(above && std::isfinite(number), spec.key, "must be " << bound << ", got " << number);
      break;
    }
    case TrainOptionKind::text:
      // A folder needs a name; the other texts are checked where they are used.
      SINKHORN_CHECK_ARG(std::string(spec.key) != "out_dir" || !value_as<std::string>(value, spec.key).empty(), spec.key,
                         "must name a folder");
      break;
    case TrainOptionKind::name:
      break;  // set() parsed it
    case TrainOptionKind::shape: {
      // The shapes the data sets give: [2] for 2-D points, [C, H, W] for grey or colour images.
      const std::vector<int64_t>& shape = value_as<std::vector<int64_t>>(value, spec.key);
      const bool points = shape == std::vector<int64_t>{2};
      const auto side = [](int64_t s) { return s >= 1 && s <= kMaxImageSide; };
      const bool image = shape.size() == 3 && (shape[0] == 1 || shape[0] == 3) && side(shape[1]) && side(shape[2]);
      SINKHORN_CHECK_ARG(points || image, spec.key,
                         "must be [2] (2-D points) or [C, H, W] (images: C 1 or 3, sides 1 to "
                             << kMaxImageSide << "), got " << shape_text(shape));
      break;
    }
  }
}

std::string to_text(const TrainValue& value) {
  if (const auto* integer = std::get_if<long long>(&value)) return std::to_string(*integer);
  if (const auto* number = std::get_if<double>(&value)) {
    std::ostringstream text;
    text << std::setprecision(17) << *number;
    return text.str();
  }
  if (const auto* text = std::get_if<std::string>(&value)) return *text;
  return shape_text(std::get<std::vector<int64_t>>(value));
}

}  // namespace sinkhorn::gen
