#include "xlhost/sdk/llama_reference.hpp"

#include <cmath>
#include <stdexcept>

namespace xlhost::sdk {

namespace {

double number(const std::vector<std::pair<std::string, Value>>& config, const std::string& key) {
  for (const auto& [name, value] : config) {
    if (name != key) continue;
    if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&value)) return *d;
  }
  throw std::invalid_argument("Llama reference: the layout's config has no number " + key);
}

const torch::Tensor& tensor(const std::map<std::string, torch::Tensor>& tensors, const std::string& name) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) throw std::invalid_argument("Llama reference: no tensor " + name);
  return it->second;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return weight * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

}  // namespace

torch::Tensor llama_reference_logits(const std::map<std::string, torch::Tensor>& tensors,
                                     const std::vector<std::pair<std::string, Value>>& config,
                                     const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const auto dim = static_cast<int64_t>(number(config, "hidden_size"));
  const auto layers = static_cast<int64_t>(number(config, "num_hidden_layers"));
  const auto heads = static_cast<int64_t>(number(config, "num_attention_heads"));
  const auto kv_heads = static_cast<int64_t>(number(config, "num_key_value_heads"));
  const double eps = number(config, "rms_norm_eps"), theta = number(config, "rope_theta");
  const int64_t head_dim = dim / heads, batch = tokens.size(0), length = tokens.size(1);
  auto w = [&](const std::string& name) { return tensor(tensors, name).to(torch::kFloat32); };

  const auto inv_freq = 1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, torch::kFloat64) / head_dim);
  const auto freqs = torch::outer(torch::arange(length, torch::kFloat64), inv_freq);
  const auto angles = torch::cat({freqs, freqs}, -1);
  const auto cos = angles.cos().to(torch::kFloat32), sin = angles.sin().to(torch::kFloat32);
  auto rope = [&](const torch::Tensor& x) { return x * cos + rotate_half(x) * sin; };  // x: [B, H, T, d]
  auto split = [&](const torch::Tensor& x, int64_t n) { return x.view({batch, length, n, head_dim}).transpose(1, 2); };

  auto h = w("model.embed_tokens.weight").index_select(0, tokens.reshape(-1)).view({batch, length, dim});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const auto x = rms_norm(h, w(p + "input_layernorm.weight"), eps);
    const auto q = rope(split(torch::matmul(x, w(p + "self_attn.q_proj.weight").t()), heads));
    auto k = rope(split(torch::matmul(x, w(p + "self_attn.k_proj.weight").t()), kv_heads));
    auto v = split(torch::matmul(x, w(p + "self_attn.v_proj.weight").t()), kv_heads);
    k = k.repeat_interleave(heads / kv_heads, 1), v = v.repeat_interleave(heads / kv_heads, 1);
    auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
    scores = scores.masked_fill(torch::ones({length, length}, torch::kBool).triu(1), -INFINITY);
    const auto attended = torch::matmul(scores.softmax(-1), v).transpose(1, 2).reshape({batch, length, dim});
    h = h + torch::matmul(attended, w(p + "self_attn.o_proj.weight").t());
    const auto y = rms_norm(h, w(p + "post_attention_layernorm.weight"), eps);
    const auto gate = torch::silu(torch::matmul(y, w(p + "mlp.gate_proj.weight").t()));
    h = h + torch::matmul(gate * torch::matmul(y, w(p + "mlp.up_proj.weight").t()), w(p + "mlp.down_proj.weight").t());
  }
  h = rms_norm(h, w("model.norm.weight"), eps);
  const auto head = tensors.count("lm_head.weight") ? w("lm_head.weight") : w("model.embed_tokens.weight");
  return torch::matmul(h, head.t());
}

}  // namespace xlhost::sdk
