// sdk::project (x·wᵀ, the layers' products; oneDNN for float32 on the CPU) against ATen's
// F::linear: output and both gradients, for a batch of sequences, a non-contiguous input and
// one row; under bfloat16 autocast it is F::linear itself. And the test of oneDNN's bfloat16
// support that decides it, against the CPU's flags.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <fstream>

#include "xlhost/sdk/linear.hpp"

using namespace xlhost;
namespace F = torch::nn::functional;

namespace {

struct Result {
  torch::Tensor out, dx, dw;
};

template <typename Fn>
Result run(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& grad, Fn f) {
  auto xi = x.detach().requires_grad_(true), wi = w.detach().requires_grad_(true);
  auto out = f(xi, wi);
  out.backward(grad);
  return {out.detach(), xi.grad(), wi.grad()};
}

}  // namespace

TEST(Project, MatchesLinearWithGradients) {
  torch::manual_seed(21);
  const auto w = torch::randn({33, 48});
  for (const auto& x : {torch::randn({3, 70, 48}), torch::randn({48, 70}).t(), torch::randn({1, 48})}) {
    auto shape = x.sizes().vec();
    shape.back() = 33;
    const auto grad = torch::randn(shape);
    const auto got = run(x, w, grad, [](auto a, auto b) { return sdk::project(a, b); });
    const auto want = run(x, w, grad, [](auto a, auto b) { return F::linear(a, b); });
    const std::string what = "x " + c10::str(x.sizes());
    ASSERT_EQ(got.out.sizes(), want.out.sizes()) << what;
    EXPECT_TRUE(torch::allclose(got.out, want.out, 1e-5, 1e-5)) << what;
    EXPECT_TRUE(torch::allclose(got.dx, want.dx, 1e-5, 1e-5)) << what;
    EXPECT_TRUE(torch::allclose(got.dw, want.dw, 1e-5, 1e-5)) << what;
  }
}

// A loss that sums the output hands back an expanded gradient (stride 0).
TEST(Project, TakesAnExpandedGradient) {
  torch::manual_seed(23);
  const auto x = torch::randn({70, 48}), w = torch::randn({33, 48});
  const auto got = run(x, w, torch::ones({1, 1}).expand({70, 33}), [](auto a, auto b) { return sdk::project(a, b); });
  EXPECT_TRUE(torch::allclose(got.dx, torch::ones({70, 33}).mm(w), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(got.dw, torch::ones({33, 70}).mm(x), 1e-5, 1e-5));
}

TEST(Project, UnderAutocastIsLinear) {
  torch::manual_seed(22);
  const auto x = torch::randn({70, 48}), w = torch::randn({33, 48});
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  const auto got = sdk::project(x, w), want = F::linear(x, w);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(got, want));
}

// AVX-512 F, BW, VL and DQ (oneDNN's avx512_core) mean yes, unless ONEDNN_MAX_CPU_ISA holds
// oneDNN to AVX2 (ctest's sdk_without_avx512); neither AVX-512 nor AVX-NE-CONVERT means no.
TEST(Project, OneDnnBfloat16SupportFollowsTheCpuFlags) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string flags;
  for (std::string line; flags.empty() && std::getline(cpuinfo, line);)
    if (line.rfind("flags", 0) == 0) flags = line + " ";
  if (flags.empty()) GTEST_SKIP() << "no flags in /proc/cpuinfo";
  auto has = [&](const std::string& flag) { return flags.find(" " + flag + " ") != std::string::npos; };
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap && std::string(cap) == "AVX2") {
    EXPECT_FALSE(sdk::onednn_runs_bfloat16());
  } else if (cap) {
    GTEST_SKIP() << "ONEDNN_MAX_CPU_ISA=" << cap;
  } else if (has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq")) {
    EXPECT_TRUE(sdk::onednn_runs_bfloat16());
  } else if (!has("avx512f") && !has("avx_ne_convert")) {
    EXPECT_FALSE(sdk::onednn_runs_bfloat16());
  }
}
