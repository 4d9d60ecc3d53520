// The .npy reader (io::read_npy) on arbitrary bytes: headers claiming any shape, dtype or length.
#include "fuzz_support.h"
#include "io/array_io.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sinkhorn::io::Array array = sinkhorn::io::read_npy(sinkhorn::fuzz::input_file(data, size, ".npy"));
    // What it returns must be self-consistent: as many values as the shape says.
    size_t count = 1;
    for (const int64_t dim : array.shape) count *= static_cast<size_t>(dim);
    if (count != array.values.size()) __builtin_trap();
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
