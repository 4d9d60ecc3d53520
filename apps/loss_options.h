// The flags that set SinkhornOptions, shared by every command that computes a loss (divergence,
// train), so they read and validate the same way everywhere.
#pragma once

#include "arguments.h"
#include "sinkhorn/options.h"

namespace sinkhorn::cli {

/// Declares --loss, --p, --blur, --reach, --scaling, --diameter, --iterations, --tolerance,
/// --max-iterations, --gradient and --backend.
void add_loss_options(ArgumentParser& parser);

/// `defaults` with the flags given in args applied, validated; errors name the flag.
SinkhornOptions loss_options_from(const ParsedArguments& args, SinkhornOptions defaults = {});

}  // namespace sinkhorn::cli
