#include "loss_options.h"

#include "api/option_table.h"
#include "sinkhorn/error.h"

namespace sinkhorn::cli {

// Every flag comes from the option table (src/api/option_table.h): its name, value, range and
// help line are declared there once.
void add_loss_options(ArgumentParser& parser) {
  for (const api::OptionSpec& spec : api::option_table()) {
    switch (spec.kind) {
      case api::OptionKind::flag:
        parser.flag(spec.flag, spec.doc);
        break;
      case api::OptionKind::integer:
      case api::OptionKind::optional_integer:
        parser.integer(spec.flag, spec.value_name, spec.doc, spec.min, spec.max);
        break;
      default:
        parser.option(spec.flag, spec.value_name, spec.doc);
    }
  }
}

SinkhornOptions loss_options_from(const ParsedArguments& args, SinkhornOptions options) {
  std::vector<std::string> given;
  for (const api::OptionSpec& spec : api::option_table()) {
    api::OptionValue value;
    switch (spec.kind) {
      case api::OptionKind::flag:
        if (args.flag(spec.flag)) value = true;
        break;
      case api::OptionKind::integer:
      case api::OptionKind::optional_integer:
        if (auto integer = args.integer(spec.flag)) value = *integer;
        break;
      case api::OptionKind::number:
      case api::OptionKind::optional_number:
        if (auto number = args.number(spec.flag)) value = *number;
        break;
      case api::OptionKind::name:
        if (auto name = args.value(spec.flag)) value = *name;
        break;
    }
    if (std::holds_alternative<std::monostate>(value)) continue;
    spec.set(options, value);
    given.push_back(spec.name);
  }
  // Their errors name the field; the command line says it as the flag (flag_names.h).
  validate(options);
  api::check_options_apply(options.loss, given);
  return options;
}

}  // namespace sinkhorn::cli
