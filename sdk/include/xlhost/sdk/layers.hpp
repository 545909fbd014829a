// Building blocks shared by the architecture plugins (MODELS.md §1). A plugin composes
// these; it does not copy them.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "xlhost/sdk/attention.hpp"
#include "xlhost/sdk/config_schema.hpp"
#include "xlhost/sdk/dropout.hpp"
#include "xlhost/sdk/fused_ops.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::sdk {

// y = w ⊙ x / sqrt(mean(x²) + eps), computed in float32 and cast back.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Complex-form rotary embedding over adjacent pairs (x0,x1),(x2,x3),… (MiniMind's
// convention, not rotate-half). Tables are not parameters and not saved.
class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta, int64_t max_positions = 32768);
  // x: [B, T, heads, head_dim]; positions start_pos .. start_pos+T-1.
  torch::Tensor apply(const torch::Tensor& x, int64_t start_pos);
  int64_t max_positions() const { return cos_.size(0); }

 private:
  torch::Tensor cos_, sin_;  // [max_positions, head_dim/2], float32
};

// Incremental decoding state of a stack of attention layers.
struct KVCache : DecodeCache {
  explicit KVCache(size_t layers) : keys(layers), values(layers) {}
  std::vector<torch::Tensor> keys, values;  // per layer [B, S, Hkv, d]
};

// The MiniMind LMConfig keys every decoder plugin shares (dim, n_layers, n_heads,
// n_kv_heads, vocab_size, norm_eps, rope_theta, dropout), with the defaults of the
// reported runs (32 query / 8 KV heads; the fork's file default is 16 heads).
Schema decoder_schema();

// Causal self-attention with grouped KV heads (GQA); bias-free projections.
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t dim, int64_t n_heads, int64_t n_kv_heads, double dropout);
  // x: [B, T, D]. With a cache, attends to the cached positions as well and appends
  // this call's keys/values to cache->keys[layer], cache->values[layer].
  torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding& rope, KVCache* cache = nullptr,
                        size_t layer = 0);

  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
  int64_t n_heads, n_kv_heads, head_dim;

 private:
  double dropout_;
};
TORCH_MODULE(CausalSelfAttention);

// hidden_dim <= 0: 4·dim → ⌊2/3⌋ → rounded up to a multiple of multiple_of (512 → 1408).
int64_t swiglu_hidden_dim(int64_t dim, int64_t hidden_dim, int64_t multiple_of);

// dropout(w2(silu(w1 x) ⊙ w3 x)), bias-free.
class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(int64_t dim, int64_t hidden_dim, double dropout);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(SwiGLU);

// One [V, D] matrix used both as the token embedding and as the output head, registered
// once (as `weight`) so it is counted and saved once. Initialised like the output Linear
// it replaces in MiniMind: U(±1/√D).
class TiedEmbeddingImpl : public torch::nn::Module {
 public:
  TiedEmbeddingImpl(int64_t vocab_size, int64_t dim);
  torch::Tensor embed(const torch::Tensor& ids);
  torch::Tensor logits(const torch::Tensor& h);
  torch::Tensor weight;
};
TORCH_MODULE(TiedEmbedding);

}  // namespace xlhost::sdk
