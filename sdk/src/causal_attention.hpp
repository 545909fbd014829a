// Causal attention for float32 on the CPU, forward and backward (the SDK's attention()
// calls it). SDPA's CPU flash kernel is tuned for wide heads; at the head sizes of the
// models here (16 for the 26M baseline, 32 for the quickstart) its forward and backward
// took 1.8x (16×4×128×32) and 2.6x (2×32×512×16, GQA 8) the time of this one, on a 2-core
// AMD EPYC. Per (sequence, head, block of 64 queries) it multiplies only the keys the
// block can see, keeps the block's scores in cache, and saves the log-sum-exp per query
// instead of the probabilities.
#pragma once

#include <torch/torch.h>

namespace xlhost::sdk {

// q [B, H, T, d], k and v [B, Hkv, T, d] float32 on the CPU, H a multiple of Hkv.
bool cpu_causal_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// softmax(q·kᵀ/√d) with query i seeing keys 0 … i, times v; kv head g serves query heads
// g·H/Hkv … (g+1)·H/Hkv − 1.
torch::Tensor cpu_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

}  // namespace xlhost::sdk
