// The SDK's CPU dropout (a parallel counter-based mask) and attention with dropout,
// checked by their statistics and against ATen's SDPA without dropout as the oracle.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

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
  const int threads = at::get_num_threads();
  torch::manual_seed(7);
  auto first = sdk::apply_dropout(x, 0.3, true), second = sdk::apply_dropout(x, 0.3, true);
  EXPECT_FALSE(torch::equal(first, second));  // each call draws a fresh key
  at::set_num_threads(1);
  torch::manual_seed(7);
  auto serial = sdk::apply_dropout(x, 0.3, true);
  at::set_num_threads(threads);
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

// Over N independent masks (the batch: the same q, k, v N times), attention with dropout
// averages to SDPA without it. Each output is a mean of values in [0.5, 1.5] with weights
// that dropout rescales; its per-draw deviation is below 1, so below 0.01 over N = 20000.
TEST(Dropout, AttentionWithDropoutAveragesToSdpa) {
  torch::manual_seed(3);
  const int64_t N = 20000;
  auto q = torch::randn({1, 4, 5, 8}), k = torch::randn({1, 2, 6, 8}), v = torch::rand({1, 2, 6, 8}) + 0.5;
  auto many = [&](const torch::Tensor& t) { return t.expand({N, -1, -1, -1}); };
  auto visible = torch::rand({5, 6}) > 0.3;
  visible.select(1, 0).fill_(true);  // no query without a key
  for (const bool causal : {false, true}) {
    std::optional<torch::Tensor> mask;
    if (!causal) mask = visible;
    auto expected = at::scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), mask,
                                                     0.0, causal);
    auto dropped = sdk::attention(many(q), many(k), many(v), mask, causal, 0.4, /*training=*/true);
    ASSERT_EQ(dropped.sizes(), (std::vector<int64_t>{N, 4, 5, 8}));
    EXPECT_LT((dropped.mean(0, true) - expected).abs().max().item<double>(), 0.05) << "causal " << causal;
    // Each draw is a dropped-out mixture, not the average itself.
    EXPECT_GT((dropped - expected).abs().max().item<double>(), 0.2) << "causal " << causal;
    auto evaluated = sdk::attention(q, k, v, mask, causal, 0.4, /*training=*/false);
    EXPECT_TRUE(torch::allclose(evaluated, expected, 1e-5, 1e-6)) << "causal " << causal;
  }
}

// The same key draws the same mask: seeded alike, apply_dropout on ones gives the mask that
// attention used, and plain autograd over it must give attention's output and gradients.
TEST(Dropout, AttentionGradientsFollowItsMask) {
  torch::manual_seed(5);
  auto q = torch::randn({2, 4, 5, 8}).requires_grad_(), k = torch::randn({2, 2, 6, 8}).requires_grad_(),
       v = torch::randn({2, 2, 6, 8}).requires_grad_();
  auto visible = torch::rand({5, 6}) > 0.3;
  visible.select(1, 0).fill_(true);
  const auto g = torch::randn({2, 4, 5, 8});
  torch::manual_seed(11);
  auto out = sdk::attention(q, k, v, visible, /*causal=*/false, 0.4, /*training=*/true);
  auto grads = torch::autograd::grad({out}, {q, k, v}, {g});

  torch::manual_seed(11);
  const auto keep = sdk::apply_dropout(torch::ones({2, 4, 5, 6}), 0.4, true);
  auto scores = torch::matmul(q, k.repeat_interleave(2, 1).transpose(-2, -1)) / std::sqrt(8.0);
  auto weights = torch::softmax(scores.masked_fill(visible.logical_not(), -INFINITY), -1);
  auto expected = torch::matmul(weights * keep, v.repeat_interleave(2, 1));
  auto expected_grads = torch::autograd::grad({expected}, {q, k, v}, {g});
  EXPECT_TRUE(torch::allclose(out, expected, 1e-5, 1e-6));
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_TRUE(torch::allclose(grads[i], expected_grads[i], 1e-5, 1e-6)) << "gradient " << i;
}
