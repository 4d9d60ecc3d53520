// Pictures without a plotting library: PNG files (Debian's libpng), image grids and scatter plots
// rasterised here. No LibTorch: images are row-major 8-bit buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sinkhorn::io {

/// An 8-bit image, row-major, channels interleaved (1 = grey, 3 = RGB).
struct Image {
  int64_t height = 0, width = 0, channels = 1;
  std::vector<uint8_t> pixels;
  Image() = default;
  Image(int64_t height, int64_t width, int64_t channels, uint8_t fill);
};

/// Writes img as a PNG file, atomically (encoded in memory, then io::write_file_atomically): a
/// failure leaves `path` as it was and throws sinkhorn::Error naming it (carrying `argument` when set).
void write_png(const std::string& path, const Image& img, const std::string& argument = "");
/// Reads a PNG file as grey or RGB 8-bit (used by tests and tools); throws naming the path.
Image read_png(const std::string& path);

/// Tiles `count` images of size height x width x channels, given as planar floats in [0, 1]
/// (count, channels, height, width: a tensor's layout), into a grid `columns` wide with a
/// `padding`-pixel grey border. Values outside [0, 1] are clamped.
Image image_grid(const float* images, int64_t count, int64_t channels, int64_t height, int64_t width,
                 int64_t columns, int64_t padding = 2);

/// One set of 2-D points drawn in one colour.
struct ScatterLayer {
  std::vector<float> xy;  ///< x0, y0, x1, y1, ...
  uint8_t red = 0, green = 0, blue = 0;
  int radius = 2;  ///< disc radius in pixels
};

/// A square scatter plot of the layers (drawn in order), axes scaled to cover every point with a
/// 5% margin and the same scale on x and y, a light grid at integer coordinates, a frame.
Image scatter_plot(const std::vector<ScatterLayer>& layers, int64_t size = 512);

}  // namespace sinkhorn::io
