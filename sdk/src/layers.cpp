#include "xlhost/sdk/layers.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "xlhost/sdk/linear.hpp"

namespace xlhost::sdk {

namespace F = torch::nn::functional;

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return rms_norm(x, weight, eps_); }

Schema decoder_schema() {
  return {
      int_key("dim", 512, "model width D", 8, 65536),
      int_key("n_layers", 8, "number of blocks", 1, 1024),
      int_key("n_heads", 32, "query heads (must divide dim)", 1, 1024),
      int_key("n_kv_heads", 8, "key/value heads (grouped-query attention; must divide n_heads)", 1, 1024),
      int_key("vocab_size", 6400, "vocabulary size; at least the tokenizer's", 2, 1 << 24),
      float_key("norm_eps", 1e-5, "RMSNorm epsilon", 0.0, 1.0),
      float_key("rope_theta", 1e6, "RoPE base", 1.0, 1e12),
      float_key("dropout", 0.0, "dropout probability (embeddings, attention and sub-layer outputs)", 0.0, 1.0),
  };
}

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, int64_t max_positions) {
  if (head_dim % 2 != 0) throw std::invalid_argument("rotary embedding needs an even head_dim, got " +
                                                     std::to_string(head_dim));
  auto i = torch::arange(0, head_dim, 2, torch::kFloat64).slice(0, 0, head_dim / 2);
  auto freqs = torch::pow(theta, -i / static_cast<double>(head_dim));
  auto t = torch::arange(max_positions, torch::kFloat64);
  auto angles = torch::outer(t, freqs);
  cos_ = angles.cos().to(torch::kFloat32);
  sin_ = angles.sin().to(torch::kFloat32);
}

torch::Tensor RotaryEmbedding::apply(const torch::Tensor& x, int64_t start_pos) {
  const int64_t T = x.size(1);
  if (start_pos + T > cos_.size(0))
    throw std::out_of_range("rotary embedding: position " + std::to_string(start_pos + T) +
                            " beyond the table of " + std::to_string(cos_.size(0)));
  if (cos_.device() != x.device()) {
    cos_ = cos_.to(x.device());
    sin_ = sin_.to(x.device());
  }
  return rotate_pairs(x, cos_.slice(0, start_pos, start_pos + T), sin_.slice(0, start_pos, start_pos + T));
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t dim, int64_t n_heads_, int64_t n_kv_heads_,
                                                 double dropout)
    : n_heads(n_heads_), n_kv_heads(n_kv_heads_), head_dim(dim / n_heads_), dropout_(dropout) {
  if (dim % n_heads != 0)
    throw std::invalid_argument("dim " + std::to_string(dim) + " is not divisible by n_heads " +
                                std::to_string(n_heads));
  if (n_heads % n_kv_heads != 0)
    throw std::invalid_argument("n_heads " + std::to_string(n_heads) + " is not divisible by n_kv_heads " +
                                std::to_string(n_kv_heads));
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  wq = register_module("wq", linear(dim, n_heads * head_dim));
  wk = register_module("wk", linear(dim, n_kv_heads * head_dim));
  wv = register_module("wv", linear(dim, n_kv_heads * head_dim));
  wo = register_module("wo", linear(n_heads * head_dim, dim));
}

namespace {

// [x·w₁ᵀ | x·w₂ᵀ | …]: with many rows one matrix product over the weights side by side (at the
// quickstart's 2048 rows one GEMM of twice the width ran faster than two; the parameters stay
// apart for checkpoints and interop); with few (decoding) copying the weights would cost more
// than the products, so one product each.
torch::Tensor side_by_side(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) {
  constexpr int64_t kRows = 64;
  if (x.numel() / x.size(-1) >= kRows) return project(x, torch::cat(weights));
  std::vector<torch::Tensor> parts;
  for (const auto& w : weights) parts.push_back(project(x, w));
  return torch::cat(parts, -1);
}

}  // namespace

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, RotaryEmbedding& rope, KVCache* cache,
                                               size_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t past = cache && cache->keys[layer].defined() ? cache->keys[layer].size(1) : 0;
  const int64_t q_width = n_heads * head_dim, kv_width = n_kv_heads * head_dim;
  auto qkv = side_by_side(x, {wq->weight, wk->weight, wv->weight});
  auto q = rope.apply(qkv.narrow(-1, 0, q_width).view({B, T, n_heads, head_dim}), past);
  auto k = rope.apply(qkv.narrow(-1, q_width, kv_width).view({B, T, n_kv_heads, head_dim}), past);
  auto v = qkv.narrow(-1, q_width + kv_width, kv_width).view({B, T, n_kv_heads, head_dim});
  if (cache) {
    if (past > 0) {
      k = torch::cat({cache->keys[layer], k}, 1);
      v = torch::cat({cache->values[layer], v}, 1);
    }
    cache->keys[layer] = k;
    cache->values[layer] = v;
  }
  // Query i sits at position past + i and sees keys 0 … past + i. Grouped KV heads go as they
  // are: kv head h serves query heads h·n_rep … h·n_rep+n_rep−1, MiniMind's repeat_kv grouping.
  auto out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal_keys(k.size(1), past),
                       dropout_, is_training());
  out = project(out.transpose(1, 2).reshape({B, T, n_heads * head_dim}), wo->weight);
  return apply_dropout(out, dropout_, is_training());
}

int64_t swiglu_hidden_dim(int64_t dim, int64_t hidden_dim, int64_t multiple_of) {
  if (hidden_dim > 0) return hidden_dim;
  int64_t h = 2 * (4 * dim) / 3;
  return multiple_of * ((h + multiple_of - 1) / multiple_of);
}

SwiGLUImpl::SwiGLUImpl(int64_t dim, int64_t hidden_dim, double dropout) : dropout_(dropout) {
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  w1 = register_module("w1", linear(dim, hidden_dim));
  w2 = register_module("w2", linear(hidden_dim, dim));
  w3 = register_module("w3", linear(dim, hidden_dim));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  auto out = project(silu_gate(side_by_side(x, {w1->weight, w3->weight})), w2->weight);
  return apply_dropout(out, dropout_, is_training());
}

TiedEmbeddingImpl::TiedEmbeddingImpl(int64_t vocab_size, int64_t dim) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
  weight = register_parameter("weight", torch::empty({vocab_size, dim}).uniform_(-bound, bound));
}

torch::Tensor TiedEmbeddingImpl::embed(const torch::Tensor& ids) { return F::embedding(ids, weight); }

torch::Tensor TiedEmbeddingImpl::logits(const torch::Tensor& h) { return project(h, weight); }

}  // namespace xlhost::sdk
