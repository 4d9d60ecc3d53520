#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // CTest runs one test process per core (make test: ctest -j $(nproc)); more threads per process
  // would oversubscribe the cores, and OpenMP's spin-waiting makes that ten times slower.
  // SINKHORN_TEST_THREADS overrides, e.g. when running the binary alone.
  const char* threads = std::getenv("SINKHORN_TEST_THREADS");
  at::set_num_threads(threads ? std::max(1, std::atoi(threads)) : 1);
  return RUN_ALL_TESTS();
}
