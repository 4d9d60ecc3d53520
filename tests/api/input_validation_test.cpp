// Bad input gets a sinkhorn::Error whose message names the argument and the problem.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include "sinkhorn/divergence.h"

namespace sinkhorn {
namespace {

void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "expected an error mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
        << "message '" << error.what() << "' does not mention '" << fragment << "'";
  }
}

class InputValidation : public ::testing::Test {
 protected:
  at::Tensor x = at::randn({10, 3}), y = at::randn({8, 3});
  at::Tensor a = at::full({10}, 0.1), b = at::full({8}, 0.125);
};

TEST_F(InputValidation, NonFiniteValues) {
  at::Tensor bad = x.clone();
  bad[2][1] = NAN;
  expect_error([&] { divergence(bad, y); }, "x contains NaN");
  bad[2][1] = INFINITY;
  expect_error([&] { divergence(x, bad.narrow(0, 0, 8)); }, "y contains NaN or infinite");
  at::Tensor weights = a.clone();
  weights[0] = NAN;
  expect_error([&] { divergence(weights, x, b, y); }, "a contains NaN");
}

TEST_F(InputValidation, Weights) {
  at::Tensor negative = a.clone();
  negative[3] = -0.1;
  expect_error([&] { divergence(negative, x, b, y); }, "a has negative weights");
  expect_error([&] { divergence(a, x, at::zeros({8}), y); }, "b sums to zero");
  expect_error([&] { divergence(a, x, at::full({7}, 0.1), y); }, "b must have shape [8]");
  expect_error([&] { divergence(a * 2, x, b, y); }, "same total mass");
  SinkhornOptions unbalanced;
  unbalanced.reach = 1.0;
  EXPECT_NO_THROW(divergence(a * 2, x, b, y, unbalanced));
  expect_error([&] { divergence(a.to(at::kInt), x, b, y); }, "a must be a floating-point tensor");
}

TEST_F(InputValidation, Shapes) {
  expect_error([&] { divergence(at::randn({0, 3}), y); }, "x is an empty cloud");
  expect_error([&] { divergence(x, at::randn({0, 3})); }, "y is an empty cloud");
  expect_error([&] { divergence(x, at::randn({8, 2})); }, "same dimension D");
  expect_error([&] { divergence(at::randn({10}), y); }, "x must have shape (N, D) or (B, N, D)");
  expect_error([&] { divergence(at::randn({2, 10, 3}), at::randn({3, 8, 3})); }, "same batch size");
  expect_error([&] { divergence(at::randn({2, 10, 3}), y); }, "must both be batched or both unbatched");
  expect_error([&] { divergence(x, y.to(at::kDouble)); }, "same dtype");
  expect_error([&] { divergence(x.to(at::kLong), y.to(at::kLong)); }, "x must be a floating-point tensor");
  expect_error([&] { divergence(at::Tensor(), y); }, "x is undefined");
}

TEST_F(InputValidation, Options) {
  const auto with = [&](const std::function<void(SinkhornOptions&)>& change, const std::string& fragment) {
    SinkhornOptions options;
    change(options);
    expect_error([&] { divergence(x, y, options); }, fragment);
  };
  with([](SinkhornOptions& o) { o.blur = 0; }, "blur must be a finite number > 0");
  with([](SinkhornOptions& o) { o.blur = -1; }, "blur must be");
  with([](SinkhornOptions& o) { o.blur = NAN; }, "blur must be");
  with([](SinkhornOptions& o) { o.scaling = 1.0; }, "scaling must be in the open interval (0, 1)");
  with([](SinkhornOptions& o) { o.scaling = 0.0; }, "scaling");
  with([](SinkhornOptions& o) { o.p = 3; }, "p must be 1 or 2");
  with([](SinkhornOptions& o) { o.reach = -2.0; }, "reach must be");
  with([](SinkhornOptions& o) { o.diameter = 0.0; }, "diameter must be");
  with([](SinkhornOptions& o) { o.tolerance = 0.0; }, "tolerance must be");
  with([](SinkhornOptions& o) { o.iterations = 0; }, "iterations must be >= 1");
  with([](SinkhornOptions& o) { o.max_iterations = -1; }, "max_iterations");
  with([](SinkhornOptions& o) {
    o.loss = Loss::primal;
    o.gradient = GradientMode::envelope;
  }, "envelope gradients are exact only for variational losses");
  with([](SinkhornOptions& o) {
    o.gradient = GradientMode::unrolled;
    o.backend = Backend::reference;
  }, "cannot be unrolled");
}

TEST_F(InputValidation, NamesParse) {
  EXPECT_EQ(parse_loss("primal"), Loss::primal);
  EXPECT_EQ(parse_backend("reference"), Backend::reference);
  EXPECT_EQ(parse_gradient_mode("unrolled"), GradientMode::unrolled);
  expect_error([] { parse_loss("wasserstein", "loss"); }, "loss must be one of divergence, primal");
  for (const Loss loss : {Loss::divergence, Loss::primal, Loss::ot_eps, Loss::energy, Loss::gaussian, Loss::laplacian}) {
    EXPECT_EQ(parse_loss(to_string(loss)), loss);
  }
}

}  // namespace
}  // namespace sinkhorn
