#include "gen/data/training_data.h"

#include <ATen/CPUGeneratorImpl.h>

#include "gen/data/image_datasets.h"
#include "gen/data/toy2d.h"
#include "io/file_bytes.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

// A fixed seed for the held-out toy sample: every run, whatever its --seed, is scored on the same points.
constexpr uint64_t kHeldoutSeed = 0x5eed0fda7aULL;

class ToyData final : public TrainingData {
 public:
  ToyData(const std::string& name, int64_t heldout) {
    name_ = name;
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(kHeldoutSeed);
    heldout_ = sample_toy(name, heldout, generator);
    modes_ = toy_modes(name);
  }
  at::Tensor sample(int64_t n, at::Generator& generator) const override {
    return sample_toy(name_, modes_, n, generator);
  }
  void place_on(const at::Device& device) override {
    if (modes_.centres.defined()) modes_.centres = modes_.centres.to(device);
  }
  const at::Tensor& heldout() const override { return heldout_; }
  std::vector<int64_t> sample_shape() const override { return {2}; }
  int64_t training_size() const override { return 0; }

 private:
  at::Tensor heldout_;
  ToyModes modes_;
};

class ImageData final : public TrainingData {
 public:
  ImageData(const std::string& name, const at::Tensor& images, int64_t heldout) {
    name_ = name;
    const int64_t n = images.size(0);
    SINKHORN_CHECK_ARG(heldout < n, "data.heldout",
                       heldout << " must leave training images (the set has " << n << ")");
    train_ = images.narrow(0, 0, n - heldout);
    heldout_ = to_unit(images.narrow(0, n - heldout, heldout));
  }
  at::Tensor sample(int64_t n, at::Generator& generator) const override {
    SINKHORN_CHECK(train_.device() == generator.device(),
                   "the " << name_ << " images are on " << train_.device() << ", the generator on " << generator.device());
    const at::Tensor index =
        at::randint(train_.size(0), {n}, generator, at::TensorOptions().dtype(at::kLong).device(train_.device()));
    return to_unit(train_.index_select(0, index));
  }
  void place_on(const at::Device& device) override { train_ = train_.to(device); }
  const at::Tensor& heldout() const override { return heldout_; }
  std::vector<int64_t> sample_shape() const override { return train_.sizes().slice(1).vec(); }
  int64_t training_size() const override { return train_.size(0); }

 private:
  static at::Tensor to_unit(const at::Tensor& bytes) { return bytes.to(at::kFloat) / 255.0; }
  at::Tensor train_;  // uint8: a quarter of the memory of floats (CIFAR-10: 150 MB, not 600)
  at::Tensor heldout_;
};

}  // namespace

std::unique_ptr<TrainingData> make_training_data(const DataSpec& spec) {
  SINKHORN_CHECK_ARG(spec.heldout >= 1, "data.heldout", "must be at least 1, got " << spec.heldout);
  if (is_toy(spec.name)) return std::make_unique<ToyData>(spec.name, spec.heldout);
  if (spec.name == "mnist" || spec.name == "cifar10") {
    SINKHORN_CHECK_ARG(!spec.path.empty(), "data.path",
                       "must name a folder or file in the " << (spec.name == "mnist" ? "IDX" : "CIFAR-10 binary")
                                                            << " format for " << spec.name);
    SINKHORN_CHECK_ARG(io::path_exists(spec.path), "data.path", "'" << spec.path << "' does not exist");
    const ImageSet set = spec.name == "mnist" ? load_mnist(spec.path, spec.split) : load_cifar10(spec.path, spec.split);
    return std::make_unique<ImageData>(spec.name, set.images, spec.heldout);
  }
  SINKHORN_CHECK_ARG(false, "data.name",
                     "must be one of ring8, grid25, swiss_roll, moons, ellipse, mnist, cifar10; got '" << spec.name << "'");
  return nullptr;
}

}  // namespace sinkhorn::gen
