// The error analysis behind the tensor-core softmin (reduce/cuda/online_kernels.cu; docs/numerics.md,
// "Tensor cores"), checked on the CPU, where every build runs it: TF32 operands emulated bit for bit
// (cvt.rna.tf32.f32: round to nearest, ties away, to 10 explicit mantissa bits), products exact in
// float32 (11 x 11 significant bits), float32 accumulation. 3xTF32 (x_hi y_hi + x_hi y_lo +
// x_lo y_hi, the small terms in their own accumulator) must stay within (D + 14) u |x| |y| of the
// float64 dot product (the kernel's documented (3 D + 16) u leaves room for the tensor cores'
// accumulation order and truncation); TF32 alone is off by about 2^-11 |x| |y|, which is why it is
// never used alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

float tf32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits = (bits + 0x1000u) & 0xffffe000u;  // magnitude rounded half up at bit 13: ties away from zero
  float rounded;
  std::memcpy(&rounded, &bits, sizeof rounded);
  return rounded;
}

struct Dots {
  double exact, three_pass, one_pass;
};

Dots dots(const std::vector<float>& x, const std::vector<float>& y) {
  Dots result{0.0, 0.0, 0.0};
  float big = 0.f, small = 0.f, single = 0.f;
  for (size_t k = 0; k < x.size(); ++k) {
    result.exact += static_cast<double>(x[k]) * static_cast<double>(y[k]);
    const float xh = tf32(x[k]), xl = tf32(x[k] - xh), yh = tf32(y[k]), yl = tf32(y[k] - yh);
    small += xl * yh;  // each product is exact in float32
    small += xh * yl;
    big += xh * yh;
    single += xh * yh;
  }
  result.three_pass = big + small;
  result.one_pass = single;
  return result;
}

TEST(SplitPrecision, ThreePassTf32DotsStayWithinTheirBoundAndOnePassDoesNot) {
  std::mt19937_64 random(41);
  std::normal_distribution<float> normal;
  const double u = std::ldexp(1.0, -24);
  for (const int d : {16, 20, 64}) {
    for (const float offset : {0.f, 3.f}) {
      double worst_three = 0, worst_one = 0;
      for (int trial = 0; trial < 2000; ++trial) {
        std::vector<float> x(d), y(d);
        double x_norm = 0, y_norm = 0;
        for (int k = 0; k < d; ++k) {
          x[k] = normal(random) + offset;
          y[k] = normal(random) + offset;
          x_norm += static_cast<double>(x[k]) * x[k];
          y_norm += static_cast<double>(y[k]) * y[k];
        }
        const double scale = std::sqrt(x_norm * y_norm);
        const Dots r = dots(x, y);
        worst_three = std::max(worst_three, std::abs(r.three_pass - r.exact) / (u * scale));
        worst_one = std::max(worst_one, std::abs(r.one_pass - r.exact) / (u * scale));
      }
      SCOPED_TRACE(::testing::Message() << "D " << d << ", offset " << offset);
      EXPECT_LE(worst_three, d + 14.0);
      // TF32 alone: errors of about 2^-11 of |x| |y|, hundreds of times the bound of 3xTF32.
      EXPECT_GT(worst_one, 100.0 * (d + 14.0) / 8.0);
    }
  }
}

}  // namespace
