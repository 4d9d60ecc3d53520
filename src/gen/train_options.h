// Every setting of a training run outside the loss, declared once (the loss's own options are the
// solve's table, api/option_table.h, kept in the configuration's "loss" object): its key (the
// TrainConfig field, its place in config.json and the checkpoint, and the argument an error
// names), its `sinkhorn train` flag, a one-line doc, its kind and range, whether a resume may
// change it, how it is read from and written to a TrainConfig, and a sample value away from the
// recipes' defaults. validate(), to_json() and train_config_from_json() (gen/train_config.cpp),
// the command line's flags, --help and its resume rule (apps/train_command.cpp), and the command
// line's words for errors (apps/flag_names.cpp) walk it at run time.
// The tests set every entry to its sample through each of them (tests/gen/trainer_test.cpp
// "TrainConfig", tests/apps/cli_test.cpp "TrainOptions"), so a setting added here and not saved,
// restored, parsed or checked fails there.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "gen/train_config.h"

namespace sinkhorn::gen {

enum class TrainOptionKind {
  integer,  ///< an integer in [range.min, range.max]
  number,   ///< a finite double above `minimum` (or equal to it, where `minimum_allowed`)
  text,     ///< text: a path, a folder, or a name checked where it is used (the data set, the networks)
  name,     ///< one of the names of an enum (cost, optimizer, schedule) or a device name
  shape,    ///< a list of sizes: the samples' shape, set from the data, never a flag
};

/// A setting's value as the front ends carry it.
using TrainValue = std::variant<long long, double, std::string, std::vector<int64_t>>;

struct TrainOptionSpec {
  const char* key;         ///< "data.heldout": the field, config.json's key (nested at the dot), errors' argument
  const char* flag;        ///< "heldout": `sinkhorn train --heldout`; "" for a setting no flag sets
  const char* value_name;  ///< "N": the flag's value in --help
  const char* doc;         ///< one line for --help and docs/
  TrainOptionKind kind;
  IntegerRange range{};          ///< the range of an integer setting
  double minimum = 0;            ///< a number setting is above this...
  bool minimum_allowed = false;  ///< ...or equal to it where this is set
  bool may_change_on_resume = false;  ///< --resume may give it anew (steps, lr, device)
  bool may_be_absent = false;  ///< a config.json written before the setting existed lacks it: its default
  std::function<TrainValue(const TrainConfig&)> get;
  /// Writes the value; throws sinkhorn::Error naming the key when a name is unknown (ranges are
  /// check_train_value()'s).
  std::function<void(TrainConfig&, const TrainValue&)> set;
  TrainValue sample;  ///< a valid value away from every recipe's default, for the round-trip tests
};

/// The settings, in the order --help lists them.
const std::vector<TrainOptionSpec>& train_option_table();

/// The setting whose key is `key` (e.g. "critic.width"), or nullptr.
const TrainOptionSpec* find_train_option(const std::string& key);

/// Throws sinkhorn::Error naming spec.key when `value` is outside the setting's range: integers in
/// their range, numbers above their minimum and finite, text not empty where it names a folder,
/// device names in the one grammar (platform/devices.h), sample shapes of a known form.
void check_train_value(const TrainOptionSpec& spec, const TrainValue& value);

/// The value as config.json and messages show it.
std::string to_text(const TrainValue& value);

}  // namespace sinkhorn::gen
