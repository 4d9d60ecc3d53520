#include "io/pictures.h"

#include <gtest/gtest.h>

#include "gen/gen_test_support.h"
#include "sinkhorn/error.h"

namespace sinkhorn::io {
namespace {

TEST(Png, WriteThenReadGivesTheSamePixels) {
  testing::ScratchFolder folder;
  for (int64_t channels : {1, 3}) {
    Image img(5, 7, channels, 0);
    for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = static_cast<uint8_t>(k * 37 % 256);
    const std::string path = folder.file("img" + std::to_string(channels) + ".png");
    write_png(path, img);
    const Image back = read_png(path);
    EXPECT_EQ(back.height, 5);
    EXPECT_EQ(back.width, 7);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, img.pixels);
  }
  EXPECT_THROW(write_png(folder.file("no/such/folder.png"), Image(2, 2, 1, 0)), Error);
  EXPECT_THROW(read_png(folder.file("missing.png")), Error);
}

TEST(ImageGrid, PlacesEachImageInItsCellAndClampsValues) {
  // Three 2 x 2 grey images with values 0.0, 0.5 and 2.0 (clamped to 1), two columns, padding 1.
  const std::vector<float> images{0, 0, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, 2, 2, 2, 2};
  const Image grid = image_grid(images.data(), 3, 1, 2, 2, 2, 1);
  ASSERT_EQ(grid.height, 1 + 2 * 3);
  ASSERT_EQ(grid.width, 1 + 2 * 3);
  auto at = [&](int64_t r, int64_t c) { return grid.pixels[r * grid.width + c]; };
  EXPECT_EQ(at(0, 0), 128);  // padding
  EXPECT_EQ(at(1, 1), 0);    // first image
  EXPECT_EQ(at(2, 5), 128);  // second image, 0.5 -> 128
  EXPECT_EQ(at(4, 2), 255);  // third image (second row), clamped
  EXPECT_EQ(at(5, 5), 128);  // empty cell keeps the padding grey
}

TEST(ScatterPlot, DrawsPointsInTheirColourWithEqualAxisScales) {
  ScatterLayer layer;
  layer.xy = {-1, 0, 1, 0, 0, 0.5f};
  layer.red = 255;
  layer.radius = 0;
  const Image img = scatter_plot({layer}, 101);
  auto red_at = [&](int64_t r, int64_t c) {
    const uint8_t* p = &img.pixels[(r * img.width + c) * 3];
    return p[0] == 255 && p[1] == 0 && p[2] == 0;
  };
  // Span 2 * 1.1 over 100 pixels, centred on (0, 0.25): x = -1 -> column 5, x = 1 -> 95.
  EXPECT_TRUE(red_at(61, 5));
  EXPECT_TRUE(red_at(61, 95));
  EXPECT_TRUE(red_at(39, 50));  // y = 0.5 is 0.25 above the centre: 11 pixels up from row 50
  int red = 0;
  for (int64_t r = 0; r < img.height; ++r)
    for (int64_t c = 0; c < img.width; ++c) red += red_at(r, c);
  EXPECT_EQ(red, 3);
}

}  // namespace
}  // namespace sinkhorn::io
