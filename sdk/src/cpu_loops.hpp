// What the SDK's CPU kernels (dropout.cpp, fused_ops.cpp, attention_kernel.cpp, memory_kernels.cpp) share.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

// A loop function compiled for AVX-512, AVX2 and the baseline; the loader picks the one the
// CPU runs. Inline helpers it calls are compiled into each variant.
#define XLHOST_CPU_VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))

namespace xlhost::sdk {

// Sixteen floats (not a half-precision type): one AVX-512 register, two AVX2 ones.
typedef float Floats16 __attribute__((vector_size(64)));

// y += x over n floats, sixteen at a time in an explicit vector: as a plain loop, GCC (-O3)
// unrolled and jammed a caller's loop over rows (memory_kernels.cpp's over tokens) and added
// two rows one float at a time.
inline void add_to(float* y, const float* x, int64_t n) {
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Floats16 a, b;
    std::memcpy(&a, y + c, sizeof a);
    std::memcpy(&b, x + c, sizeof b);
    a += b;
    std::memcpy(y + c, &a, sizeof a);
  }
  for (; c < n; ++c) y[c] += x[c];
}

// op over element(0) … element(n−1), in 16 lanes so that GCC vectorises it without
// reassociation flags; the order of the additions is fixed, so the result is the same on
// every run of one machine, whatever the thread count.
template <typename Element, typename Op>
inline float reduce_in_lanes(int64_t n, float init, Element element, Op op) {
  constexpr int64_t kLanes = 16;
  float lane[kLanes];
  for (float& l : lane) l = init;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = op(lane[l], element(j + l));
  float result = init;
  for (; j < n; ++j) result = op(result, element(j));
  for (float l : lane) result = op(result, l);
  return result;
}

// e^x for x ≤ 0 (attention scores less their row maximum, −|x| for a sigmoid; below −87,
// e^−87 ≈ 1.6·10⁻³⁸): Cephes' polynomial, with the rounding and the power of two done in
// float and integer arithmetic so that the loops calling it vectorise. Relative error at most 8.3·10⁻⁸ (under
// one float ulp) over every float in [−87, 0], checked against double-precision exp.
inline float exp_nonpositive(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5·2²³: adding it rounds to an integer in the low mantissa bits
  x = std::clamp(x, -87.0f, 88.0f);  // above 0 only where the result is discarded (padding): kept finite
  const float t = x * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  x = x - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  return y * std::bit_cast<float>((ni + 127) << 23);
}

}  // namespace xlhost::sdk
