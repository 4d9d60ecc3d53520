// The .csv reader (io::read_csv) on arbitrary text: separators, headers, byte-order marks, ragged rows.
#include "fuzz_support.h"
#include "io/array_io.h"
#include "sinkhorn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sinkhorn::io::Array array = sinkhorn::io::read_csv(sinkhorn::fuzz::input_file(data, size, ".csv"));
    if (array.shape.size() != 2 || static_cast<size_t>(array.shape[0] * array.shape[1]) != array.values.size()) {
      __builtin_trap();
    }
  } catch (const sinkhorn::Error&) {
  }
  return 0;
}
