// The networks of the generative models: generators g_theta (latent z -> sample) and critics f_phi
// (sample -> features, defining the learned cost c_phi(x, y) = |f_phi(x) - f_phi(y)|), as LibTorch
// modules.
#pragma once

#include <torch/nn.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sinkhorn::gen {

struct GeneratorSpec {
  /// "mlp" (latent -> hidden -> hidden -> sample, softplus; the paper's MNIST model) or "dcgan"
  /// (transposed convolutions with batch norm, for 28 x 28 and 32 x 32 images).
  std::string architecture = "mlp";
  /// Dimension of the latent z.
  int64_t latent_dim = 2;
  /// "uniform" (on [-1, 1]^latent_dim, the paper's choice) or "gaussian".
  std::string latent = "uniform";
  /// Width of the MLP's two hidden layers.
  int64_t hidden = 500;
  /// The MLP's hidden activation: "softplus" (the paper's) or "relu" (sharper: tears a connected
  /// latent into separate modes sooner).
  std::string activation = "softplus";
  /// DCGAN: channels of the last hidden layer (doubled at each coarser layer).
  int64_t width = 64;
  /// Shape of one sample: (2) for toys, (C, H, W) for images (then the output goes through a sigmoid).
  std::vector<int64_t> sample_shape{2};
};

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(GeneratorSpec spec);
  /// (n, latent_dim) -> (n, sample_shape...).
  torch::Tensor forward(const torch::Tensor& z);
  /// n latent vectors drawn from the latent distribution with `generator`, on its device.
  torch::Tensor sample_latent(int64_t n, at::Generator& generator) const;
  /// A rows x rows lattice spanning the latent square (uniform: [-1, 1]^2; gaussian: +-2 std),
  /// row-major, for the latent-manifold picture of a 2-D latent.
  torch::Tensor latent_lattice(int64_t rows) const;
  const GeneratorSpec& spec() const { return spec_; }

 private:
  GeneratorSpec spec_;
  torch::nn::Sequential head_{nullptr};  // MLP: everything; DCGAN: the linear layer to a coarse grid
  torch::nn::Sequential body_{nullptr};  // DCGAN: the transposed convolutions
  std::vector<int64_t> coarse_shape_;    // DCGAN: (channels, side, side) after the head
};
TORCH_MODULE(Generator);

struct CriticSpec {
  /// "mlp" (two hidden layers, leaky ReLU) or "dcgan" (strided convolutions, for images).
  std::string architecture = "mlp";
  /// Dimension of the features f_phi(x) the cost compares.
  int64_t feature_dim = 16;
  /// MLP: hidden width; DCGAN: channels of the first convolution (doubled at each layer).
  int64_t width = 64;
  /// Shape of one input sample.
  std::vector<int64_t> sample_shape{2};
};

class CriticImpl : public torch::nn::Module {
 public:
  explicit CriticImpl(CriticSpec spec);
  /// (n, sample_shape...) -> (n, feature_dim).
  torch::Tensor forward(const torch::Tensor& x);
  /// Clamps every parameter into [-bound, bound] (weight clipping, as in WGAN and MMD GAN).
  void clip_weights(double bound);
  const CriticSpec& spec() const { return spec_; }

 private:
  CriticSpec spec_;
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(Critic);

/// True when every element of `tensor` is finite (no NaN, no infinity).
bool all_finite(const at::Tensor& tensor);
/// True when every parameter and buffer of `module` is finite.
bool all_finite(const torch::nn::Module& module);

/// Number of trainable scalars of a module.
int64_t parameter_count(const torch::nn::Module& module);

/// Runs `construct` (which builds modules: LibTorch draws their initial weights from its global
/// CPU generator) with that generator seeded with `seed`, and puts its state back afterwards, so
/// that building networks neither depends on nor changes the rest of the program's random draws.
/// Calls are serialised; a thread drawing from the global generator meanwhile is not excluded.
void construct_seeded(uint64_t seed, const std::function<void()>& construct);

}  // namespace sinkhorn::gen
