// The CPU dropout mask of dropout.cpp, for a kernel that applies it inside its own loops
// (attention_kernel.cpp): the same key and element index give the same mask as apply_dropout.
#pragma once

#include <cstdint>

namespace xlhost::sdk {

// One draw from the default CPU generator: the key of one dropout call.
uint64_t draw_dropout_key();

// out[j] = 1/(1−p) where element first + j of a contiguous tensor is kept under `key`, else 0.
void dropout_factors(uint64_t first, int64_t n, uint64_t key, double p, float* out);

}  // namespace xlhost::sdk
