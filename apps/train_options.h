// The flags of `sinkhorn train` that set a training run's settings, from their table
// (src/gen/train_options.h): declared, read and refused on resume the same way for every setting.
#pragma once

#include <map>
#include <string>

#include "arguments.h"
#include "gen/train_config.h"
#include "gen/train_options.h"

namespace sinkhorn::cli {

/// Declares one flag per setting of the training table that has one (--data, --lr, --steps, ...).
void add_train_options(ArgumentParser& parser);

/// The recipe of --data and --cost (gen/recipes.h: the defaults a library user gets too) with the
/// settings' flags given in args on top, and the loss's flags on the recipe's loss. Errors name
/// the flag; the settings' ranges are validate()'s, run when the trainer starts.
gen::TrainConfig train_config_from(const ParsedArguments& args);

/// Whether --`flag` may be given with --resume: the settings a run may change when it continues
/// (the table's may_change_on_resume: --out, --steps, --lr, --device, --draw-on,
/// --data-parallel-solve) and the command's own --threads and --timeout.
bool may_change_on_resume(const std::string& flag);

/// The resumable settings given in args other than --out, --steps, --lr and --device (which
/// ResumeOverrides holds in fields of their own), by key: ResumeOverrides::settings.
std::map<std::string, gen::TrainValue> resumed_settings_from(const ParsedArguments& args);

/// The settings' flags a resume may give, for messages: "--steps, --lr, --device and ...".
std::string resumable_flags();

}  // namespace sinkhorn::cli
