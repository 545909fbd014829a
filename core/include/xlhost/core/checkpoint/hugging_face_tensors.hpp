// A model's tensors under a Hugging Face layout's names (sdk/weight_interop.hpp), and the
// row order of rotary projections between MiniMind's adjacent pairs and Hugging Face's
// rotate-half halves: what exports, imports and the Llama checks share.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "xlhost/sdk/plugin.hpp"

namespace xlhost::core {

// Rows of `heads` heads [heads·d, in] from adjacent pairs to halves, and back; the back
// direction needs rope_rows_permutable (d even).
torch::Tensor adjacent_to_halves(const torch::Tensor& w, int64_t heads);
torch::Tensor halves_to_adjacent(const torch::Tensor& w, int64_t heads);
bool rope_rows_permutable(const torch::Tensor& w, int64_t heads);

// The model's tensors (float32, on the CPU) under the layout's Hugging Face names, rotary
// rows in rotate-half order, in the layout's order; UserError when the layout and the
// model's tensors differ.
std::vector<std::pair<std::string, torch::Tensor>> hugging_face_tensors(sdk::Model& model,
                                                                   const sdk::HuggingFaceLayout& layout,
                                                                   const std::string& plugin_name);

}  // namespace xlhost::core
