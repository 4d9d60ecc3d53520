#include "gen/models/networks.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <mutex>

#include "util/check.h"

namespace sinkhorn::gen {
namespace {

namespace nn = torch::nn;

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool is_image_shape(const std::vector<int64_t>& shape) { return shape.size() == 3; }

// The side of DCGAN's coarsest grid and how many stride-2 layers lead from it to the image.
std::pair<int64_t, int64_t> dcgan_geometry(const std::vector<int64_t>& shape, const char* who) {
  SINKHORN_CHECK_ARG(is_image_shape(shape) && shape[1] == shape[2] && (shape[1] == 28 || shape[1] == 32),
                     std::string(who) + ".architecture", "dcgan needs square 28 x 28 or 32 x 32 images");
  return shape[1] == 28 ? std::pair<int64_t, int64_t>{7, 2} : std::pair<int64_t, int64_t>{4, 3};
}

nn::ConvTranspose2dOptions up(int64_t in, int64_t out) { return nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1); }
nn::Conv2dOptions down(int64_t in, int64_t out) { return nn::Conv2dOptions(in, out, 4).stride(2).padding(1); }

}  // namespace

GeneratorImpl::GeneratorImpl(GeneratorSpec spec) : spec_(std::move(spec)) {
  SINKHORN_CHECK_ARG(spec_.latent_dim >= 1, "generator.latent_dim", "must be positive, got " << spec_.latent_dim);
  SINKHORN_CHECK_ARG(spec_.latent == "uniform" || spec_.latent == "gaussian", "generator.latent",
                     "must be 'uniform' or 'gaussian', got '" << spec_.latent << "'");
  SINKHORN_CHECK(!spec_.sample_shape.empty() && product(spec_.sample_shape) > 0, "the generator needs a sample shape");
  const bool image = is_image_shape(spec_.sample_shape);
  if (spec_.architecture == "mlp") {
    SINKHORN_CHECK_ARG(spec_.hidden >= 1, "generator.hidden", "must be positive, got " << spec_.hidden);
    SINKHORN_CHECK_ARG(spec_.activation == "softplus" || spec_.activation == "relu", "generator.activation",
                       "must be 'softplus' or 'relu', got '" << spec_.activation << "'");
    const auto activation = [&]() -> nn::AnyModule {
      if (spec_.activation == "relu") return nn::AnyModule(nn::ReLU());
      return nn::AnyModule(nn::Softplus());
    };
    head_ = nn::Sequential();
    head_->push_back(nn::Linear(spec_.latent_dim, spec_.hidden));
    head_->push_back(activation());
    head_->push_back(nn::Linear(spec_.hidden, spec_.hidden));
    head_->push_back(activation());
    head_->push_back(nn::Linear(spec_.hidden, product(spec_.sample_shape)));
    if (image) head_->push_back(nn::Sigmoid());
    register_module("head", head_);
  } else if (spec_.architecture == "dcgan") {
    SINKHORN_CHECK_ARG(spec_.width >= 1, "generator.width", "must be positive, got " << spec_.width);
    const auto [side, layers] = dcgan_geometry(spec_.sample_shape, "generator");
    int64_t channels = spec_.width << (layers - 1);
    coarse_shape_ = {channels, side, side};
    head_ = nn::Sequential(nn::Linear(spec_.latent_dim, channels * side * side), nn::BatchNorm1d(channels * side * side),
                           nn::ReLU());
    body_ = nn::Sequential();
    for (int64_t layer = 0; layer + 1 < layers; ++layer) {
      body_->push_back(nn::ConvTranspose2d(up(channels, channels / 2)));
      body_->push_back(nn::BatchNorm2d(channels / 2));
      body_->push_back(nn::ReLU());
      channels /= 2;
    }
    body_->push_back(nn::ConvTranspose2d(up(channels, spec_.sample_shape[0])));
    body_->push_back(nn::Sigmoid());
    register_module("head", head_);
    register_module("body", body_);
  } else {
    SINKHORN_CHECK_ARG(false, "generator.architecture", "must be 'mlp' or 'dcgan', got '" << spec_.architecture << "'");
  }
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z) {
  SINKHORN_CHECK(z.dim() == 2 && z.size(1) == spec_.latent_dim,
                 "the generator takes latents of shape (n, " << spec_.latent_dim << ")");
  std::vector<int64_t> out_shape{z.size(0)};
  out_shape.insert(out_shape.end(), spec_.sample_shape.begin(), spec_.sample_shape.end());
  if (spec_.architecture == "mlp") return head_->forward(z).view(out_shape);
  std::vector<int64_t> coarse{z.size(0)};
  coarse.insert(coarse.end(), coarse_shape_.begin(), coarse_shape_.end());
  return body_->forward(head_->forward(z).view(coarse));
}

torch::Tensor GeneratorImpl::sample_latent(int64_t n, at::Generator& generator) const {
  const auto options = at::TensorOptions().dtype(at::kFloat).device(generator.device());
  if (spec_.latent == "gaussian") return at::randn({n, spec_.latent_dim}, generator, options);
  return 2 * at::rand({n, spec_.latent_dim}, generator, options) - 1;
}

torch::Tensor GeneratorImpl::latent_lattice(int64_t rows) const {
  SINKHORN_CHECK(spec_.latent_dim == 2, "the latent lattice needs a 2-D latent, this generator has " << spec_.latent_dim);
  const double extent = spec_.latent == "gaussian" ? 2.0 : 1.0;
  const at::Tensor axis = at::linspace(-extent, extent, rows, at::kFloat);
  const auto grid = at::meshgrid({axis, axis}, "ij");
  // Row index -> second latent coordinate (top = +extent), column -> first: the picture reads like a plot.
  return at::stack({grid[1].reshape(-1), grid[0].flip(0).reshape(-1)}, 1);
}

CriticImpl::CriticImpl(CriticSpec spec) : spec_(std::move(spec)) {
  SINKHORN_CHECK_ARG(spec_.feature_dim >= 1, "critic.feature_dim", "must be positive, got " << spec_.feature_dim);
  SINKHORN_CHECK_ARG(spec_.width >= 1, "critic.width", "must be positive, got " << spec_.width);
  const auto leaky = [] { return nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)); };
  if (spec_.architecture == "mlp") {
    body_ = nn::Sequential(nn::Flatten(), nn::Linear(product(spec_.sample_shape), spec_.width), leaky(),
                           nn::Linear(spec_.width, spec_.width), leaky(), nn::Linear(spec_.width, spec_.feature_dim));
  } else if (spec_.architecture == "dcgan") {
    const auto [side, layers] = dcgan_geometry(spec_.sample_shape, "critic");
    body_ = nn::Sequential();
    int64_t channels = spec_.sample_shape[0];
    for (int64_t layer = 0; layer < layers; ++layer) {
      const int64_t next = spec_.width << layer;
      body_->push_back(nn::Conv2d(down(channels, next)));
      body_->push_back(leaky());
      channels = next;
    }
    body_->push_back(nn::Flatten());
    body_->push_back(nn::Linear(channels * side * side, spec_.feature_dim));
  } else {
    SINKHORN_CHECK_ARG(false, "critic.architecture", "must be 'mlp' or 'dcgan', got '" << spec_.architecture << "'");
  }
  register_module("body", body_);
}

torch::Tensor CriticImpl::forward(const torch::Tensor& x) { return body_->forward(x); }

void CriticImpl::clip_weights(double bound) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : parameters()) parameter.clamp_(-bound, bound);
}

namespace {

// One pass over the bits: a float is finite unless its exponent field is all ones. ATen's
// isfinite().all() makes four passes (self == self, abs, != inf, and) and a bool tensor, which
// for the generator's gradients was 1.7 ms of a 29 ms training step.
template <typename T, typename Bits>
bool all_finite_on_host(const at::Tensor& tensor) {
  constexpr Bits exponent = static_cast<Bits>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  const T* values = tensor.data_ptr<T>();
  const int64_t count = tensor.numel();
  Bits saturated = 0;  // nonzero once an exponent field is all ones
  for (int64_t i = 0; i < count; ++i) {
    Bits bits;
    std::memcpy(&bits, values + i, sizeof bits);
    saturated |= static_cast<Bits>((bits & exponent) == exponent);
  }
  return saturated == 0;
}

}  // namespace

bool all_finite(const at::Tensor& tensor) {
  if (tensor.device().is_cpu() && tensor.is_contiguous()) {
    if (tensor.scalar_type() == at::kFloat) return all_finite_on_host<float, uint32_t>(tensor);
    if (tensor.scalar_type() == at::kDouble) return all_finite_on_host<double, uint64_t>(tensor);
  }
  return tensor.isfinite().all().item<bool>();
}

bool all_finite(const torch::nn::Module& module) {
  for (const auto& tensor : module.parameters()) {
    if (!all_finite(tensor)) return false;
  }
  for (const auto& tensor : module.buffers()) {
    if (!all_finite(tensor)) return false;
  }
  return true;
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

void construct_seeded(uint64_t seed, const std::function<void()>& construct) {
  static std::mutex serialised;
  const std::lock_guard<std::mutex> one_at_a_time(serialised);
  at::Generator global = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    const std::lock_guard<std::mutex> lock(global.mutex());
    saved = global.get_state();
    global.set_current_seed(seed);
  }
  // Restored on the way out, exceptions included (a bad spec throws from a constructor).
  struct Restore {
    at::Generator& global;
    const at::Tensor& saved;
    ~Restore() {
      const std::lock_guard<std::mutex> lock(global.mutex());
      global.set_state(saved);
    }
  } restore{global, saved};
  construct();
}

}  // namespace sinkhorn::gen
