// Weights that claim the Llama layout, checked against the SDK's reference Llama
// (sdk/llama_reference.hpp) on a probe batch: an export must compute what the plugin
// computes, and an import without a config must fit the head layout it is loaded with
// (head counts that give the same tensor shapes load silently otherwise).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "xlhost/sdk/plugin.hpp"

namespace xlhost::core {

// UserError naming the plugin and the largest logit difference when `tensors` (Hugging
// Face names, as hugging_face_tensors gives them) composed as transformers' Llama give
// other logits than the plugin's forward on a fixed probe batch.
void verify_llama_export(sdk::Model& model, const sdk::HuggingFaceLayout& layout,
                         const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::string& plugin_name);

// The mean next-token loss on `tokens` [B, T+1] of the model's weights read with each head
// layout (query heads, KV heads) that gives the same tensor shapes, the loaded one first.
struct HeadLayoutLoss {
  int64_t heads = 0, kv_heads = 0;
  double loss = 0;
};
std::vector<HeadLayoutLoss> head_layout_losses(sdk::Model& model, const sdk::HuggingFaceLayout& layout,
                                               const torch::Tensor& tokens);

// For weights loaded without a config (`source`): UserError when another head layout fits
// them clearly better than every other (a probe loss lower by 3% and at least 0.1 nats),
// naming the alternatives; a warning (returned, "" when none) when no layout stands out.
std::string check_head_layout(sdk::Model& model, const sdk::HuggingFaceLayout& layout, const torch::Tensor& tokens,
                              const std::string& source);

}  // namespace xlhost::core
