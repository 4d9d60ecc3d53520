// Every option of a solve, declared once (DESIGN.md section 3, "Declared once"): its name (the
// SinkhornOptions field, the training configuration's JSON key and the Python keyword are all
// this name), its command-line flag, a one-line doc, its kind, the losses it means something
// for, and how it is read from and written to SinkhornOptions. The command line's parser and
// --help (apps/loss_options.cpp), the training configuration's "loss" object
// (gen/train_config.cpp), the Python binding's keywords (python/src/module.cpp) and the ranks'
// agreement on a solve walk this table at run time; check_options_apply states once which
// options a loss ignores. tests/api/option_table_test.cpp sets every option to its `sample` value
// through each front end, so an option added here and not saved, restored, parsed or bound fails.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "sinkhorn/options.h"

namespace sinkhorn::api {

enum class OptionKind {
  number,            ///< a finite double
  optional_number,   ///< a double, or unset
  integer,           ///< an integer in [min, max]
  optional_integer,  ///< an integer in [min, max], or unset
  name,              ///< one of the names of an enum (loss, gradient, backend)
  flag,              ///< true or false
};

/// The losses an option means something for; the others ignore it, and a front end refuses it
/// when its user gives it (check_options_apply).
enum class OptionApplies {
  every_loss,
  /// The Sinkhorn losses (divergence, primal, ot_eps) and exact OT: the transport cost's options.
  transport,
  /// The Sinkhorn losses alone: the iterations' options.
  sinkhorn,
};

/// A value as the front ends carry it: unset, a number, an integer, a name or a flag.
using OptionValue = std::variant<std::monostate, double, long long, std::string, bool>;

struct OptionSpec {
  const char* name;        ///< "cluster_scale": field, JSON key and Python keyword
  const char* flag;        ///< "cluster-scale": the command line's --flag
  const char* value_name;  ///< "S": the flag's value in --help (empty for a flag option)
  const char* doc;         ///< one line for --help, docstrings and docs/
  OptionKind kind;
  OptionApplies applies;
  long long min = 0, max = 0;  ///< the range of an integer option
  OptionValue (*get)(const SinkhornOptions&);
  /// Writes the value; throws sinkhorn::Error naming the option when its kind is wrong or a name
  /// is unknown (ranges are validate()'s).
  void (*set)(SinkhornOptions&, const OptionValue&);
  /// A valid value away from the default, for the round-trip tests.
  OptionValue sample;
  /// The value of a training run whose configuration lacks the option (written before it existed
  /// or before its default changed); unset: the default.
  OptionValue when_absent{};
};

/// The options of SinkhornOptions, in the order --help lists them.
const std::vector<OptionSpec>& option_table();

/// The option named `name`, or nullptr.
const OptionSpec* find_option(const std::string& name);

/// The value as text: "none" for unset, numbers with 17 significant digits, names, true/false.
std::string to_text(const OptionValue& value);

/// Throws sinkhorn::Error naming the first of `given` (option names its user set) that `loss`
/// ignores: the transport options with a kernel MMD, the iterations' options with exact OT.
void check_options_apply(Loss loss, const std::vector<std::string>& given);

/// Every option's value, one "name=value" line each: what the ranks of a sharded solve compare.
std::string options_fingerprint(const SinkhornOptions& options);

}  // namespace sinkhorn::api
