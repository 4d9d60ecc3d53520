#include "train_options.h"

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

gen::TrainConfig train_config_from(const ParsedArguments& args) {
  gen::TrainConfig c =
      gen::recipe_for(args.value("data").value_or("ring8"), gen::parse_cost(args.value("cost").value_or("fixed"), "cost"));
  for (const gen::TrainOptionSpec& spec : gen::train_option_table()) {
    if (*spec.flag == '\0' || !args.value(spec.flag)) continue;
    gen::TrainValue value;
    switch (spec.kind) {
      case gen::TrainOptionKind::integer:
        value = *args.integer(spec.flag);
        break;
      case gen::TrainOptionKind::number:
        value = *args.number(spec.flag);
        break;
      default:
        value = *args.value(spec.flag);
    }
    spec.set(c, value);
  }
  c.loss = loss_options_from(args, c.loss);
  return c;
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
