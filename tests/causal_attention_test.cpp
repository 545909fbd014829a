// The SDK's float32 CPU causal attention (sdk::attention without dropout or a mask), forward
// and gradients, against ATen's scaled_dot_product_attention as the oracle.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include "xlhost/sdk/dropout.hpp"

using namespace xlhost;

namespace {

struct Shape {
  int64_t B, H, Hkv, T, d;
};

struct Result {
  torch::Tensor out, dq, dk, dv;
};

// q, k, v as the layers hand them over: [B, T, heads, d] projections viewed as [B, heads, T, d].
struct Inputs {
  explicit Inputs(const Shape& s)
      : q(torch::randn({s.B, s.T, s.H, s.d}).transpose(1, 2)),
        k(torch::randn({s.B, s.T, s.Hkv, s.d}).transpose(1, 2)),
        v(torch::randn({s.B, s.T, s.Hkv, s.d}).transpose(1, 2)),
        grad(torch::randn({s.B, s.H, s.T, s.d})) {}
  torch::Tensor q, k, v, grad;
};

template <typename F>
Result run(const Inputs& in, F attend) {
  auto q = in.q.detach().requires_grad_(true), k = in.k.detach().requires_grad_(true),
       v = in.v.detach().requires_grad_(true);
  auto out = attend(q, k, v);
  out.backward(in.grad);
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

Result ours(const Inputs& in) {
  return run(in, [](auto q, auto k, auto v) { return sdk::attention(q, k, v, {}, /*causal=*/true, 0.0, true); });
}

Result sdpa(const Inputs& in) {
  return run(in, [](auto q, auto k, auto v) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, {}, q.size(1) != k.size(1));
  });
}

}  // namespace

// The quickstart's and the 26M baseline's shapes, a length that is not a whole number of
// 64-query blocks, one query head per KV head, and a single position.
TEST(CausalAttention, OutputAndGradientsMatchSdpa) {
  torch::manual_seed(11);
  for (const Shape& s : {Shape{4, 4, 2, 128, 32}, Shape{1, 32, 8, 512, 16}, Shape{2, 6, 3, 150, 8},
                         Shape{3, 2, 2, 37, 4}, Shape{2, 4, 1, 1, 16}}) {
    const Inputs in(s);
    const auto got = ours(in), want = sdpa(in);
    const std::string shape = "B=" + std::to_string(s.B) + " H=" + std::to_string(s.H) + " Hkv=" +
                              std::to_string(s.Hkv) + " T=" + std::to_string(s.T) + " d=" + std::to_string(s.d);
    EXPECT_TRUE(torch::allclose(got.out, want.out, 1e-4, 1e-5)) << shape;
    EXPECT_TRUE(torch::allclose(got.dq, want.dq, 1e-4, 1e-5)) << shape;
    EXPECT_TRUE(torch::allclose(got.dk, want.dk, 1e-4, 1e-5)) << shape;
    EXPECT_TRUE(torch::allclose(got.dv, want.dv, 1e-4, 1e-5)) << shape;
    // The output keeps the heads of a time step side by side, as the output projection reads them.
    EXPECT_EQ(got.out.sizes(), want.out.sizes()) << shape;
  }
}

TEST(CausalAttention, AQueryIgnoresLaterKeys) {
  torch::manual_seed(12);
  Inputs in(Shape{1, 2, 1, 70, 8});
  const auto before = ours(in).out;
  in.k.select(2, 69).add_(10.0);  // keys and values of the last position only
  in.v.select(2, 69).add_(10.0);
  const auto after = ours(in).out;
  EXPECT_TRUE(torch::equal(before.slice(2, 0, 69), after.slice(2, 0, 69)));
  EXPECT_FALSE(torch::equal(before.select(2, 69), after.select(2, 69)));
}

TEST(CausalAttention, ResultsDoNotDependOnTheThreadCount) {
  torch::manual_seed(13);
  const Inputs in(Shape{3, 4, 2, 130, 16});
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  const auto parallel = ours(in);
  at::set_num_threads(1);
  const auto serial = ours(in);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(parallel.out, serial.out));
  EXPECT_TRUE(torch::equal(parallel.dq, serial.dq));
  EXPECT_TRUE(torch::equal(parallel.dk, serial.dk));
  EXPECT_TRUE(torch::equal(parallel.dv, serial.dv));
}

// Inputs in other layouts: contiguous [B, H, T, d], and a batch expanded from one sequence
// (batch stride 0).
TEST(CausalAttention, AcceptsContiguousAndExpandedInputs) {
  torch::manual_seed(14);
  auto q = torch::randn({2, 4, 66, 8}), k = torch::randn({2, 2, 66, 8}), v = torch::randn({2, 2, 66, 8});
  auto expected = at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, {}, true);
  EXPECT_TRUE(torch::allclose(sdk::attention(q, k, v, {}, true, 0.0, true), expected, 1e-4, 1e-5));
  auto first = [](const torch::Tensor& t) { return t.slice(0, 0, 1).expand({3, -1, -1, -1}); };
  auto expanded = sdk::attention(first(q), first(k), first(v), {}, true, 0.0, true);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_TRUE(torch::allclose(expanded.select(0, b), expected.select(0, 0), 1e-4, 1e-5)) << b;
}
