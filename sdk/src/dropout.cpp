#include "xlhost/sdk/dropout.hpp"

#include "causal_attention.hpp"
#include "cpu_loops.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>

namespace xlhost::sdk {
namespace {

// Chris Wellons' lowbias32: a 32-bit mixer whose multiplies vectorise (AVX2 and up).
inline uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  return x ^ (x >> 16);
}

// Elements first … first+n−1 of the 2³²-element block `high`: out = in·scale where the hash of
// (key, index) is at least `threshold`, else 0; in == nullptr: out = scale or 0 (the factors).
XLHOST_CPU_VARIANTS void drop_floats(const float* in, float* out, uint32_t first, int64_t n, uint32_t high,
                                     uint64_t key, uint32_t threshold, float scale) {
  const auto k1 = static_cast<uint32_t>(key), k2 = static_cast<uint32_t>(key >> 32) + high;
  if (in == nullptr) {
    for (int64_t j = 0; j < n; ++j)
      out[j] = mix(mix((first + static_cast<uint32_t>(j)) ^ k1) ^ k2) >= threshold ? scale : 0.0f;
  } else {
    for (int64_t j = 0; j < n; ++j)
      out[j] = mix(mix((first + static_cast<uint32_t>(j)) ^ k1) ^ k2) >= threshold ? in[j] * scale : 0.0f;
  }
}

uint64_t draw_key() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

// x·1/(1−p) where element i (of x contiguous) is kept, 0 where dropped, in one pass: the
// mask is a hash of (key, i), never stored.
torch::Tensor drop(const torch::Tensor& x, double p, uint64_t key) {
  auto out = torch::empty_like(x);
  const auto threshold = static_cast<uint32_t>(std::min(std::llround(std::ldexp(p, 32)), 0xFFFFFFFFLL));
  const auto scale = static_cast<float>(1.0 / (1.0 - p));
  constexpr int64_t kBlock = 4096;  // divides 2³²: no block straddles two values of `high`
  auto blocks = [&](auto&& body) {
    at::parallel_for(0, (x.numel() + kBlock - 1) / kBlock, 16, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t first = b * kBlock;
        body(first, std::min(kBlock, x.numel() - first));
      }
    });
  };
  auto run = [&](const float* in, float* o, int64_t first, int64_t n) {
    drop_floats(in, o, static_cast<uint32_t>(first), n, static_cast<uint32_t>(first >> 32), key, threshold, scale);
  };
  if (x.scalar_type() == torch::kFloat32) {
    const float* in = x.const_data_ptr<float>();
    float* o = out.mutable_data_ptr<float>();
    blocks([&](int64_t first, int64_t n) { run(in + first, o + first, first, n); });
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "xlhost_dropout", [&] {
    const auto* in = x.const_data_ptr<scalar_t>();
    auto* o = out.mutable_data_ptr<scalar_t>();
    blocks([&](int64_t first, int64_t n) {
      float factors[kBlock];
      run(nullptr, factors, first, n);
      using opmath = at::opmath_type<scalar_t>;  // float for the half types, double for double
      for (int64_t j = 0; j < n; ++j) o[first + j] = static_cast<scalar_t>(static_cast<opmath>(in[first + j]) * factors[j]);
    });
  });
  return out;
}

// The backward pass drops the gradient with the same key: the mask is recomputed, never stored.
struct Dropout : torch::autograd::Function<Dropout> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double p) {
    const uint64_t key = draw_key();
    ctx->saved_data["key"] = static_cast<int64_t>(key);
    ctx->saved_data["p"] = p;
    return drop(x.contiguous(), p, key);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto key = static_cast<uint64_t>(ctx->saved_data["key"].toInt());
    return {drop(grads[0].contiguous(), ctx->saved_data["p"].toDouble(), key), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor apply_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0) return x;
  if (!x.is_cpu()) return torch::dropout(x, p, training);
  if (p >= 1) return x * 0;
  return Dropout::apply(x, p);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const std::optional<torch::Tensor>& visible, bool causal, double p, bool training) {
  const bool gqa = q.size(1) != k.size(1);
  if (!training) p = 0;
  if (p == 0 && causal && !visible && cpu_causal_attention_applies(q, k, v)) return cpu_causal_attention(q, k, v);
  if (p == 0 || !q.is_cpu()) return at::scaled_dot_product_attention(q, k, v, visible, p, causal, {}, gqa);
  // SDPA's CPU kernels drop with ATen's serial dropout; computed here, its math path.
  const int64_t T = q.size(2), S = k.size(2), rep = q.size(1) / k.size(1);
  auto scores = torch::matmul(q / std::sqrt(static_cast<double>(q.size(3))),  // the scale on q, T·d not T·S
                              (gqa ? k.repeat_interleave(rep, 1) : k).transpose(-2, -1));
  {
    // Hidden keys are set in place and outside autograd: softmax's gradient is zero there
    // already, so a masked_fill node would only add a pass over [B, H, T, S] to the backward.
    torch::NoGradGuard no_grad;
    if (causal) scores.masked_fill_(torch::ones({T, S}, q.options().dtype(torch::kBool)).triu(1), -INFINITY);
    if (visible) scores.masked_fill_(visible->logical_not(), -INFINITY);
  }
  auto weights = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  return torch::matmul(apply_dropout(weights, p, training), gqa ? v.repeat_interleave(rep, 1) : v);
}

}  // namespace xlhost::sdk
