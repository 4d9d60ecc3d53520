// Pictures of generated samples: an image grid for image data, a scatter plot (data in blue,
// samples in red) for 2-D data, and the latent-manifold lattice of a 2-D latent. Each picture is
// encoded in memory and written atomically (io/atomic_file.h): a full disk is an error naming the
// file ("out_dir"), never a half-written PNG.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace sinkhorn::gen {

/// The most images an image grid holds (100 x 100: past that each image is a few pixels wide).
inline constexpr int64_t kMaxPictureImages = 10000;
/// The most points a scatter plot draws (past that the 512 x 512 plot is a solid blot).
inline constexpr int64_t kMaxScatterPoints = 1000000;

/// Throws Error(argument, "<count> is more images than a picture grid holds (at most ...); write a
/// .npy for more") (points: "... than a scatter plot draws") when a picture has no room for `count`
/// samples; `images` tells images from 2-D points. `sample` calls it before generating anything.
void check_picture_room(int64_t count, bool images, const std::string& argument);

/// samples: (n, 2) points or (n, C, H, W) images in [0, 1]. Points are drawn over `reference`
/// (data, (m, 2); may be undefined); images are tiled in a near-square grid. More samples than
/// check_picture_room allows are refused naming "samples".
void write_samples_picture(const std::string& path, const at::Tensor& samples, const at::Tensor& reference = {});

/// images: (rows * rows, C, H, W), row-major over the lattice, tiled rows x rows without gaps.
void write_lattice_picture(const std::string& path, const at::Tensor& images, int64_t rows);

}  // namespace sinkhorn::gen
