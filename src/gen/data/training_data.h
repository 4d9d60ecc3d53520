// What the trainer draws batches from: a 2-D toy (fresh points every batch) or an image set held in
// memory as bytes (a random batch of it, scaled to [0, 1]), plus a fixed held-out sample for the
// evaluation divergence.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

namespace sinkhorn::gen {

struct DataSpec {
  /// ring8, grid25, swiss_roll, moons, ellipse, mnist or cifar10.
  std::string name = "ring8";
  /// For mnist / cifar10: a folder or file in the distributed format.
  std::string path;
  /// For mnist / cifar10: "train" or "test".
  std::string split = "train";
  /// Held-out samples for evaluation: toys draw them with a fixed seed; image sets keep their last
  /// `heldout` images out of training.
  int64_t heldout = 1000;
};

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  /// n samples, float32, shape (n, sample_shape...), drawn with `generator` on its device, which
  /// must be where the data was placed (the CPU unless place_on moved it).
  virtual at::Tensor sample(int64_t n, at::Generator& generator) const = 0;
  /// Moves what sample() reads (an image set's training bytes, a mixture's centres) to `device`,
  /// once, so that drawing there copies nothing. The held-out set stays on the CPU.
  virtual void place_on(const at::Device& device) = 0;
  /// The fixed held-out set, float32 (heldout, sample_shape...).
  virtual const at::Tensor& heldout() const = 0;
  /// (2) for toys, (C, H, W) for images.
  virtual std::vector<int64_t> sample_shape() const = 0;
  virtual int64_t training_size() const = 0;  ///< 0 for toys (unlimited)
  bool is_image() const { return sample_shape().size() == 3; }
  const std::string& name() const { return name_; }

 protected:
  std::string name_;
};

/// Loads or prepares the data; throws sinkhorn::Error naming the option on a bad spec or file.
std::unique_ptr<TrainingData> make_training_data(const DataSpec& spec);

}  // namespace sinkhorn::gen
