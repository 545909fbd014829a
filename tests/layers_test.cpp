// The SDK's shared layers: the rotary embedding and RMSNorm by hand-computed values, SwiGLU
// and causal self-attention against their formulas written out here with one matrix product
// per weight, in float64 (with many rows the layers multiply by their weights side by side,
// one GEMM, with few one product each; both must give the formula's output and gradients).
#include <gtest/gtest.h>

#include <cmath>

#include "xlhost/sdk/layers.hpp"

using namespace xlhost;
namespace F = torch::nn::functional;

namespace {

// max |got − want| relative to want's largest magnitude.
double error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kFloat64) - want).abs().max().item<double>() / (1 + want.abs().max().item<double>());
}

torch::Tensor wide(const torch::Tensor& t) { return t.detach().to(torch::kFloat64).requires_grad_(true); }

// The layer's output and weight gradients against the formula's (each weight paired with its
// float64 copy).
void expect_close(const torch::Tensor& y, const torch::Tensor& want,
                  const std::vector<std::pair<torch::Tensor, torch::Tensor>>& weights, double tolerance,
                  const std::string& what) {
  EXPECT_LT(error(y, want), tolerance) << what;
  for (size_t i = 0; i < weights.size(); ++i)
    EXPECT_LT(error(weights[i].first.grad(), weights[i].second.grad()), tolerance) << what << ", weight " << i;
}

}  // namespace

TEST(Layers, RotaryRotatesAdjacentPairs) {
  sdk::RotaryEmbedding rope(4, 10000.0, 16);
  auto x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 1, 4}).repeat({1, 2, 1, 1});
  auto y = rope.apply(x, 0);
  EXPECT_TRUE(torch::allclose(y[0][0], x[0][0])) << "position 0 is not rotated";
  const double a0 = 1.0, a1 = std::pow(10000.0, -0.5);  // angles of pair 0 and 1 at position 1
  auto expected = torch::tensor({float(1 * std::cos(a0) - 2 * std::sin(a0)), float(1 * std::sin(a0) + 2 * std::cos(a0)),
                                 float(3 * std::cos(a1) - 4 * std::sin(a1)), float(3 * std::sin(a1) + 4 * std::cos(a1))});
  EXPECT_TRUE(torch::allclose(y[0][1][0], expected, 1e-5, 1e-6)) << y[0][1][0];
  EXPECT_THROW(rope.apply(x, 15), std::out_of_range);
}

TEST(Layers, RmsNormAndSwiGluWidth) {
  sdk::RMSNorm norm(4, 1e-5);
  auto x = torch::tensor({1.0f, -2.0f, 3.0f, -4.0f}).view({1, 4});
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5);
  EXPECT_TRUE(torch::allclose(norm(x), x / rms, 1e-6, 1e-6));
  EXPECT_EQ(sdk::swiglu_hidden_dim(512, 0, 64), 1408);
  EXPECT_EQ(sdk::swiglu_hidden_dim(512, 1000, 64), 1000);
}

TEST(Layers, SwiGLUMatchesItsFormulaWithManyRowsAndFew) {
  torch::manual_seed(21);
  sdk::SwiGLU ffn(24, 40, 0.0);
  for (const int64_t T : {40, 3}) {  // 80 rows: side by side; 6 rows: apart
    auto x = torch::randn({2, T, 24}), g = torch::randn({2, T, 24});
    ffn->zero_grad();
    auto y = ffn->forward(x);
    y.backward(g);
    auto w1 = wide(ffn->w1->weight), w2 = wide(ffn->w2->weight), w3 = wide(ffn->w3->weight);
    auto x64 = x.to(torch::kFloat64);
    auto want = F::linear(F::silu(F::linear(x64, w1)) * F::linear(x64, w3), w2);
    want.backward(g.to(torch::kFloat64));
    expect_close(y, want, {{ffn->w1->weight, w1}, {ffn->w3->weight, w3}, {ffn->w2->weight, w2}}, 1e-6,
                 std::to_string(2 * T) + " rows");
  }
}

TEST(Layers, CausalSelfAttentionMatchesItsFormulaWithManyRowsAndFew) {
  torch::manual_seed(22);
  const int64_t D = 32, H = 4, Hkv = 2, d = D / H;
  sdk::CausalSelfAttention attention(D, H, Hkv, 0.0);
  sdk::RotaryEmbedding rope(d, 1e6, 64);
  for (const int64_t T : {40, 3}) {
    auto x = torch::randn({2, T, D}), g = torch::randn({2, T, D});
    attention->zero_grad();
    auto y = attention->forward(x, rope);
    y.backward(g);
    auto wq = wide(attention->wq->weight), wk = wide(attention->wk->weight), wv = wide(attention->wv->weight),
         wo = wide(attention->wo->weight);
    auto x64 = x.to(torch::kFloat64);
    auto q = rope.apply(F::linear(x64, wq).view({2, T, H, d}), 0).transpose(1, 2);
    auto k = rope.apply(F::linear(x64, wk).view({2, T, Hkv, d}), 0).transpose(1, 2).repeat_interleave(H / Hkv, 1);
    auto v = F::linear(x64, wv).view({2, T, Hkv, d}).transpose(1, 2).repeat_interleave(H / Hkv, 1);
    auto mixed = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    auto want = F::linear(mixed.transpose(1, 2).reshape({2, T, D}), wo);
    want.backward(g.to(torch::kFloat64));
    expect_close(y, want,
                 {{attention->wq->weight, wq}, {attention->wk->weight, wk}, {attention->wv->weight, wv},
                  {attention->wo->weight, wo}},
                 1e-5, std::to_string(2 * T) + " rows");
  }
}
