#include "io/pictures.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "io/atomic_file.h"
#include "util/check.h"

namespace sinkhorn::io {

Image::Image(int64_t height_, int64_t width_, int64_t channels_, uint8_t fill)
    : height(height_), width(width_), channels(channels_),
      pixels(static_cast<size_t>(height_ * width_ * channels_), fill) {}

void write_png(const std::string& path, const Image& img, const std::string& argument) {
  SINKHORN_INTERNAL_CHECK(img.channels == 1 || img.channels == 3, "write_png: a picture with " << img.channels
                                                                                              << " channels");
  SINKHORN_INTERNAL_CHECK(img.height > 0 && img.width > 0 &&
                              img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
                          "write_png: the image's pixel buffer does not match its size");
  // Encoded in memory (libpng's simplified API), so that writing it is one checked atomic write.
  png_image description;
  std::memset(&description, 0, sizeof(description));
  description.version = PNG_IMAGE_VERSION;
  description.width = static_cast<png_uint_32>(img.width);
  description.height = static_cast<png_uint_32>(img.height);
  description.format = img.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const auto stride = static_cast<png_int_32>(img.width * img.channels);
  png_alloc_size_t size = 0;
  // First call: the size only; second: the bytes.
  bool ok = png_image_write_to_memory(&description, nullptr, &size, 0, img.pixels.data(), stride, nullptr) != 0;
  std::vector<uint8_t> bytes(ok ? size : 0);
  if (ok) ok = png_image_write_to_memory(&description, bytes.data(), &size, 0, img.pixels.data(), stride, nullptr) != 0;
  const std::string message = description.message;
  png_image_free(&description);
  if (!ok && argument.empty()) throw Error("cannot encode the picture '" + path + "': " + message);
  SINKHORN_CHECK_ARG(ok, argument, "cannot encode the picture '" << path << "': " << message);
  write_file_atomically(path, bytes.data(), size, argument);
}

Image read_png(const std::string& path) {
  png_image description;
  std::memset(&description, 0, sizeof(description));
  description.version = PNG_IMAGE_VERSION;
  SINKHORN_CHECK(png_image_begin_read_from_file(&description, path.c_str()),
                 "cannot read PNG file '" << path << "': " << description.message);
  const bool grey = (description.format & PNG_FORMAT_FLAG_COLOR) == 0;
  description.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image img(description.height, description.width, grey ? 1 : 3, 0);
  const int ok = png_image_finish_read(&description, nullptr, img.pixels.data(), 0, nullptr);
  const std::string message = description.message;
  png_image_free(&description);
  SINKHORN_CHECK(ok, "cannot read PNG file '" << path << "': " << message);
  return img;
}

Image image_grid(const float* images, int64_t count, int64_t channels, int64_t height, int64_t width,
                 int64_t columns, int64_t padding) {
  SINKHORN_CHECK(count > 0 && columns > 0 && height > 0 && width > 0, "image_grid: nothing to draw");
  SINKHORN_CHECK(channels == 1 || channels == 3, "image_grid: images have 1 or 3 channels, got " << channels);
  const int64_t rows = (count + columns - 1) / columns;
  Image grid(padding + rows * (height + padding), padding + columns * (width + padding), channels, 128);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t top = padding + (k / columns) * (height + padding);
    const int64_t left = padding + (k % columns) * (width + padding);
    for (int64_t c = 0; c < channels; ++c) {
      const float* plane = images + (k * channels + c) * height * width;
      for (int64_t i = 0; i < height; ++i) {
        for (int64_t j = 0; j < width; ++j) {
          const float v = std::clamp(plane[i * width + j], 0.0f, 1.0f);
          grid.pixels[((top + i) * grid.width + left + j) * channels + c] =
              static_cast<uint8_t>(std::lround(v * 255.0f));
        }
      }
    }
  }
  return grid;
}

namespace {

void put_pixel(Image& img, int64_t row, int64_t col, uint8_t r, uint8_t g, uint8_t b) {
  if (row < 0 || col < 0 || row >= img.height || col >= img.width) return;
  uint8_t* p = &img.pixels[(row * img.width + col) * 3];
  p[0] = r;
  p[1] = g;
  p[2] = b;
}

}  // namespace

Image scatter_plot(const std::vector<ScatterLayer>& layers, int64_t size) {
  SINKHORN_CHECK(size >= 16, "scatter_plot: size must be at least 16 pixels, got " << size);
  float lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
  for (const ScatterLayer& layer : layers) {
    SINKHORN_CHECK(layer.xy.size() % 2 == 0, "scatter_plot: a layer has an odd number of coordinates");
    for (size_t k = 0; k < layer.xy.size(); k += 2) {
      if (!std::isfinite(layer.xy[k]) || !std::isfinite(layer.xy[k + 1])) continue;
      lo_x = std::min(lo_x, layer.xy[k]);
      hi_x = std::max(hi_x, layer.xy[k]);
      lo_y = std::min(lo_y, layer.xy[k + 1]);
      hi_y = std::max(hi_y, layer.xy[k + 1]);
    }
  }
  if (!(lo_x <= hi_x)) lo_x = lo_y = -1, hi_x = hi_y = 1;  // no finite point: an empty unit frame
  // One scale for both axes (a circle stays a circle), centred, with a 5% margin.
  const float span = std::max({hi_x - lo_x, hi_y - lo_y, 1e-6f}) * 1.1f;
  const float centre_x = 0.5f * (lo_x + hi_x), centre_y = 0.5f * (lo_y + hi_y);
  const float scale = static_cast<float>(size - 1) / span;
  auto column_of = [&](float x) { return static_cast<int64_t>(std::lround((x - centre_x) * scale + 0.5f * (size - 1))); };
  auto row_of = [&](float y) { return static_cast<int64_t>(std::lround((centre_y - y) * scale + 0.5f * (size - 1))); };

  Image img(size, size, 3, 255);
  // Grid lines at integer coordinates (when they are not too dense), the axes through 0 darker.
  if (span < size / 4.0f) {
    for (int64_t t = static_cast<int64_t>(std::ceil(centre_x - span / 2)); t <= centre_x + span / 2; ++t) {
      const uint8_t shade = t == 0 ? 170 : 225;
      for (int64_t r = 0; r < size; ++r) put_pixel(img, r, column_of(static_cast<float>(t)), shade, shade, shade);
    }
    for (int64_t t = static_cast<int64_t>(std::ceil(centre_y - span / 2)); t <= centre_y + span / 2; ++t) {
      const uint8_t shade = t == 0 ? 170 : 225;
      for (int64_t c = 0; c < size; ++c) put_pixel(img, row_of(static_cast<float>(t)), c, shade, shade, shade);
    }
  }
  for (const ScatterLayer& layer : layers) {
    const int radius = std::max(0, layer.radius);
    for (size_t k = 0; k < layer.xy.size(); k += 2) {
      if (!std::isfinite(layer.xy[k]) || !std::isfinite(layer.xy[k + 1])) continue;
      const int64_t row = row_of(layer.xy[k + 1]), col = column_of(layer.xy[k]);
      for (int dr = -radius; dr <= radius; ++dr) {
        for (int dc = -radius; dc <= radius; ++dc) {
          if (dr * dr + dc * dc <= radius * radius + radius) put_pixel(img, row + dr, col + dc, layer.red, layer.green, layer.blue);
        }
      }
    }
  }
  for (int64_t t = 0; t < size; ++t) {  // frame
    put_pixel(img, 0, t, 0, 0, 0);
    put_pixel(img, size - 1, t, 0, 0, 0);
    put_pixel(img, t, 0, 0, 0, 0);
    put_pixel(img, t, size - 1, 0, 0, 0);
  }
  return img;
}

}  // namespace sinkhorn::io
