// Readers for the image datasets in their distributed binary formats, so users point the trainer at
// their own copies: MNIST's IDX files (raw or gzip) and CIFAR-10's binary batches.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace sinkhorn::gen {

/// Images as stored: uint8 (N, C, H, W), and int64 labels (N) when the labels file exists
/// (an undefined tensor otherwise).
struct ImageSet {
  at::Tensor images;
  at::Tensor labels;
};

/// One IDX file (LeCun's format: magic 0x0000TTDD, big-endian dimensions, then the data) as a
/// tensor of its stored type (uint8, int8, int16, int32, float32, float64), gzip or raw. Throws
/// sinkhorn::Error naming the file on a bad magic number, a size that does not match the header,
/// or trailing data.
at::Tensor read_idx(const std::string& path);

/// MNIST (or Fashion-MNIST: same format). `path` is an images file (train-images-idx3-ubyte[.gz],
/// t10k-images...) or a folder holding the `split` ("train" or "test") files under their
/// distributed names. Labels are read from the matching labels file when it exists.
ImageSet load_mnist(const std::string& path, const std::string& split = "train");

/// CIFAR-10 binary version: records of 1 label byte + 3072 bytes (R, G, B planes of 32 x 32).
/// `path` is one batch file or a folder holding data_batch_1..5.bin ("train") / test_batch.bin
/// ("test"), optionally inside cifar-10-batches-bin/.
ImageSet load_cifar10(const std::string& path, const std::string& split = "train");

}  // namespace sinkhorn::gen
