#include "gen/sample_pictures.h"

#include <cmath>
#include <vector>

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

void write_picture(const std::string& path, const io::Image& image) { io::write_png(path, image, "out_dir"); }

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
