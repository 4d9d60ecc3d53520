#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // This machine's OpenMP default is 1 thread; run the suite with two like CI's machine has.
  at::set_num_threads(2);
  return RUN_ALL_TESTS();
}
