#include "gen/saved_generator.h"

#include <torch/nn.h>

#include <algorithm>

#include "gen/checkpoint.h"
#include "gen/models/networks.h"
#include "gen/run_folder.h"
#include "gen/seeds.h"
#include "io/file_bytes.h"
#include "io/npy_writer.h"
#include "util/check.h"

namespace sinkhorn::gen {

struct SavedGenerator::State {
  TrainConfig config;
  Generator generator{nullptr};
  at::Device device{at::kCPU};
  int64_t step = 0;
};

SavedGenerator::SavedGenerator(std::unique_ptr<State> state) : state_(std::move(state)) {}
SavedGenerator::SavedGenerator(SavedGenerator&&) noexcept = default;
SavedGenerator::~SavedGenerator() = default;

SavedGenerator SavedGenerator::load(const std::string& path, const at::Device& device) {
  SINKHORN_CHECK_ARG(io::path_exists(path), "checkpoint", "'" << path << "' does not exist");
  const std::string file = io::is_directory(path) ? path + "/" + kCheckpointFile : path;
  SINKHORN_CHECK_ARG(io::path_exists(file), "checkpoint", "'" << path << "' holds no " << kCheckpointFile);
  const Checkpoint checkpoint = Checkpoint::read(file, "checkpoint");
  auto state = std::make_unique<State>();
  state->config = checkpoint.config();
  state->step = checkpoint.step();
  // Any seed: the weights are overwritten by the saved ones.
  checkpoint.with_saved_settings(
      [&] { construct_seeded(0, [&] { state->generator = Generator(state->config.generator); }); });
  checkpoint.load_module("generator", *state->generator);
  state->generator->eval();
  state->generator->to(device);  // read onto the CPU (Checkpoint::read), then moved
  state->device = device;
  return SavedGenerator(std::move(state));
}

at::Tensor SavedGenerator::sample(int64_t n, uint64_t seed) {
  SINKHORN_CHECK_ARG(n >= 1, "n", "must be at least 1, got " << n);
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(mix(seed));
  return state_->generator->forward(state_->generator->sample_latent(n, generator).to(state_->device));
}

void SavedGenerator::sample_in_batches(int64_t n, uint64_t seed, int64_t batch,
                                       const std::function<void(const at::Tensor&)>& consume) {
  SINKHORN_CHECK_ARG(n >= 1, "n", "must be at least 1, got " << n);
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(mix(seed));
  // Two things make batches give the one-shot samples bit for bit. The latents: uniform ones are
  // drawn one number at a time, Gaussian ones (at::randn of 16 numbers or more) in blocks of 16,
  // the last 16 redrawn when the count is not a multiple of 16. And the layers: LibTorch's CPU
  // matrix products compute a row alike in any batch of 16 rows or more, not in smaller ones. So
  // every batch holds a multiple of 16 rows, and a last batch of fewer than 16 joins the one before.
  constexpr int64_t kRows = 16;
  batch = std::max<int64_t>(kRows, batch / kRows * kRows);
  for (int64_t done = 0; done < n;) {
    int64_t size = std::min(batch, n - done);
    if (n - done - size < kRows) size = n - done;
    consume(state_->generator->forward(state_->generator->sample_latent(size, generator).to(state_->device)));
    done += size;
  }
}

at::Tensor SavedGenerator::decode_lattice(int64_t rows) {
  SINKHORN_CHECK_ARG(rows >= 2, "lattice", "must be at least 2 rows, got " << rows);
  torch::NoGradGuard no_grad;
  return state_->generator->forward(state_->generator->latent_lattice(rows).to(state_->device));
}

const TrainConfig& SavedGenerator::config() const { return state_->config; }
int64_t SavedGenerator::step() const { return state_->step; }

void write_samples_npy(SavedGenerator& generator, const std::string& path, int64_t n, uint64_t seed, int64_t batch) {
  std::vector<int64_t> shape{n};
  const std::vector<int64_t>& sample_shape = generator.config().generator.sample_shape;
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  io::NpyWriter writer(path, "float32", shape, "out_dir");
  generator.sample_in_batches(n, seed, batch, [&](const at::Tensor& samples) {
    const at::Tensor values = samples.to(at::kCPU, at::kFloat).contiguous();
    writer.append(values.data_ptr<float>(), static_cast<size_t>(values.numel()));
  });
  writer.finish();
}

}  // namespace sinkhorn::gen
