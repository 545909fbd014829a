#include "xlhost/sdk/dropout.hpp"

#include "cpu_loops.hpp"
#include "dropout_mask.hpp"

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

// The rule every loop below applies: element `low` of a 2³²-element block (k2 holds the key's
// high half plus the block) is kept where the hash of (key, index) is at least `threshold`.
inline bool kept(uint32_t low, uint32_t k1, uint32_t k2, uint32_t threshold) {
  return mix(mix(low ^ k1) ^ k2) >= threshold;
}

// Elements first … first+n−1 of the 2³²-element block `high`: out = in·scale where the hash of
// (key, index) is at least `threshold`, else 0; in == nullptr: out = scale or 0 (the factors).
XLHOST_CPU_VARIANTS void drop_floats(const float* in, float* out, uint32_t first, int64_t n, uint32_t high,
                                     uint64_t key, uint32_t threshold, float scale) {
  const auto k1 = static_cast<uint32_t>(key), k2 = static_cast<uint32_t>(key >> 32) + high;
  if (in == nullptr) {
    for (int64_t j = 0; j < n; ++j)
      out[j] = kept(first + static_cast<uint32_t>(j), k1, k2, threshold) ? scale : 0.0f;
  } else {
    for (int64_t j = 0; j < n; ++j)
      out[j] = kept(first + static_cast<uint32_t>(j), k1, k2, threshold) ? in[j] * scale : 0.0f;
  }
}

// The factors of elements first, first + stride, … (n of them) of the 2³²-element block
// `high`, none past its end: drop_floats' hash read across rows.
XLHOST_CPU_VARIANTS void drop_factors_strided(uint32_t first, uint32_t stride, int64_t n, uint32_t high, uint64_t key,
                                              uint32_t threshold, float scale, float* out) {
  const auto k1 = static_cast<uint32_t>(key), k2 = static_cast<uint32_t>(key >> 32) + high;
  for (int64_t j = 0; j < n; ++j)
    out[j] = kept(first + static_cast<uint32_t>(j) * stride, k1, k2, threshold) ? scale : 0.0f;
}

// x·1/(1−p) where element i (of x contiguous) is kept, 0 where dropped, in one pass: the
// mask is a hash of (key, i), never stored.
torch::Tensor drop(const torch::Tensor& x, double p, uint64_t key) {
  auto out = torch::empty_like(x);
  const DropoutMask mask(key, p);
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
    drop_floats(in, o, static_cast<uint32_t>(first), n, static_cast<uint32_t>(first >> 32), key, mask.threshold,
                mask.scale);
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
    const uint64_t key = draw_dropout_key();
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

uint64_t draw_dropout_key() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

DropoutMask::DropoutMask(uint64_t key, double p)
    : key(key),
      threshold(static_cast<uint32_t>(std::min(std::llround(std::ldexp(p, 32)), 0xFFFFFFFFLL))),
      scale(static_cast<float>(1.0 / (1.0 - p))) {}

void DropoutMask::factors(uint64_t first, int64_t n, float* out) const {
  while (n > 0) {  // in parts that do not straddle two values of the index's high 32 bits
    const auto part = std::min<int64_t>(n, (int64_t{1} << 32) - static_cast<int64_t>(first & 0xFFFFFFFFU));
    drop_floats(nullptr, out, static_cast<uint32_t>(first), part, static_cast<uint32_t>(first >> 32), key, threshold,
                scale);
    first += part, out += part, n -= part;
  }
}

void DropoutMask::factors(uint64_t first, int64_t stride, int64_t n, float* out) const {
  const auto step = static_cast<uint64_t>(stride);
  while (n > 0) {  // likewise: up to the last element of first's 2³²-element block
    const uint64_t room = 0xFFFFFFFFU - (first & 0xFFFFFFFFU);  // elements after first in it
    const int64_t part = static_cast<uint64_t>(n - 1) * step <= room ? n : static_cast<int64_t>(room / step) + 1;
    drop_factors_strided(static_cast<uint32_t>(first), static_cast<uint32_t>(stride), part,
                         static_cast<uint32_t>(first >> 32), key, threshold, scale, out);
    first += static_cast<uint64_t>(part) * step, out += part, n -= part;
  }
}

torch::Tensor apply_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0) return x;
  if (!x.is_cpu()) return torch::dropout(x, p, training);
  if (p >= 1) return x * 0;
  return Dropout::apply(x, p);
}

}  // namespace xlhost::sdk
