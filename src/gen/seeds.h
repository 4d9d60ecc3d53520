// The random streams of a run. Every step draws from its own generator, seeded by (seed, step), so
// a step's randomness is a function of the step alone: --resume is exact without saving any
// random-number-generator state.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <cstdint>
#include <mutex>

namespace sinkhorn::gen {

/// SplitMix64's finaliser: decorrelates nearby seeds.
inline uint64_t mix(uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

/// The seed of stream `stream` of a run seeded with `seed`.
inline uint64_t stream_seed(uint64_t seed, uint64_t stream) { return mix(seed ^ mix(stream)); }

/// A CPU generator for stream `stream` of a run seeded with `seed`.
inline at::Generator generator_for(uint64_t seed, uint64_t stream) {
  return at::make_generator<at::CPUGeneratorImpl>(stream_seed(seed, stream));
}

/// A generator of `device`'s kind for stream `stream` (a CUDA device: Philox, counter 0). On the
/// CPU it draws what generator_for(seed, stream) draws: the default generator's clone is reseeded,
/// which restarts the Mersenne twister and drops a cached Gaussian, whatever the default's state.
inline at::Generator generator_for(uint64_t seed, uint64_t stream, const at::Device& device) {
  at::Generator default_generator = at::globalContext().defaultGenerator(device);
  at::Generator generator;
  {
    // Another thread may be drawing from the default generator: clone a consistent state.
    const std::lock_guard<std::mutex> lock(default_generator.mutex());
    generator = default_generator.clone();
  }
  generator.set_current_seed(stream_seed(seed, stream));
  return generator;
}

/// Stream numbers: steps use 1, 2, ...; these are far from any step count.
inline constexpr uint64_t kEvaluationStream = ~uint64_t{0};
inline constexpr uint64_t kInitialisationStream = ~uint64_t{0} - 1;

}  // namespace sinkhorn::gen
