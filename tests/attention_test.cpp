// The SDK's attention(): its CPU kernel (float32; bfloat16 and half widened) and ATen's path
// (float64, CUDA), forward and gradients, against ATen's scaled_dot_product_attention and
// against plain autograd in float64 over an explicit mask, with and without dropout.
#include <gtest/gtest.h>

#include "thread_count.hpp"
#include "xlhost/sdk/attention.hpp"
#include "xlhost/sdk/dropout.hpp"

using namespace xlhost;

namespace {

struct Shape {
  int64_t B, H, Hkv, T, d;
  int64_t S = T;  // keys
  std::string name() const {
    return "B=" + std::to_string(B) + " H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv) +
           " T=" + std::to_string(T) + " S=" + std::to_string(S) + " d=" + std::to_string(d);
  }
};

struct Result {
  torch::Tensor out, dq, dk, dv;
};

// q, k, v as the layers hand them over: [B, T, heads, d] projections viewed as [B, heads, T, d].
struct Inputs {
  explicit Inputs(const Shape& s)
      : q(torch::randn({s.B, s.T, s.H, s.d}).transpose(1, 2)),
        k(torch::randn({s.B, s.S, s.Hkv, s.d}).transpose(1, 2)),
        v(torch::randn({s.B, s.S, s.Hkv, s.d}).transpose(1, 2)),
        grad(torch::randn({s.B, s.H, s.T, s.d})) {}
  torch::Tensor q, k, v, grad;
};

template <typename F>
Result run(const Inputs& in, F attend) {
  auto q = in.q.detach().requires_grad_(true), k = in.k.detach().requires_grad_(true),
       v = in.v.detach().requires_grad_(true);
  auto out = attend(q, k, v);
  out.backward(in.grad.to(out.scalar_type()));
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

Result causal(const Inputs& in) {
  return run(in, [](auto q, auto k, auto v) {
    return sdk::attention(q, k, v, sdk::causal_keys(k.size(2)), 0.0, true);
  });
}

Result sdpa_causal(const Inputs& in) {
  return run(in, [](auto q, auto k, auto v) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, {}, q.size(1) != k.size(1));
  });
}

// Plain autograd in float64: softmax over the keys `visible` [T, S] shows, weights times `keep`
// (dropout's scaled 0/1 factors, [B, H, T, S]; undefined: none), times v.
Result reference(const Inputs& in, const torch::Tensor& visible, const torch::Tensor& keep) {
  auto wide = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
  Inputs in64 = in;
  in64.q = wide(in.q), in64.k = wide(in.k), in64.v = wide(in.v), in64.grad = wide(in.grad);
  return run(in64, [&](auto q, auto k, auto v) {
    const int64_t rep = q.size(1) / k.size(1);
    auto scores = torch::matmul(q, k.repeat_interleave(rep, 1).transpose(-2, -1)) / std::sqrt(double(q.size(3)));
    auto weights = torch::softmax(scores.masked_fill(visible.logical_not(), -INFINITY), -1);
    if (keep.defined()) weights = weights * wide(keep);
    return torch::matmul(weights, v.repeat_interleave(rep, 1));
  });
}

void expect_close(const Result& got, const Result& want, const std::string& what, double rtol = 1e-4,
                  double atol = 1e-5) {
  auto close = [&](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::allclose(a.to(torch::kFloat64), b.to(torch::kFloat64), rtol, atol);
  };
  EXPECT_TRUE(close(got.out, want.out)) << what;
  EXPECT_TRUE(close(got.dq, want.dq)) << what;
  EXPECT_TRUE(close(got.dk, want.dk)) << what;
  EXPECT_TRUE(close(got.dv, want.dv)) << what;
}

// The memory models' fusion: keys are T positions' own, then S reads of each position;
// causal: position t sees the keys of positions ≤ t (the mask as memory.cpp built it before
// the ranges: each key's position ≤ the query's).
torch::Tensor fusion_mask(int64_t T, int64_t S) {
  auto pos = torch::arange(T);
  auto key_pos = torch::cat({pos, pos.repeat_interleave(S)});
  return key_pos.unsqueeze(0) <= pos.unsqueeze(1);
}
sdk::Visibility fusion_keys(int64_t T, int64_t S) { return {{0, T, 0, 1}, {T, T * S, 0, S}}; }

// Five queries over 60 keys: query t sees keys 2 … 2 + t and 20 … 24; no query sees the rest,
// whose gradients must be 0.
torch::Tensor unseen_gaps_mask() {
  auto visible = torch::zeros({5, 60}, torch::kBool);
  for (int64_t t = 0; t < 5; ++t) {
    visible[t].slice(0, 2, 3 + t).fill_(true);
    visible[t].slice(0, 20, 25).fill_(true);
  }
  return visible;
}

// What apply_dropout draws for [B, H, T, S] weights after manual_seed(seed): the mask that
// attention with the same seed uses.
torch::Tensor keep_factors(int64_t seed, std::vector<int64_t> weights, double p) {
  torch::manual_seed(seed);
  return sdk::apply_dropout(torch::ones(weights), p, true);
}

}  // namespace

// The quickstart's and the 26M baseline's shapes, a length that is not a whole number of
// 64-query blocks, one query head per KV head, and a single position.
TEST(Attention, CausalOutputAndGradientsMatchSdpa) {
  torch::manual_seed(11);
  for (const Shape& s : {Shape{4, 4, 2, 128, 32}, Shape{1, 32, 8, 512, 16}, Shape{2, 6, 3, 150, 8},
                         Shape{3, 2, 2, 37, 4}, Shape{2, 4, 1, 1, 16}}) {
    const Inputs in(s);
    const auto got = causal(in), want = sdpa_causal(in);
    expect_close(got, want, s.name());
    // The output keeps the heads of a time step side by side, as the output projection reads them.
    EXPECT_EQ(got.out.sizes(), want.out.sizes()) << s.name();
  }
}

// Ranges other than causal self-attention, in float32 (the kernel) and float64 (ATen's path):
// the memory models' causal fusion over a position's own key and its reads, every key, and
// new queries after a KV cache (queries fewer than keys).
TEST(Attention, KeyRangesMatchTheirMask) {
  torch::manual_seed(15);
  const int64_t T = 70, S = 3;
  struct Case {
    std::string name;
    Shape shape;
    sdk::Visibility seen;
    torch::Tensor visible;
  };
  const std::vector<Case> cases = {
      {"fusion, causal", Shape{2, 4, 4, T, 8, T + T * S}, fusion_keys(T, S), fusion_mask(T, S)},
      {"fusion, every key", Shape{2, 4, 4, T, 8, T + T * S}, sdk::all_keys(T + T * S),
       torch::ones({T, T + T * S}, torch::kBool)},
      {"5 queries after 66 cached keys", Shape{2, 4, 2, 5, 8, 71}, sdk::causal_keys(71, 66),
       torch::ones({5, 71}, torch::kBool).tril(66)},
      {"keys no query sees (0-1, 7-19, 25-59)", Shape{2, 4, 2, 5, 8, 60}, {{2, 10, 0, 1}, {20, 30, 5, 0}},
       unseen_gaps_mask()},
  };
  for (const auto& c : cases)
    for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
      const Inputs in(c.shape);
      auto got = run(in, [&](auto q, auto k, auto v) {
        return sdk::attention(q.to(dtype), k.to(dtype), v.to(dtype), c.seen, 0.0, true);
      });
      expect_close(got, reference(in, c.visible, {}), c.name + " " + std::string(c10::toString(dtype)));
    }
}

// The same seed draws the same mask: apply_dropout on ones, seeded alike, gives the factors
// attention used, and plain autograd over them must give attention's output and gradients.
TEST(Attention, DropoutGradientsFollowItsMask) {
  torch::manual_seed(5);
  const int64_t T = 70, S = 2;
  const Shape shape{2, 4, 2, T, 8, T + T * S};
  const Inputs in(shape);
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(11);
    auto got = run(in, [&](auto q, auto k, auto v) {
      return sdk::attention(q.to(dtype), k.to(dtype), v.to(dtype), fusion_keys(T, S), 0.4, /*training=*/true);
    });
    const auto keep = keep_factors(11, {shape.B, shape.H, shape.T, shape.S}, 0.4);
    expect_close(got, reference(in, fusion_mask(T, S), keep), c10::toString(dtype));
    EXPECT_GT((got.out.to(torch::kFloat64) - reference(in, fusion_mask(T, S), {}).out).abs().max().item<double>(), 0.1)
        << "dropout changed nothing";
  }
}

// Over N independent masks (the batch: the same q, k, v N times), attention with dropout
// averages to SDPA without it. Each output is a mean of values in [0.5, 1.5] with weights
// that dropout rescales; its per-draw deviation is below 1, so below 0.01 over N = 20000.
TEST(Attention, DropoutAveragesToSdpa) {
  torch::manual_seed(3);
  const int64_t N = 20000;
  auto q = torch::randn({1, 4, 5, 8}), k = torch::randn({1, 2, 6, 8}), v = torch::rand({1, 2, 6, 8}) + 0.5;
  auto many = [&](const torch::Tensor& t) { return t.expand({N, -1, -1, -1}); };
  const std::vector<std::pair<sdk::Visibility, torch::Tensor>> cases = {
      {sdk::causal_keys(6, 1), torch::ones({5, 6}, torch::kBool).tril(1)},
      {{{0, 3, 1, 1}, {3, 3, 0, 2}}, torch::cat({torch::ones({5, 3}, torch::kBool).tril(1),
                                                 torch::arange(3).unsqueeze(0) < 2 * torch::arange(1, 6).unsqueeze(1)},
                                                1)},
  };
  for (const auto dtype : {torch::kFloat32, torch::kFloat64})
    for (const auto& [seen, visible] : cases) {
      const std::string what = c10::toString(dtype) + std::string(" ranges ") + std::to_string(seen.size());
      auto expected = at::scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                       visible, 0.0, false);
      auto dropped = sdk::attention(many(q).to(dtype), many(k).to(dtype), many(v).to(dtype), seen, 0.4, true);
      ASSERT_EQ(dropped.sizes(), (std::vector<int64_t>{N, 4, 5, 8}));
      EXPECT_LT((dropped.mean(0, true) - expected).abs().max().item<double>(), 0.05) << what;
      // Each draw is a dropped-out mixture, not the average itself.
      EXPECT_GT((dropped - expected).abs().max().item<double>(), 0.2) << what;
      auto evaluated = sdk::attention(q.to(dtype), k.to(dtype), v.to(dtype), seen, 0.4, /*training=*/false);
      EXPECT_TRUE(torch::allclose(evaluated.to(torch::kFloat32), expected, 1e-5, 1e-6)) << what;
    }
}

// bfloat16 and half (autocast's projections) run the float32 kernel on widened copies: the
// result and gradients are the float32 ones of the same rounded inputs, rounded once; and
// close to SDPA's own kernel in that dtype (in bfloat16, 8 bits of mantissa: a few 1e-2).
TEST(Attention, ReducedPrecisionIsTheFloat32KernelRoundedOnce) {
  torch::manual_seed(16);
  const int64_t T = 70, S = 2;
  const Inputs in(Shape{2, 4, 2, T, 16, T + T * S});
  for (const auto dtype : {torch::kBFloat16, torch::kHalf}) {
    const std::string what = c10::toString(dtype);
    Inputs rounded = in;
    for (auto* t : {&rounded.q, &rounded.k, &rounded.v, &rounded.grad}) *t = t->to(dtype);
    auto attend = [&](const Inputs& x, double p) {
      torch::manual_seed(9);
      return run(x, [&](auto q, auto k, auto v) { return sdk::attention(q, k, v, fusion_keys(T, S), p, true); });
    };
    Inputs widened = rounded;
    for (auto* t : {&widened.q, &widened.k, &widened.v, &widened.grad}) *t = t->to(torch::kFloat32);
    for (const double p : {0.0, 0.3}) {
      const auto got = attend(rounded, p), want = attend(widened, p);
      ASSERT_EQ(got.out.scalar_type(), dtype) << what;
      ASSERT_EQ(got.dk.scalar_type(), dtype) << what;
      EXPECT_TRUE(torch::equal(got.out, want.out.to(dtype))) << what << " p=" << p;
      EXPECT_TRUE(torch::equal(got.dq, want.dq.to(dtype))) << what << " p=" << p;
      EXPECT_TRUE(torch::equal(got.dk, want.dk.to(dtype))) << what << " p=" << p;
      EXPECT_TRUE(torch::equal(got.dv, want.dv.to(dtype))) << what << " p=" << p;
    }
    const auto sdpa = run(rounded, [&](auto q, auto k, auto v) {
      return at::scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                              fusion_mask(T, S), 0.0, false);
    });
    expect_close(attend(rounded, 0.0), sdpa, what + " against SDPA", 3e-2, 3e-2);
  }
}

// Keys past the kernel's cache budget in bfloat16 (4,608 keys of width 64): ATen's products,
// with the SDK's dropout mask, against plain autograd in float64 over the same factors.
TEST(Attention, ReducedPrecisionWithManyKeysFollowsItsMask) {
  torch::manual_seed(17);
  const Shape shape{1, 2, 1, 8, 64, 4608};
  const Inputs in(shape);
  Inputs rounded = in;
  for (auto* t : {&rounded.q, &rounded.k, &rounded.v, &rounded.grad}) *t = t->to(torch::kBFloat16);
  torch::manual_seed(11);
  auto got =
      run(rounded, [&](auto q, auto k, auto v) { return sdk::attention(q, k, v, sdk::all_keys(4608), 0.3, true); });
  ASSERT_EQ(got.out.scalar_type(), torch::kBFloat16);
  Inputs exact = rounded;  // the rounded values, widened (reference() computes in float64)
  for (auto* t : {&exact.q, &exact.k, &exact.v, &exact.grad}) *t = t->to(torch::kFloat32);
  const auto keep = keep_factors(11, {shape.B, shape.H, shape.T, shape.S}, 0.3);
  // Tolerance against outputs of about 0.02 (means of 4,608 values) and the bfloat16 weights.
  expect_close(got, reference(exact, torch::ones({shape.T, shape.S}, torch::kBool), keep), "bf16, 4608 keys", 2e-2,
               1e-3);
}

// A float32 query over bfloat16 keys and values (a projection with a float32 bias over
// autocast's products) with more keys than the kernel takes in reduced precision: ATen's path,
// in the widest of the three dtypes.
TEST(Attention, MixedDtypesBeyondTheKernelGoToTheWidest) {
  torch::manual_seed(17);
  const Shape shape{1, 2, 1, 3, 8, 7000};  // (4·8 + 128)·7000 floats: past 4 MiB
  Inputs in(shape);
  in.k = in.k.to(torch::kBFloat16).to(torch::kFloat32), in.v = in.v.to(torch::kBFloat16).to(torch::kFloat32);
  const auto got = run(in, [](auto q, auto k, auto v) {
    return sdk::attention(q, k.to(torch::kBFloat16), v.to(torch::kBFloat16), sdk::all_keys(7000), 0.0, true);
  });
  EXPECT_EQ(got.out.scalar_type(), torch::kFloat32);
  const auto want = reference(in, torch::ones({shape.T, shape.S}, torch::kBool), {});
  auto close = [](const torch::Tensor& a, const torch::Tensor& b, double rtol, double atol) {
    return torch::allclose(a.to(torch::kFloat64), b, rtol, atol);
  };
  EXPECT_TRUE(close(got.out, want.out, 1e-4, 1e-5));
  EXPECT_TRUE(close(got.dq, want.dq, 1e-4, 1e-5));
  // The gradients of bfloat16 keys and values are bfloat16 (8 significant bits).
  EXPECT_TRUE(close(got.dk, want.dk, 1e-2, 1e-4));
  EXPECT_TRUE(close(got.dv, want.dv, 1e-2, 1e-4));
}

TEST(Attention, AQueryIgnoresLaterKeys) {
  torch::manual_seed(12);
  Inputs in(Shape{1, 2, 1, 70, 8});
  const auto before = causal(in).out;
  in.k.select(2, 69).add_(10.0);  // keys and values of the last position only
  in.v.select(2, 69).add_(10.0);
  const auto after = causal(in).out;
  EXPECT_TRUE(torch::equal(before.slice(2, 0, 69), after.slice(2, 0, 69)));
  EXPECT_FALSE(torch::equal(before.select(2, 69), after.select(2, 69)));
}

TEST(Attention, ResultsDoNotDependOnTheThreadCount) {
  torch::manual_seed(13);
  const Inputs in(Shape{3, 4, 2, 130, 16, 130 * 3});
  auto both = [&] {
    torch::manual_seed(7);
    return run(in, [](auto q, auto k, auto v) { return sdk::attention(q, k, v, fusion_keys(130, 2), 0.2, true); });
  };
  const auto parallel = test::on_threads(2, both);
  const auto serial = test::on_threads(1, both);
  EXPECT_TRUE(torch::equal(parallel.out, serial.out));
  EXPECT_TRUE(torch::equal(parallel.dq, serial.dq));
  EXPECT_TRUE(torch::equal(parallel.dk, serial.dk));
  EXPECT_TRUE(torch::equal(parallel.dv, serial.dv));
}

// Inputs in other layouts: contiguous [B, H, T, d], and a batch expanded from one sequence
// (batch stride 0).
TEST(Attention, AcceptsContiguousAndExpandedInputs) {
  torch::manual_seed(14);
  auto q = torch::randn({2, 4, 66, 8}), k = torch::randn({2, 2, 66, 8}), v = torch::randn({2, 2, 66, 8});
  auto expected = at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, {}, true);
  EXPECT_TRUE(torch::allclose(sdk::attention(q, k, v, sdk::causal_keys(66), 0.0, true), expected, 1e-4, 1e-5));
  auto first = [](const torch::Tensor& t) { return t.slice(0, 0, 1).expand({3, -1, -1, -1}); };
  auto expanded = sdk::attention(first(q), first(k), first(v), sdk::causal_keys(66), 0.0, true);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_TRUE(torch::allclose(expanded.select(0, b), expected.select(0, 0), 1e-4, 1e-5)) << b;
}

TEST(Attention, RangesOutsideTheKeysOrSeeingNothingAreErrors) {
  auto q = torch::randn({1, 2, 4, 8}), k = torch::randn({1, 2, 6, 8});
  auto error = [&](const sdk::Visibility& seen, double p = 0.0) {
    try {
      sdk::attention(q, k, k, seen, p, true);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error({{2, 5, 0, 1}}).find("is not within 6 keys"), std::string::npos) << error({{2, 5, 0, 1}});
  EXPECT_NE(error({{0, 4, 0, 1}, {3, 3, 0, 1}}).find("after the previous range"), std::string::npos);
  EXPECT_NE(error({{0, 6, 0, 0}}).find("the first query sees no key"), std::string::npos);
  EXPECT_NE(error(sdk::causal_keys(6), 1.0).find("dropout 1"), std::string::npos);
  EXPECT_EQ(error(sdk::causal_keys(6, 2)), "no error");
}
