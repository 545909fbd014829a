// RMSNorm, the rotary embedding and SwiGLU's gate as one pass each way on the CPU.
//
// Composed from ATen ops, RMSNorm is pow, mean, add, rsqrt, mul, cast, mul forward and
// about twice that backward, each a pass over [B·T, D]; the rotary embedding is a cast,
// four multiplies, two adds, a stack and a cast; the gate a silu and a multiply forward,
// three multiplies and silu's backward back. At the quickstart's size (16×128 tokens
// of width 128) each pass costs about as much in dispatch as in arithmetic. On the CPU
// these run as one loop forward and one backward, and autograd saves the inputs, not the
// intermediates. Elsewhere they are the ATen compositions: a GPU queues its kernels
// asynchronously, so their dispatch hides behind the arithmetic.
#pragma once

#include <torch/torch.h>

namespace xlhost::sdk {

// weight ⊙ x / sqrt(mean(x²) + eps) over the last dimension, computed in float32; the
// result has the promoted type of x and weight. (The composition rounds x / sqrt(…) to x's
// type before the weight multiplies it; the CPU pass does not.)
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Rotates the adjacent pairs (x[2i], x[2i+1]) of the last dimension by the angle whose
// cosine and sine are cos[t, i] and sin[t, i], t the index along dimension 1: x is
// [B, T, heads, d], cos and sin float32 [T, d/2]. Computed in float32, rounded to x's type.
torch::Tensor rotate_pairs(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// silu(a) ⊙ b where a and b are the first and second half of the last dimension of
// `gate_up` (SwiGLU's two input projections computed as one): [..., 2h] → [..., h].
// Computed in float32, rounded to the input's type.
torch::Tensor silu_gate(const torch::Tensor& gate_up);

// cat({own, weights ⊙ rows[index]}, 1) + bias: own [B, T, D], rows [U, D], index [B, N] (int64,
// rows of `rows`), weights [B, N] (undefined: 1), bias [D] → [B, T + N, D]. A sequence's keys
// (or values) followed by those of the memory rows it read, each distinct row projected once.
// Composed from ATen ops these are a gather, a multiply, a concatenation and an add forward,
// each a pass over [B, T + N, D], and about twice that backward; on the CPU in float32 they
// are one pass each way. Forward, the composition's roundings (the same numbers to the bit);
// backward, its own order of summation (the bias's over rows in order, a weight's over fixed
// blocks of 64 columns), the same for any thread count, within float rounding of the
// composition's.
torch::Tensor append_rows(const torch::Tensor& own, const torch::Tensor& rows, const torch::Tensor& index,
                          const torch::Tensor& weights, const torch::Tensor& bias);

}  // namespace xlhost::sdk
