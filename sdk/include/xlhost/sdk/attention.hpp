// Attention for the SDK's layers: softmax(q·kᵀ/√d over the keys a query sees) → dropout → ·v.
//
// Which keys a query sees is said as prefixes of ranges of the keys, not as a boolean
// tensor: every mask the layers need has that form (causal self-attention, a KV cache, the
// memory models' cross-attention over each position's reads), and in that form a kernel
// multiplies only the keys a block of queries sees. On the CPU in float32, bfloat16 and half
// (training and evaluation, with or without dropout) the SDK's own kernel computes it in
// float32 (src/attention_kernel.hpp); elsewhere ATen's scaled_dot_product_attention does, with
// the mask built from the ranges, or, for dropout on the CPU in float64, softmax and the SDK's
// dropout (dropout.hpp). Dropout's mask is the one apply_dropout would draw for the
// attention weights [B, H, T, S]: one key from the default generator per call.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace xlhost::sdk {

// Keys start … start + length − 1, of which query t (0-based) sees the first
// min(length, first + (t + 1)·step).
struct KeyPrefix {
  int64_t start = 0, length = 0;
  int64_t first = 0;  // keys of the range every query sees
  int64_t step = 0;   // more keys per query, up to and including its own position
  int64_t seen_by(int64_t t) const { return std::min(length, first + (t + 1) * step); }
};

// The ranges of one attention call, in key order and apart.
using Visibility = std::vector<KeyPrefix>;

// Query t sees keys 0 … past + t of `keys` (self-attention after `past` cached positions).
inline Visibility causal_keys(int64_t keys, int64_t past = 0) { return {{0, keys, past, 1}}; }

// Every query sees every one of `keys`.
inline Visibility all_keys(int64_t keys) { return {{0, keys, keys, 0}}; }

// q: [B, H, T, d]; k, v: [B, Hkv, S, d] with H a multiple of Hkv (kv head h serves query heads
// h·H/Hkv … (h+1)·H/Hkv − 1, MiniMind's repeat_kv grouping). `seen` must lie within the S keys
// and let every query see at least one (std::invalid_argument otherwise). Dropout with
// probability p when training. Returns [B, H, T, d].
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const Visibility& seen,
                        double p, bool training);

}  // namespace xlhost::sdk
