// What the SDK's CPU kernels (dropout.cpp, fused_ops.cpp, attention_kernel.cpp) share.
#pragma once

#include <cstdint>

// A loop function compiled for AVX-512, AVX2 and the baseline; the loader picks the one the
// CPU runs. Inline helpers it calls are compiled into each variant.
#define XLHOST_CPU_VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))

namespace xlhost::sdk {

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

}  // namespace xlhost::sdk
