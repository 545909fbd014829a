// The SDK's CPU dropout (a parallel counter-based mask), checked by its statistics
// (attention with dropout: attention_test.cpp).
#include <gtest/gtest.h>

#include "thread_count.hpp"
#include "xlhost/sdk/dropout.hpp"

using namespace xlhost;

namespace {

// Fraction of elements of a 0/1 tensor that are 1.
double fraction(const torch::Tensor& kept) { return kept.to(torch::kFloat64).mean().item<double>(); }

}  // namespace

// 2²⁰ draws: the kept fraction's standard deviation is 3·10⁻⁴, the tolerances 10σ.
TEST(Dropout, KeepsOneMinusPAndScalesByItsInverse) {
  torch::manual_seed(1);
  auto y = sdk::apply_dropout(torch::ones({1 << 20}), 0.1, /*training=*/true);
  auto kept = y != 0;
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), torch::full({1}, 1 / 0.9)));
  EXPECT_NEAR(fraction(kept), 0.9, 3e-3);
  // Even and odd elements alike keep 1 − p, and neighbours independently of each other.
  auto pairs = kept.view({-1, 2});
  EXPECT_NEAR(fraction(pairs.select(1, 0)), 0.9, 4e-3);
  EXPECT_NEAR(fraction(pairs.select(1, 1)), 0.9, 4e-3);
  EXPECT_NEAR(fraction(pairs.select(1, 0) & pairs.select(1, 1)), 0.81, 4e-3);
  EXPECT_NEAR(fraction(kept.slice(0, 0, -1) & kept.slice(0, 1)), 0.81, 4e-3);

  auto half = sdk::apply_dropout(torch::ones({7, 1001}, torch::kBFloat16), 0.5, true);  // not a whole 4096-block
  EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
  EXPECT_NEAR(fraction(half != 0), 0.5, 0.02);
  EXPECT_TRUE(((half == 0) | (half == 2)).all().item<bool>());
}

TEST(Dropout, MasksFollowTheSeedNotTheThreadCount) {
  const auto x = torch::ones({4, 50000});
  torch::manual_seed(7);
  auto first = sdk::apply_dropout(x, 0.3, true), second = sdk::apply_dropout(x, 0.3, true);
  EXPECT_FALSE(torch::equal(first, second));  // each call draws a fresh key
  auto serial = test::on_threads(1, [&] {
    torch::manual_seed(7);
    return sdk::apply_dropout(x, 0.3, true);
  });
  EXPECT_TRUE(torch::equal(first, serial));
}

TEST(Dropout, IdentityOutsideTrainingAndTheGradientIsTheMask) {
  auto x = torch::rand({64, 33}) + 0.5;
  EXPECT_TRUE(sdk::apply_dropout(x, 0.3, /*training=*/false).is_same(x));
  EXPECT_TRUE(sdk::apply_dropout(x, 0.0, true).is_same(x));
  EXPECT_EQ(sdk::apply_dropout(x, 1.0, true).count_nonzero().item<int64_t>(), 0);

  x.requires_grad_(true);
  auto y = sdk::apply_dropout(x, 0.3, true);
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), (y != 0).to(torch::kFloat32) / 0.7));
  EXPECT_TRUE(torch::allclose(y, x.detach() * x.grad()));
}
