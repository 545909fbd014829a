// Dropout for the SDK's layers.
//
// On the CPU, ATen's dropout draws one Bernoulli sample per element, serially, from the
// one default generator: at the quickstart memory model's fusion shape (16×4×128×640
// attention weights) that took 74 ms of an SDPA call that takes 8.5 ms without dropout.
// Here the CPU keep-mask comes from a counter-based hash of (key, element index), computed
// in parallel; the key is one 64-bit draw from the default CPU generator per call, so a
// seeded run repeats its masks, a resumed one (the checkpoint holds that generator)
// continues them, and the mask does not depend on the thread count. On other devices
// (CUDA's dropout is parallel already) this is torch::dropout.
#pragma once

#include <torch/torch.h>

namespace xlhost::sdk {

// x scaled by 1/(1−p) where kept, 0 where dropped; x itself when !training or p == 0.
// The drop probability is p rounded to a multiple of 2⁻³².
torch::Tensor apply_dropout(const torch::Tensor& x, double p, bool training);

}  // namespace xlhost::sdk
