// MNIST's IDX reader (gen::read_idx) on arbitrary bytes, raw or gzip: any magic, type and dimensions.
#include "fuzz_support.h"
#include "gen/data/image_datasets.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sinkhorn::gen::read_idx(sinkhorn::fuzz::input_file(data, size, "-idx3-ubyte"));
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
