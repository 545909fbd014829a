// Dropout and attention with dropout for the SDK's layers.
//
// On the CPU, ATen's dropout draws one Bernoulli sample per element, serially, from the
// one default generator: at the quickstart memory model's fusion shape (16×4×128×640
// attention weights) that took 74 ms of an SDPA call that takes 8.5 ms without dropout.
// Here the CPU keep-mask comes from a counter-based hash of (key, element index), computed
// in parallel; the key is one 64-bit draw from the default CPU generator per call, so a
// seeded run repeats its masks, a resumed one (the checkpoint holds that generator)
// continues them, and the mask does not depend on the thread count. On other devices
// (CUDA's dropout is parallel already) these are torch::dropout and SDPA.
#pragma once

#include <torch/torch.h>

#include <optional>

namespace xlhost::sdk {

// x scaled by 1/(1−p) where kept, 0 where dropped; x itself when !training or p == 0.
// The drop probability is p rounded to a multiple of 2⁻³².
torch::Tensor apply_dropout(const torch::Tensor& x, double p, bool training);

// softmax(q·kᵀ/√d, hiding keys where visible is false) → dropout(p when training) → ·v.
// Causal float32 attention on the CPU without dropout and with as many keys as queries (a
// training or prompt forward) runs on the SDK's own kernel (src/causal_attention.hpp).
// q: [B, H, T, d]; k, v: [B, Hkv, S, d] with H a multiple of Hkv (kv head h serves query
// heads h·H/Hkv … (h+1)·H/Hkv − 1); visible: bool, broadcastable to [B, H, T, S]; causal
// (SDPA's is_causal, with no visible): query i sees keys 0 … i.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const std::optional<torch::Tensor>& visible, bool causal, double p, bool training);

}  // namespace xlhost::sdk
