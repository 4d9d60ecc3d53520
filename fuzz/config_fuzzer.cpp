// A run's config.json (gen::train_config_from_json) on arbitrary text: what --resume trusts.
#include <string>

#include "gen/train_config.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sinkhorn::gen::TrainConfig config =
        sinkhorn::gen::train_config_from_json(std::string(reinterpret_cast<const char*>(data), size));
    sinkhorn::gen::validate(config);
    // A configuration it accepts must survive its own round trip.
    if (sinkhorn::gen::to_json(sinkhorn::gen::train_config_from_json(sinkhorn::gen::to_json(config))) !=
        sinkhorn::gen::to_json(config)) {
      __builtin_trap();
    }
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
