// Kernel benchmarks (Google Benchmark): the online reductions in pairs per second, beside this
// machine's vectorised exp throughput, the ceiling of a reduction that costs one exp per pair
// (docs/benchmarks.md). Thread count: SINKHORN_BENCH_THREADS, default every core.
//
//   make bench && build/bench/sinkhorn_kernels_benchmark
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "reduce/cpu/online_kernels.h"
#include "reduce/cpu/online_reducer.h"
#include "reduce/cost_matrix.h"
#include "reduce/tensorized/tensorized_reducer.h"

namespace {

int bench_threads() {
  const char* requested = std::getenv("SINKHORN_BENCH_THREADS");
  return requested ? std::atoi(requested) : static_cast<int>(std::thread::hardware_concurrency());
}

// exp throughput: every thread sums exp over its own 64k-entry buffer (L2-resident), as the
// kernels' second pass does over its tiles.
template <typename T>
void BM_ExpCeiling(benchmark::State& state) {
  const int threads = bench_threads();
  constexpr int64_t kCount = 1 << 16;
  std::vector<std::vector<T>> buffers(threads, std::vector<T>(kCount));
  for (auto& buffer : buffers)
    for (int64_t i = 0; i < kCount; ++i) buffer[i] = static_cast<T>(-(i % 1000) * 0.01);
  double sink = 0;
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads) reduction(+ : sink)
    for (int t = 0; t < threads; ++t) sink += sinkhorn::reduce::cpu::sum_of_exponentials(buffers[t].data(), kCount);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations() * kCount * threads);
  state.counters["threads"] = threads;
}
BENCHMARK_TEMPLATE(BM_ExpCeiling, float)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_ExpCeiling, double)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One softmin reduction over N x N pairs (items = pairs).
template <typename T>
void BM_OnlineSoftmin(benchmark::State& state) {
  at::set_num_threads(bench_threads());
  const int64_t n = state.range(0), d = state.range(1);
  const int p = static_cast<int>(state.range(2));
  const at::ScalarType dtype = sizeof(T) == 4 ? at::kFloat : at::kDouble;
  at::manual_seed(0);
  const at::Tensor x = at::randn({1, n, d}, dtype), y = at::randn({1, n, d}, dtype), h = at::randn({1, n}, dtype);
  const auto reducer = sinkhorn::reduce::make_online_cpu_reducer(p);
  for (auto _ : state) benchmark::DoNotOptimize(reducer->softmin(x, y, h, 0.1));
  state.SetItemsProcessed(state.iterations() * n * n);
}
BENCHMARK_TEMPLATE(BM_OnlineSoftmin, float)
    ->ArgsProduct({{200, 1000, 5000}, {3, 16, 32, 64}, {2}})
    ->Args({5000, 3, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_OnlineSoftmin, double)->Args({5000, 3, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

// The envelope gradient's reduction (D multiply-adds more per pair).
void BM_OnlineGradient(benchmark::State& state) {
  at::set_num_threads(bench_threads());
  const int64_t n = state.range(0), d = state.range(1);
  at::manual_seed(0);
  const at::Tensor x = at::randn({1, n, d}), y = at::randn({1, n, d}), h = at::randn({1, n});
  const auto reducer = sinkhorn::reduce::make_online_cpu_reducer(2);
  for (auto _ : state) benchmark::DoNotOptimize(reducer->softmax_cost_gradient(x, y, h, 0.1));
  state.SetItemsProcessed(state.iterations() * n * n);
}
BENCHMARK(BM_OnlineGradient)->ArgsProduct({{5000}, {3, 64}})->Unit(benchmark::kMillisecond)->UseRealTime();

// The tensorized backend on the same problem: its dense kernel over the cost matrix it keeps
// (computed once, at the first call).
void BM_TensorizedSoftmin(benchmark::State& state) {
  at::set_num_threads(bench_threads());
  const int64_t n = state.range(0), d = state.range(1);
  at::manual_seed(0);
  const at::Tensor x = at::randn({1, n, d}), y = at::randn({1, n, d}), h = at::randn({1, n});
  const auto reducer = sinkhorn::reduce::make_tensorized_reducer(2);
  for (auto _ : state) benchmark::DoNotOptimize(reducer->softmin(x, y, h, 0.1));
  state.SetItemsProcessed(state.iterations() * n * n);
}
BENCHMARK(BM_TensorizedSoftmin)->ArgsProduct({{200, 500, 1000, 5000}, {3, 16, 64}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
