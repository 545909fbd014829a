// The SDK's one-pass CPU RMSNorm, rotary embedding and SwiGLU gate, forward and backward,
// against the formulas written out here with ATen ops in float64 (autograd giving the gradients);
// append_rows against its ATen composition in float32: forward to the bit, gradients within
// float rounding and the same for one and two threads.
#include <gtest/gtest.h>

#include <cmath>

#include "thread_count.hpp"
#include "xlhost/sdk/fused_ops.hpp"

using namespace xlhost;

namespace {

struct Grads {
  torch::Tensor y, dx, dw;
};

// y and the gradients of ⟨y, g⟩ with respect to x and w (w undefined: none).
template <typename F>
Grads run(F f, torch::Tensor x, torch::Tensor w, const torch::Tensor& g) {
  x = x.detach().requires_grad_(true);
  if (w.defined()) w = w.detach().requires_grad_(true);
  auto y = f(x, w);
  (y.to(torch::kFloat64) * g.to(torch::kFloat64)).sum().backward();
  return {y.detach(), x.grad(), w.defined() ? w.grad() : torch::Tensor()};
}

torch::Tensor reference_rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * x / torch::sqrt(x.pow(2).mean(-1, true) + eps);
}

// x: [B, T, H, d]; angle[t, i] = (t + 1)·0.3^i.
torch::Tensor angles(int64_t T, int64_t d) {
  return torch::outer(torch::arange(1, T + 1, torch::kFloat64), torch::pow(0.3, torch::arange(d / 2, torch::kFloat64)));
}

torch::Tensor reference_rotate(const torch::Tensor& x, const torch::Tensor& angle) {
  auto c = angle.cos().view({1, x.size(1), 1, -1}), s = angle.sin().view({1, x.size(1), 1, -1});
  auto x0 = x.unflatten(-1, {-1, 2}).select(-1, 0), x1 = x.unflatten(-1, {-1, 2}).select(-1, 1);
  return torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2);
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tolerance, const char* what) {
  const double error = (got.to(torch::kFloat64) - want).abs().max().item<double>();
  EXPECT_LE(error, tolerance * (1 + want.abs().max().item<double>())) << what;
}

}  // namespace

// 3×37 = 111 rows of width 70: neither fills the kernels' blocks of 32 rows and 16 lanes.
TEST(FusedOps, RMSNormForwardAndGradientsMatchTheFormula) {
  torch::manual_seed(3);
  auto x = torch::randn({3, 37, 70}) * 2, w = torch::randn({70}), g = torch::randn({3, 37, 70});
  auto got = run([](auto a, auto b) { return sdk::rms_norm(a, b, 1e-5); }, x, w, g);
  auto want = run([](auto a, auto b) { return reference_rms_norm(a, b, 1e-5); }, x.to(torch::kFloat64),
                  w.to(torch::kFloat64), g);
  EXPECT_EQ(got.y.scalar_type(), torch::kFloat32);
  expect_close(got.y, want.y, 1e-6, "y");
  expect_close(got.dx, want.dx, 1e-6, "dx");
  expect_close(got.dw, want.dw, 1e-5, "dw");

  // bf16 activations (autocast's) with a float32 weight: a float32 result, bf16 dx.
  auto half = run([](auto a, auto b) { return sdk::rms_norm(a, b, 1e-5); }, x.to(torch::kBFloat16), w, g);
  EXPECT_EQ(half.y.scalar_type(), torch::kFloat32);
  EXPECT_EQ(half.dx.scalar_type(), torch::kBFloat16);
  auto want_half = run([](auto a, auto b) { return reference_rms_norm(a, b, 1e-5); },
                       x.to(torch::kBFloat16).to(torch::kFloat64), w.to(torch::kFloat64), g);
  expect_close(half.y, want_half.y, 1e-6, "bf16 y");
  expect_close(half.dx, want_half.dx, 1e-2, "bf16 dx");
}

TEST(FusedOps, RMSNormWeightGradientDoesNotDependOnTheThreadCount) {
  torch::manual_seed(4);
  auto x = torch::randn({1000, 48}), w = torch::randn({48}), g = torch::randn({1000, 48});
  auto f = [](auto a, auto b) { return sdk::rms_norm(a, b, 1e-6); };
  auto parallel = run(f, x, w, g);
  auto serial = test::on_threads(1, [&] { return run(f, x, w, g); });
  EXPECT_TRUE(torch::equal(parallel.dw, serial.dw));
  EXPECT_TRUE(torch::equal(parallel.dx, serial.dx));
}

TEST(FusedOps, RotatePairsForwardAndGradientMatchTheFormula) {
  torch::manual_seed(5);
  const int64_t T = 9, d = 12;
  auto x = torch::randn({2, T, 3, d}), g = torch::randn({2, T, 3, d});
  auto angle = angles(T, d);
  auto cos = angle.cos().to(torch::kFloat32), sin = angle.sin().to(torch::kFloat32);
  auto rotate = [&](auto a, auto) { return sdk::rotate_pairs(a, cos, sin); };
  auto got = run(rotate, x, {}, g);
  auto want = run([&](auto a, auto) { return reference_rotate(a, angle); }, x.to(torch::kFloat64), {}, g);
  expect_close(got.y, want.y, 1e-6, "y");
  expect_close(got.dx, want.dx, 1e-6, "dx");
  // A rotation keeps each pair's length.
  auto length = [](const torch::Tensor& t) { return t.to(torch::kFloat64).unflatten(-1, {-1, 2}).pow(2).sum(-1); };
  EXPECT_TRUE(torch::allclose(length(got.y), length(x), 1e-5));

  auto half = run(rotate, x.to(torch::kBFloat16), {}, g);
  EXPECT_EQ(half.y.scalar_type(), torch::kBFloat16);
  auto want_half = run([&](auto a, auto) { return reference_rotate(a, angle); },
                       x.to(torch::kBFloat16).to(torch::kFloat64), {}, g);
  expect_close(half.y, want_half.y, 1e-2, "bf16 y");
  expect_close(half.dx, want_half.dx, 1e-2, "bf16 dx");
}

// Rows of [a | b] with a over ±30 (the sigmoid's exponential underflows at one end) and a
// width (70) that does not fill the kernel's 16 lanes.
TEST(FusedOps, SiluGateForwardAndGradientMatchTheFormula) {
  torch::manual_seed(6);
  auto a = torch::randn({3, 37, 70}) * 4, b = torch::randn({3, 37, 70});
  a.view(-1).slice(0, 0, 4).copy_(torch::tensor({-30.0f, 30.0f, 0.0f, -90.0f}));
  auto x = torch::cat({a, b}, -1), g = torch::randn({3, 37, 70});
  auto gate = [](auto ab, auto) { return sdk::silu_gate(ab); };
  auto formula = [](auto ab, auto) {
    auto halves = ab.chunk(2, -1);
    return halves[0] / (1 + torch::exp(-halves[0])) * halves[1];
  };
  auto got = run(gate, x, {}, g);
  auto want = run(formula, x.to(torch::kFloat64), {}, g);
  EXPECT_EQ(got.y.sizes(), (std::vector<int64_t>{3, 37, 70}));
  expect_close(got.y, want.y, 1e-6, "y");
  expect_close(got.dx, want.dx, 1e-6, "dx");

  auto half = run(gate, x.to(torch::kBFloat16), {}, g);
  EXPECT_EQ(half.y.scalar_type(), torch::kBFloat16);
  auto want_half = run(formula, x.to(torch::kBFloat16).to(torch::kFloat64), {}, g);
  expect_close(half.y, want_half.y, 1e-2, "bf16 y");
  expect_close(half.dx, want_half.dx, 1e-2, "bf16 dx");
}

// Reads with repeated rows (most rows of a memory are read many times or not at all), with and
// without weights: every output and gradient equals the ATen composition's bit for bit, since
// the memory models' recorded figures were trained with the composition. The gradient is that
// of ⟨y, g⟩ with g all distinct, so that a read added to the wrong row shows; a row read three
// times with gradients 1e-8, 1, −1 sums to 0 only in read order, so that another order shows.
TEST(FusedOps, AppendRowsEqualsItsComposition) {
  torch::manual_seed(7);
  const int64_t B = 3, T = 5, N = 20, U = 6, D = 37;
  auto own = torch::randn({B, T, D}), rows = torch::randn({U, D}), bias = torch::randn({D});
  auto index = torch::randint(0, U, {B, N}), weights = torch::rand({B, N});
  auto g = torch::randn({B, T + N, D});
  for (bool weighted : {true, false}) {
    std::vector<torch::Tensor> fused{own.clone(), rows.clone(), weights.clone(), bias.clone()}, composed;
    for (const auto& t : fused) composed.push_back(t.clone());
    for (auto* inputs : {&fused, &composed})
      for (auto& t : *inputs) t.requires_grad_(true);
    auto y = sdk::append_rows(fused[0], fused[1], index, weighted ? fused[2] : torch::Tensor(), fused[3]);
    auto read = composed[1].index_select(0, index.reshape({-1})).view({B, N, D});
    if (weighted) read = read * composed[2].reshape({B, N, 1});
    auto want = torch::cat({composed[0], read}, 1) + composed[3];
    ASSERT_EQ(y.sizes(), want.sizes());
    EXPECT_TRUE(torch::equal(y, want)) << "weighted " << weighted;
    (y * g).sum().backward();
    (want * g).sum().backward();
    for (size_t i = 0; i < fused.size(); ++i) {
      if (i == 2 && !weighted) {
        EXPECT_FALSE(fused[i].grad().defined());
        continue;
      }
      ASSERT_TRUE(fused[i].grad().defined()) << "input " << i;
      EXPECT_TRUE(torch::allclose(fused[i].grad(), composed[i].grad(), 1e-5, 1e-6))
          << "input " << i << ", weighted " << weighted;
    }
  }
  // Wider than one block of the backward's columns (64), so that a weight's gradient sums blocks.
  auto wide = [&] {
    torch::manual_seed(8);
    auto o = torch::randn({B, T, 150}), r = torch::randn({U, 150}).requires_grad_(true);
    auto w = weights.clone().requires_grad_(true), b = torch::randn({150}).requires_grad_(true);
    (sdk::append_rows(o, r, index, w, b) * torch::randn({B, T + N, 150})).sum().backward();
    return std::vector<torch::Tensor>{r.grad(), w.grad(), b.grad()};
  };
  auto two = test::on_threads(2, wide), one = test::on_threads(1, wide);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << "gradient " << i;
  auto row = torch::randn({1, 2}).requires_grad_(true);
  auto y3 = sdk::append_rows(torch::zeros({1, 1, 2}), row, torch::zeros({1, 3}, torch::kInt64), torch::ones({1, 3}),
                             torch::zeros({2}));
  (y3 * torch::tensor({0.0f, 0.0f, 1e-8f, 1e-8f, 1.0f, 1.0f, -1.0f, -1.0f}).view({1, 4, 2})).sum().backward();
  EXPECT_TRUE(torch::equal(row.grad(), torch::zeros({1, 2}))) << row.grad();
  EXPECT_THROW(sdk::append_rows(own, rows, torch::full({B, N}, U, torch::kInt64), weights, bias), c10::Error);
  EXPECT_THROW(sdk::append_rows(own, rows, index, weights.view({B * N}), bias), c10::Error);
  EXPECT_THROW(sdk::append_rows(own, rows.narrow(1, 0, D - 1), index, weights, bias), c10::Error);
}
