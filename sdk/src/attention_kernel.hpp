// Attention on the CPU, forward and backward, in float32 (the SDK's attention() calls it, with
// bfloat16 and half inputs widened).
// SDPA's CPU flash kernel is tuned for wide heads and has no dropout of its own; at the head
// sizes of the models here (16 for the 26M baseline, 32 for the quickstart) its causal forward
// and backward took 1.8x (16×4×128×32) and 2.6x (2×32×512×16, GQA 8) the time of this one, on a
// 2-core AMD EPYC, and with dropout or a mask attention ran as separate operators over the whole
// [B, H, T, S] weights. Per (sequence, head, block of 64 queries) this kernel multiplies only the
// keys the block can see, keeps the block's scores in cache, applies dropout there (the mask
// recomputed in the backward, never stored) and saves the log-sum-exp per query instead of
// the probabilities.
#pragma once

#include <torch/torch.h>

#include "xlhost/sdk/attention.hpp"

namespace xlhost::sdk {

// q [B, H, T, d], k and v [B, Hkv, S, d] float32, bfloat16 or half on the CPU, H a multiple of Hkv.
bool cpu_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// attention() for those, widened to float32, `seen` checked, dropout p (0: none) drawn as
// apply_dropout would for the weights [B, H, T, S].
torch::Tensor cpu_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const Visibility& seen, double p);

}  // namespace xlhost::sdk
