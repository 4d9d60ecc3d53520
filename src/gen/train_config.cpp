#include "gen/train_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "api/option_table.h"
#include "platform/device_names.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

using nlohmann::json;

void check_range(int64_t value, IntegerRange range, const char* name) {
  SINKHORN_CHECK_ARG(value >= range.min && value <= range.max, name,
                     "must be between " << range.min << " and " << range.max << ", got " << value);
}

void check_positive(double value, const char* name) {
  SINKHORN_CHECK_ARG(value > 0 && std::isfinite(value), name, "must be positive, got " << value);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream text;
  text << "[";
  for (size_t k = 0; k < shape.size(); ++k) text << (k ? ", " : "") << shape[k];
  text << "]";
  return text.str();
}

// The shapes the data sets give: [2] for 2-D points, [C, H, W] for grey or colour images.
void check_sample_shape(const std::vector<int64_t>& shape, const char* name) {
  const bool points = shape == std::vector<int64_t>{2};
  const auto side = [](int64_t s) { return s >= 1 && s <= kMaxImageSide; };
  const bool image = shape.size() == 3 && (shape[0] == 1 || shape[0] == 3) && side(shape[1]) && side(shape[2]);
  SINKHORN_CHECK_ARG(points || image, name,
                     "must be [2] (2-D points) or [C, H, W] (images: C 1 or 3, sides 1 to " << kMaxImageSide
                                                                                          << "), got " << shape_text(shape));
}

// Typed readers of one field: nlohmann's get<int>() would narrow 4294967298 to 2 and read 2.5 as
// 2 without a word. `name` is the field's library name, carried by the error.
const json& field(const json& object, const char* key) { return object.at(key); }

int64_t integer_field(const json& object, const char* key, const std::string& name) {
  const json& value = field(object, key);
  if (value.is_number_unsigned()) {
    const uint64_t unsigned_value = value.get<uint64_t>();
    SINKHORN_CHECK_ARG(unsigned_value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), name,
                       "is too large, got " << unsigned_value);
    return static_cast<int64_t>(unsigned_value);
  }
  SINKHORN_CHECK_ARG(value.is_number_integer(), name, "must be an integer, got " << value.dump());
  return value.get<int64_t>();
}

double number_field(const json& object, const char* key, const std::string& name) {
  const json& value = field(object, key);
  SINKHORN_CHECK_ARG(value.is_number(), name, "must be a number, got " << value.dump());
  return value.get<double>();
}

std::string string_field(const json& object, const char* key, const std::string& name) {
  const json& value = field(object, key);
  SINKHORN_CHECK_ARG(value.is_string(), name, "must be a string, got " << value.dump());
  return value.get<std::string>();
}

std::vector<int64_t> shape_field(const json& object, const char* key, const std::string& name) {
  const json& value = field(object, key);
  SINKHORN_CHECK_ARG(value.is_array() && value.size() <= 8, name, "must be a short list of sizes, got " << value.dump());
  std::vector<int64_t> shape;
  for (size_t k = 0; k < value.size(); ++k) {
    SINKHORN_CHECK_ARG(value[k].is_number_integer(), name, "must hold integers, got " << value.dump());
    // A size past int64 is as wrong as any other huge one: check_sample_shape refuses it.
    const bool huge = value[k].is_number_unsigned() &&
                      value[k].get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    shape.push_back(huge ? std::numeric_limits<int64_t>::max() : value[k].get<int64_t>());
  }
  return shape;
}

}  // namespace

bool is_device_name(const std::string& name) { return platform::parse_device_name(name).has_value(); }

void validate(const TrainConfig& config) {
  check_range(config.data.heldout, kHeldoutRange, "data.heldout");
  check_range(config.generator.latent_dim, kLatentDimRange, "generator.latent_dim");
  check_range(config.generator.hidden, kHiddenRange, "generator.hidden");
  check_range(config.generator.width, kWidthRange, "generator.width");
  check_sample_shape(config.generator.sample_shape, "generator.sample_shape");
  SINKHORN_CHECK_ARG(config.cost == "fixed" || config.cost == "learned", "cost",
                     "must be 'fixed' or 'learned', got '" << config.cost << "'");
  check_range(config.critic.feature_dim, kWidthRange, "critic.feature_dim");
  check_range(config.critic.width, kWidthRange, "critic.width");
  check_sample_shape(config.critic.sample_shape, "critic.sample_shape");
  SINKHORN_CHECK_ARG(config.critic.sample_shape == config.generator.sample_shape, "critic.sample_shape",
                     "must be the generator's " << shape_text(config.generator.sample_shape) << ", got "
                                                << shape_text(config.critic.sample_shape));
  check_range(config.critic_steps, kCriticStepsRange, "critic_steps");
  SINKHORN_CHECK_ARG(config.clip >= 0 && std::isfinite(config.clip), "clip", "must be >= 0, got " << config.clip);
  SINKHORN_CHECK_ARG(config.optimizer == "adam" || config.optimizer == "rmsprop", "optimizer",
                     "must be 'adam' or 'rmsprop', got '" << config.optimizer << "'");
  check_positive(config.learning_rate, "learning_rate");
  SINKHORN_CHECK_ARG(config.schedule == "constant" || config.schedule == "cosine", "schedule",
                     "must be 'constant' or 'cosine', got '" << config.schedule << "'");
  check_positive(config.critic_learning_rate, "critic_learning_rate");
  check_range(config.batch_size, kBatchSizeRange, "batch_size");
  check_range(config.steps, kStepsRange, "steps");
  SINKHORN_CHECK_ARG(config.seed <= kMaxSeed, "seed", "must be at most " << kMaxSeed << ", got " << config.seed);
  check_range(config.eval_every, kEveryRange, "eval_every");
  check_range(config.eval_samples, kEvalSamplesRange, "eval_samples");
  check_positive(config.eval_blur, "eval_blur");
  check_range(config.sample_every, kSampleEveryRange, "sample_every");
  check_range(config.checkpoint_every, kEveryRange, "checkpoint_every");
  check_range(config.log_every, kEveryRange, "log_every");
  SINKHORN_CHECK_ARG(!config.out_dir.empty(), "out_dir", "must name a folder");
  SINKHORN_CHECK_ARG(is_device_name(config.device), "device",
                     "must be 'cpu', 'cuda' or 'cuda:K', got '" << config.device << "'");
  check_range(config.loss.max_iterations, kLossIterationsRange, "max_iterations");
  if (config.loss.iterations) check_range(*config.loss.iterations, {1, kLossIterationsRange.max}, "iterations");
  validate(config.loss);  // its errors name the loss's own settings (blur, p, ...)
}

std::string to_json(const TrainConfig& c) {
  // Every option of the table (src/api/option_table.h), so that none is left out of the file.
  json loss = json::object();
  for (const api::OptionSpec& spec : api::option_table()) {
    loss[spec.name] = std::visit(
        [](const auto& value) -> json {
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::monostate>) {
            return json(nullptr);
          } else {
            return json(value);
          }
        },
        spec.get(c.loss));
  }
  const json document{
      {"data", {{"name", c.data.name}, {"path", c.data.path}, {"split", c.data.split}, {"heldout", c.data.heldout}}},
      {"generator",
       {{"architecture", c.generator.architecture},
        {"latent_dim", c.generator.latent_dim},
        {"latent", c.generator.latent},
        {"hidden", c.generator.hidden},
        {"activation", c.generator.activation},
        {"width", c.generator.width},
        {"sample_shape", c.generator.sample_shape}}},
      {"loss", loss},
      {"cost", c.cost},
      {"critic",
       {{"architecture", c.critic.architecture},
        {"feature_dim", c.critic.feature_dim},
        {"width", c.critic.width},
        {"sample_shape", c.critic.sample_shape}}},
      {"critic_steps", c.critic_steps},
      {"clip", c.clip},
      {"optimizer", c.optimizer},
      {"learning_rate", c.learning_rate},
      {"schedule", c.schedule},
      {"critic_learning_rate", c.critic_learning_rate},
      {"batch_size", c.batch_size},
      {"steps", c.steps},
      {"seed", c.seed},
      {"eval_every", c.eval_every},
      {"eval_samples", c.eval_samples},
      {"eval_blur", c.eval_blur},
      {"sample_every", c.sample_every},
      {"checkpoint_every", c.checkpoint_every},
      {"log_every", c.log_every},
      {"out_dir", c.out_dir},
      {"device", c.device}};
  return document.dump(2) + "\n";
}

TrainConfig train_config_from_json(const std::string& text) {
  TrainConfig c;
  try {
    const json j = json::parse(text);
    SINKHORN_CHECK(j.is_object(), "malformed training configuration: not a JSON object");
    const json& data = j.at("data");
    c.data.name = string_field(data, "name", "data.name");
    c.data.path = string_field(data, "path", "data.path");
    c.data.split = string_field(data, "split", "data.split");
    c.data.heldout = integer_field(data, "heldout", "data.heldout");
    const json& g = j.at("generator");
    c.generator.architecture = string_field(g, "architecture", "generator.architecture");
    c.generator.latent_dim = integer_field(g, "latent_dim", "generator.latent_dim");
    c.generator.latent = string_field(g, "latent", "generator.latent");
    c.generator.hidden = integer_field(g, "hidden", "generator.hidden");
    c.generator.activation = string_field(g, "activation", "generator.activation");
    c.generator.width = integer_field(g, "width", "generator.width");
    c.generator.sample_shape = shape_field(g, "sample_shape", "generator.sample_shape");
    const json& l = j.at("loss");
    SINKHORN_CHECK(l.is_object(), "malformed training configuration: loss is not an object");
    // Each option of the table; one a run folder lacks (written before the option existed) keeps
    // its default, as that run had it.
    for (const api::OptionSpec& spec : api::option_table()) {
      if (!l.contains(spec.name)) continue;
      const json& field = l.at(spec.name);
      api::OptionValue value;
      const bool optional = spec.kind == api::OptionKind::optional_number || spec.kind == api::OptionKind::optional_integer;
      if (field.is_null() && optional) {
        value = std::monostate{};
      } else if (spec.kind == api::OptionKind::number || spec.kind == api::OptionKind::optional_number) {
        value = number_field(l, spec.name, spec.name);
      } else if (spec.kind == api::OptionKind::integer || spec.kind == api::OptionKind::optional_integer) {
        value = static_cast<long long>(integer_field(l, spec.name, spec.name));
      } else if (spec.kind == api::OptionKind::name) {
        value = string_field(l, spec.name, spec.name);
      } else {
        SINKHORN_CHECK_ARG(field.is_boolean(), spec.name, "must be true or false");
        value = field.get<bool>();
      }
      spec.set(c.loss, value);
    }
    c.cost = string_field(j, "cost", "cost");
    const json& f = j.at("critic");
    c.critic.architecture = string_field(f, "architecture", "critic.architecture");
    c.critic.feature_dim = integer_field(f, "feature_dim", "critic.feature_dim");
    c.critic.width = integer_field(f, "width", "critic.width");
    c.critic.sample_shape = shape_field(f, "sample_shape", "critic.sample_shape");
    c.critic_steps = integer_field(j, "critic_steps", "critic_steps");
    c.clip = number_field(j, "clip", "clip");
    c.optimizer = string_field(j, "optimizer", "optimizer");
    c.learning_rate = number_field(j, "learning_rate", "learning_rate");
    c.schedule = string_field(j, "schedule", "schedule");
    c.critic_learning_rate = number_field(j, "critic_learning_rate", "critic_learning_rate");
    c.batch_size = integer_field(j, "batch_size", "batch_size");
    c.steps = integer_field(j, "steps", "steps");
    const int64_t seed = integer_field(j, "seed", "seed");
    SINKHORN_CHECK_ARG(seed >= 0, "seed", "must be >= 0, got " << seed);
    c.seed = static_cast<uint64_t>(seed);
    c.eval_every = integer_field(j, "eval_every", "eval_every");
    c.eval_samples = integer_field(j, "eval_samples", "eval_samples");
    c.eval_blur = number_field(j, "eval_blur", "eval_blur");
    c.sample_every = integer_field(j, "sample_every", "sample_every");
    c.checkpoint_every = integer_field(j, "checkpoint_every", "checkpoint_every");
    c.log_every = integer_field(j, "log_every", "log_every");
    c.out_dir = string_field(j, "out_dir", "out_dir");
    // Optional: runs written before the setting existed trained on the CPU.
    if (j.contains("device")) c.device = string_field(j, "device", "device");
  } catch (const json::exception& error) {
    SINKHORN_CHECK(false, "malformed training configuration: " << error.what());
  }
  return c;
}

}  // namespace sinkhorn::gen
