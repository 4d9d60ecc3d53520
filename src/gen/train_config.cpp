#include "gen/train_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "api/option_table.h"
#include "gen/train_options.h"
#include "util/check.h"
#include "util/name_table.h"

namespace sinkhorn::gen {
namespace {

using nlohmann::json;

void check_loss_range(int64_t value, IntegerRange range, const char* name) {
  SINKHORN_CHECK_ARG(value >= range.min && value <= range.max, name,
                     "must be between " << range.min << " and " << range.max << ", got " << value);
}

// config.json's place of a key: "/data/path" for "data.path".
std::string json_path(const char* key) {
  std::string path = std::string("/") + key;
  std::replace(path.begin(), path.end(), '.', '/');
  return path;
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

namespace {

const NameTable<CostKind>& cost_names() {
  static const NameTable<CostKind> names{{CostKind::fixed, "fixed"}, {CostKind::learned, "learned"}};
  return names;
}
const NameTable<OptimizerKind>& optimizer_names() {
  static const NameTable<OptimizerKind> names{{OptimizerKind::adam, "adam"}, {OptimizerKind::rmsprop, "rmsprop"}};
  return names;
}
const NameTable<LearningRateSchedule>& schedule_names() {
  static const NameTable<LearningRateSchedule> names{{LearningRateSchedule::constant, "constant"},
                                                     {LearningRateSchedule::cosine, "cosine"}};
  return names;
}

const NameTable<DataParallelSolve>& data_parallel_solve_names() {
  static const NameTable<DataParallelSolve> names{{DataParallelSolve::automatic, "auto"},
                                                  {DataParallelSolve::gathered, "gathered"},
                                                  {DataParallelSolve::split, "split"},
                                                  {DataParallelSolve::sharded, "sharded"}};
  return names;
}

const NameTable<DrawOn>& draw_on_names() {
  static const NameTable<DrawOn> names{{DrawOn::host, "host"}, {DrawOn::device, "device"}};
  return names;
}

}  // namespace

std::string to_string(DrawOn draw_on) { return name_of(draw_on_names(), draw_on); }
DrawOn parse_draw_on(const std::string& name, const std::string& argument) {
  return parse_name(draw_on_names(), name, argument);
}
std::string to_string(DataParallelSolve solve) { return name_of(data_parallel_solve_names(), solve); }
DataParallelSolve parse_data_parallel_solve(const std::string& name, const std::string& argument) {
  return parse_name(data_parallel_solve_names(), name, argument);
}
std::string to_string(CostKind cost) { return name_of(cost_names(), cost); }
std::string to_string(OptimizerKind optimizer) { return name_of(optimizer_names(), optimizer); }
std::string to_string(LearningRateSchedule schedule) { return name_of(schedule_names(), schedule); }
CostKind parse_cost(const std::string& name, const std::string& argument) {
  return parse_name(cost_names(), name, argument);
}
OptimizerKind parse_optimizer(const std::string& name, const std::string& argument) {
  return parse_name(optimizer_names(), name, argument);
}
LearningRateSchedule parse_schedule(const std::string& name, const std::string& argument) {
  return parse_name(schedule_names(), name, argument);
}

void validate(const TrainConfig& config) {
  for (const TrainOptionSpec& spec : train_option_table()) check_train_value(spec, spec.get(config));
  SINKHORN_CHECK_ARG(config.critic.sample_shape == config.generator.sample_shape, "critic.sample_shape",
                     "must be the generator's " << to_text(config.generator.sample_shape) << ", got "
                                                << to_text(config.critic.sample_shape));
  check_loss_range(config.loss.max_iterations, kLossIterationsRange, "max_iterations");
  if (config.loss.iterations) check_loss_range(*config.loss.iterations, {1, kLossIterationsRange.max}, "iterations");
  validate(config.loss);  // its errors name the loss's own settings (blur, p, ...)
}

std::string to_json(const TrainConfig& c) {
  // Every setting of the two tables (gen/train_options.h, api/option_table.h), so that none is
  // left out of the file.
  json document = json::object();
  for (const TrainOptionSpec& spec : train_option_table()) {
    std::visit([&](const auto& value) { document[json::json_pointer(json_path(spec.key))] = value; }, spec.get(c));
  }
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
  document["loss"] = loss;
  return document.dump(2) + "\n";
}

TrainConfig train_config_from_json(const std::string& text) {
  TrainConfig c;
  try {
    const json j = json::parse(text);
    SINKHORN_CHECK(j.is_object(), "malformed training configuration: not a JSON object");
    for (const TrainOptionSpec& spec : train_option_table()) {
      // The object holding the key's last part: "data" for "data.path", the document for "steps".
      const std::string path = json_path(spec.key);
      const json::json_pointer pointer(path), parent = pointer.parent_pointer();
      const json& object = j.at(parent);
      SINKHORN_CHECK(object.is_object(), "malformed training configuration: " << parent.to_string().substr(1)
                                                                              << " is not an object");
      const std::string name = pointer.back();
      if (!object.contains(name) && spec.may_be_absent) continue;
      TrainValue value;
      switch (spec.kind) {
        case TrainOptionKind::integer:
          value = static_cast<long long>(integer_field(object, name.c_str(), spec.key));
          break;
        case TrainOptionKind::number:
          value = number_field(object, name.c_str(), spec.key);
          break;
        case TrainOptionKind::text:
        case TrainOptionKind::name:
          value = string_field(object, name.c_str(), spec.key);
          break;
        case TrainOptionKind::shape:
          value = shape_field(object, name.c_str(), spec.key);
          break;
      }
      // Ranges here too: an unsigned field (the seed) must not wrap on the way in.
      check_train_value(spec, value);
      spec.set(c, value);
    }
    const json& l = j.at("loss");
    SINKHORN_CHECK(l.is_object(), "malformed training configuration: loss is not an object");
    // Each option of the table; one a run folder lacks (written before the option existed) keeps
    // its default, as that run had it.
    for (const api::OptionSpec& spec : api::option_table()) {
      if (!l.contains(spec.name)) {
        if (!std::holds_alternative<std::monostate>(spec.when_absent)) spec.set(c.loss, spec.when_absent);
        continue;
      }
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
  } catch (const json::exception& error) {
    SINKHORN_CHECK(false, "malformed training configuration: " << error.what());
  }
  return c;
}

}  // namespace sinkhorn::gen
