// The flags that set SinkhornOptions, shared by every command that computes a loss (divergence,
// train), so they read and validate the same way everywhere.
#pragma once

#include "arguments.h"
#include "api/option_table.h"
#include "sinkhorn/options.h"

namespace sinkhorn::cli {

/// Declares one flag per option of the option table (src/api/option_table.h): --loss, --p, --blur,
/// --reach, --scaling, --diameter, --cluster-scale, --tolerance, --max-iterations, --iterations,
/// --gradient, --backend, --coarse-correction (and --no-coarse-correction).
void add_loss_options(ArgumentParser& parser);

/// A flag option whose default is on (the command line then also has --no-<flag>).
bool on_by_default(const api::OptionSpec& spec);

/// `defaults` with the flags given in args applied, validated, and the given flags checked against
/// the loss (api::check_options_apply: --reach with --loss energy is refused); errors name the flag.
SinkhornOptions loss_options_from(const ParsedArguments& args, SinkhornOptions defaults = {});

}  // namespace sinkhorn::cli
