#include "xlhost/core/checkpoint/hugging_face_tensors.hpp"

#include <map>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

// MiniMind rotates adjacent pairs (x0,x1),(x2,x3)…; Hugging Face's Llama rotates x_i with
// x_{i+d/2}. Both use frequency i for pair i, so reordering each head's rows — even rows
// first, then odd — makes the rotate-half code compute the same q·k.
torch::Tensor adjacent_to_halves(const torch::Tensor& w, int64_t heads) {
  const int64_t d = w.size(0) / heads;
  return w.reshape({heads, d / 2, 2, w.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}
torch::Tensor halves_to_adjacent(const torch::Tensor& w, int64_t heads) {
  const int64_t d = w.size(0) / heads;
  return w.reshape({heads, 2, d / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}
bool rope_rows_permutable(const torch::Tensor& w, int64_t heads) {
  return w.dim() == 2 && heads > 0 && w.size(0) % (2 * heads) == 0;
}

std::vector<std::pair<std::string, torch::Tensor>> hugging_face_tensors(sdk::Model& model,
                                                                   const sdk::HuggingFaceLayout& layout,
                                                                   const std::string& plugin_name) {
  std::map<std::string, torch::Tensor> ours;
  for (const auto& [name, tensor] : state_tensors(model)) ours[name] = tensor.detach().to(torch::kCPU, torch::kFloat32);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& t : layout.tensors) {
    auto it = ours.find(t.name);
    if (it == ours.end())
      throw UserError("plugin " + plugin_name + ": its Hugging Face layout names " + t.name + ", which the model does not have");
    tensors.emplace_back(t.hf_name, t.rope_heads > 0 ? adjacent_to_halves(it->second, t.rope_heads) : it->second);
    ours.erase(it);
  }
  if (!ours.empty())
    throw UserError("plugin " + plugin_name + ": its Hugging Face layout leaves out " + ours.begin()->first +
                    (ours.size() > 1 ? " and " + std::to_string(ours.size() - 1) + " more tensors" : ""));
  return tensors;
}

}  // namespace xlhost::core
