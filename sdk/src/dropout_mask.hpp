// The CPU dropout mask of dropout.cpp, for kernels that apply it inside their own loops
// (the attention kernel's): the same key and element index give the same mask as apply_dropout.
#pragma once

#include <cstdint>

namespace xlhost::sdk {

// One draw from the default CPU generator: the key of one dropout call.
uint64_t draw_dropout_key();

// The mask of one dropout call: element i of the (contiguous) input is kept, and scaled by
// 1/(1−p), where a hash of (key, i) is at least p·2³².
struct DropoutMask {
  DropoutMask(uint64_t key, double p);
  // out[j] = the factor of element first + j (1/(1−p) or 0), j < n.
  void factors(uint64_t first, int64_t n, float* out) const;
  // out[j] = the factor of element first + j·stride (stride > 0, below 2³²): a column's.
  void factors(uint64_t first, int64_t stride, int64_t n, float* out) const;
  uint64_t key;
  uint32_t threshold;
  float scale;
};

}  // namespace xlhost::sdk
