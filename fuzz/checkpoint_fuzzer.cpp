// checkpoint.pt on arbitrary bytes: the zip directory walk and CRC check (io::verify_zip) on the
// bytes themselves, then the whole load `sinkhorn sample` does (gen::SavedGenerator::load).
#include <string_view>

#include "fuzz_support.h"
#include "gen/checkpoint.h"
#include "gen/saved_generator.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sinkhorn::io::verify_zip(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz", "checkpoint");
  } catch (const sinkhorn::Error&) {
  }
  try {
    sinkhorn::gen::SavedGenerator::load(sinkhorn::fuzz::input_file(data, size, ".pt"));
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
