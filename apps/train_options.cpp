#include "train_options.h"

#include <map>
#include <string>
#include <vector>

#include "gen/recipes.h"
#include "gen/train_options.h"
#include "loss_options.h"

namespace sinkhorn::cli {

void add_train_options(ArgumentParser& parser) {
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (*spec.flag == '\0') continue;  // set from the data
    if (spec.kind == gen::TrainOptionKind::integer) {
      parser.integer(spec.flag, spec.value_name, spec.doc, spec.range.min, spec.range.max);
    } else {
      parser.option(spec.flag, spec.value_name, spec.doc);
    }
  }
}

namespace {

// The value given for a setting's flag, as the table holds it.
gen::TrainValue value_of(const gen::TrainOptionSpec& spec, const ParsedArguments& args) {
  switch (spec.kind) {
    case gen::TrainOptionKind::integer:
      return *args.integer(spec.flag);
    case gen::TrainOptionKind::number:
      return *args.number(spec.flag);
    default:
      return *args.value(spec.flag);
  }
}

}  // namespace

gen::TrainConfig train_config_from(const ParsedArguments& args) {
  gen::TrainConfig c =
      gen::recipe_for(args.value("data").value_or("ring8"), gen::parse_cost(args.value("cost").value_or("fixed"), "cost"));
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (*spec.flag == '\0' || !args.value(spec.flag)) continue;
    spec.set(c, value_of(spec, args));
  }
  c.loss = loss_options_from(args, c.loss);
  return c;
}

std::map<std::string, gen::TrainValue> resumed_settings_from(const ParsedArguments& args) {
  std::map<std::string, gen::TrainValue> settings;
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    const std::string key = spec.key;
    // The folder, the length, the rate and the device have fields of their own (ResumeOverrides).
    if (!spec.may_change_on_resume || key == "out_dir" || key == "steps" || key == "learning_rate" || key == "device" ||
        *spec.flag == '\0' || !args.value(spec.flag)) {
      continue;
    }
    settings[key] = value_of(spec, args);
  }
  return settings;
}

bool may_change_on_resume(const std::string& flag) {
  if (flag == "threads" || flag == "timeout") return true;
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (flag == spec.flag) return spec.may_change_on_resume;
  }
  return false;  // the loss's flags and any other: the run keeps them
}

std::string resumable_flags() {
  std::vector<std::string> flags;
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (spec.may_change_on_resume && std::string(spec.flag) != "out") flags.push_back(std::string("--") + spec.flag);
  }
  std::string text;
  for (size_t k = 0; k < flags.size(); ++k) {
    text += (k == 0 ? "" : k + 1 == flags.size() ? " and " : ", ") + flags[k];
  }
  return text;
}

}  // namespace sinkhorn::cli
