// CIFAR-10's binary batch reader (gen::load_cifar10 on one batch file) on arbitrary bytes.
#include "fuzz_support.h"
#include "gen/data/image_datasets.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sinkhorn::gen::ImageSet set = sinkhorn::gen::load_cifar10(sinkhorn::fuzz::input_file(data, size, ".bin"));
    if (set.images.size(0) != set.labels.size(0)) __builtin_trap();
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
