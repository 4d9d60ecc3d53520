#include "loss_options.h"

#include "api/option_table.h"
#include "sinkhorn/error.h"
#include "util/check.h"

namespace sinkhorn::cli {

bool on_by_default(const api::OptionSpec& spec) {
  const api::OptionValue value = spec.get(SinkhornOptions{});
  const bool* flag = std::get_if<bool>(&value);
  return spec.kind == api::OptionKind::flag && flag != nullptr && *flag;
}

// Every flag comes from the option table (src/api/option_table.h): its name, value, range and
// help line are declared there once.
void add_loss_options(ArgumentParser& parser) {
  for (const api::OptionSpec& spec : api::option_table()) {
    switch (spec.kind) {
      case api::OptionKind::flag:
        parser.flag(spec.flag, spec.doc);
        // A flag on by default is turned off by --no-<flag>.
        if (on_by_default(spec)) parser.flag(std::string("no-") + spec.flag, std::string("turn --") + spec.flag + " off");
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
        if (on_by_default(spec) && args.flag(std::string("no-") + spec.flag)) {
          SINKHORN_CHECK(!args.flag(spec.flag), "--" << spec.flag << " and --no-" << spec.flag << " exclude each other");
          value = false;
        }
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
