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

// q [B, H, T, d], k and v [B, Hkv, S, d] on the CPU, H a multiple of Hkv, in float32, or in
// bfloat16 or half (autocast's projections) where the kernel's working set per (sequence, KV
// head) in the backward, the head's keys and values, their gradients and a query block's two
// score rows per key, (4·d + 2·64)·S floats, stays within 4 MiB. There it beat SDPA's
// reduced-precision CPU kernels, which accumulate in float32 too and, with a mask or dropout,
// run as separate operators (quickstart model's step 1.6x, 26M baseline's 1.5x); beyond, the
// kernel's blocks leave the cache and ATen's bfloat16 matrix products win (model_memory at
// 1.4.8's width, d 64: faster with 2,560 keys, slower with 4,608 and 8,704; a 2-core AMD EPYC
// Zen 5).
bool cpu_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// attention() for those, computed on float32 copies (of bfloat16 and half inputs; the result in
// q's dtype), `seen` checked, dropout p (0: none) drawn as apply_dropout would for the weights
// [B, H, T, S].
torch::Tensor cpu_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const Visibility& seen, double p);

}  // namespace xlhost::sdk
