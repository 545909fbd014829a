// Hugging Face's LlamaForCausalLM forward (transformers' modeling_llama: rotate-half RoPE,
// repeated KV heads, RMSNorm in float32, SwiGLU MLP, tied head), written apart from the
// SDK's layers so that it can check them: `xlhost export` compares a plugin's logits with
// this composition of the exported tensors, and an import without a config tries the head
// layouts that fit the tensors' shapes with it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/sdk/config_schema.hpp"

namespace xlhost::sdk {

// [B, T, vocab] float32 logits of `tokens` [B, T]. `tensors` under Hugging Face names
// (lm_head.weight may be absent: tied); `config` as HuggingFaceLayout::config (hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, rms_norm_eps, rope_theta).
torch::Tensor llama_reference_logits(const std::map<std::string, torch::Tensor>& tensors,
                                     const std::vector<std::pair<std::string, Value>>& config,
                                     const torch::Tensor& tokens);

}  // namespace xlhost::sdk
