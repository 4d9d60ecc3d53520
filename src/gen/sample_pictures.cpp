#include "gen/sample_pictures.h"

#include <png.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "io/atomic_file.h"
#include "io/pictures.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

io::ScatterLayer layer_of(const at::Tensor& points, uint8_t r, uint8_t g, uint8_t b, int radius) {
  const at::Tensor xy = points.detach().to(at::kCPU, at::kFloat).contiguous();
  io::ScatterLayer layer;
  layer.xy.assign(xy.data_ptr<float>(), xy.data_ptr<float>() + xy.numel());
  layer.red = r, layer.green = g, layer.blue = b, layer.radius = radius;
  return layer;
}

io::Image grid_of(const at::Tensor& images, int64_t columns, int64_t padding) {
  const at::Tensor pixels = images.detach().to(at::kCPU, at::kFloat).contiguous();
  return io::image_grid(pixels.data_ptr<float>(), pixels.size(0), pixels.size(1), pixels.size(2), pixels.size(3),
                        columns, padding);
}

// The PNG file of `image`, in memory (libpng's simplified API), so that writing it is one checked
// atomic write.
std::vector<uint8_t> encode_png(const io::Image& image, const std::string& path) {
  SINKHORN_INTERNAL_CHECK(image.channels == 1 || image.channels == 3, "a picture with " << image.channels << " channels");
  png_image description;
  std::memset(&description, 0, sizeof(description));
  description.version = PNG_IMAGE_VERSION;
  description.width = static_cast<png_uint_32>(image.width);
  description.height = static_cast<png_uint_32>(image.height);
  description.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const auto stride = static_cast<png_int_32>(image.width * image.channels);
  png_alloc_size_t size = 0;
  // First call: the size only; second: the bytes.
  bool ok = png_image_write_to_memory(&description, nullptr, &size, 0, image.pixels.data(), stride, nullptr) != 0;
  std::vector<uint8_t> bytes(ok ? size : 0);
  if (ok) ok = png_image_write_to_memory(&description, bytes.data(), &size, 0, image.pixels.data(), stride, nullptr) != 0;
  const std::string message = description.message;
  png_image_free(&description);
  SINKHORN_CHECK_ARG(ok, "out_dir", "cannot encode the picture '" << path << "': " << message);
  bytes.resize(size);
  return bytes;
}

void write_picture(const std::string& path, const io::Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image, path);
  io::write_file_atomically(path, bytes.data(), bytes.size(), "out_dir");
}

}  // namespace

void check_picture_room(int64_t count, bool images, const std::string& argument) {
  const int64_t limit = images ? kMaxPictureImages : kMaxScatterPoints;
  SINKHORN_CHECK_ARG(count <= limit, argument,
                     count << " is more " << (images ? "images than a picture grid holds" : "points than a scatter plot draws")
                           << " (at most " << limit << "); write a .npy for more");
}

void write_samples_picture(const std::string& path, const at::Tensor& samples, const at::Tensor& reference) {
  if (samples.dim() == 2 && samples.size(1) == 2) {
    check_picture_room(samples.size(0), false, "samples");
    std::vector<io::ScatterLayer> layers;
    if (reference.defined()) layers.push_back(layer_of(reference, 70, 120, 220, 2));
    layers.push_back(layer_of(samples, 220, 50, 40, 1));
    write_picture(path, io::scatter_plot(layers));
    return;
  }
  SINKHORN_INTERNAL_CHECK(samples.dim() == 4, "pictures need 2-D points or (n, C, H, W) images");
  check_picture_room(samples.size(0), true, "samples");
  const int64_t columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(samples.size(0)))));
  write_picture(path, grid_of(samples, columns, 2));
}

void write_lattice_picture(const std::string& path, const at::Tensor& images, int64_t rows) {
  SINKHORN_INTERNAL_CHECK(images.dim() == 4 && images.size(0) == rows * rows, "the latent lattice needs rows^2 images");
  write_picture(path, grid_of(images, rows, 0));
}

}  // namespace sinkhorn::gen
