// What the SDK's CPU kernels (dropout, fused_ops, attention_kernel and attention_backward, memory_kernels) share.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

// A loop function compiled for AVX-512, AVX2 and the baseline; the loader picks the one the
// CPU runs. Inline helpers it calls are compiled into each variant. With XLHOST_CPU_VARIANT
// (CMake: -DXLHOST_CPU_VARIANT=avx2), one variant only, whatever the CPU: a benchmark's view
// of a CPU without AVX-512 (scripts/bench_vs_pytorch.sh with ISA=avx2).
#ifdef XLHOST_CPU_VARIANT
#define XLHOST_CPU_VARIANTS __attribute__((target(XLHOST_CPU_VARIANT)))
#else
#define XLHOST_CPU_VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

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

// The largest of x[0 … n), the sum and ⟨a, b⟩: in sixteen lanes of one vector (lane l takes
// elements l, l + 16, …; the rest, then the lanes in order, go into the result), so the order
// of the additions is fixed: the same result on every run of one machine, whatever the thread
// count. (As a loop over an array of sixteen floats, GCC kept the lanes in sixteen scalars.)
inline float max_of(const float* x, int64_t n) {
  Floats16 lanes, v;
  for (int l = 0; l < 16; ++l) lanes[l] = -__builtin_inff();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    std::memcpy(&v, x + j, sizeof v);
    lanes = lanes < v ? v : lanes;
  }
  float result = -__builtin_inff();
  for (; j < n; ++j) result = std::max(result, x[j]);
  for (int l = 0; l < 16; ++l) result = std::max(result, lanes[l]);
  return result;
}

inline float sum_of(const float* x, int64_t n) {
  Floats16 lanes{}, v;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    std::memcpy(&v, x + j, sizeof v);
    lanes += v;
  }
  float result = 0.0f;
  for (; j < n; ++j) result += x[j];
  for (int l = 0; l < 16; ++l) result += lanes[l];
  return result;
}

inline float dot(const float* a, const float* b, int64_t n) {
  Floats16 lanes{}, u, v;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    std::memcpy(&u, a + j, sizeof u);
    std::memcpy(&v, b + j, sizeof v);
    lanes += u * v;
  }
  float result = 0.0f;
  for (; j < n; ++j) result += a[j] * b[j];
  for (int l = 0; l < 16; ++l) result += lanes[l];
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
