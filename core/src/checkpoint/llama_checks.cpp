#include "xlhost/core/checkpoint/llama_checks.hpp"

#include <algorithm>
#include <sstream>

#include "xlhost/core/checkpoint/hugging_face_tensors.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/sdk/llama_reference.hpp"

namespace xlhost::core {

namespace {

using LayoutConfig = std::vector<std::pair<std::string, sdk::Value>>;

int64_t config_int(const LayoutConfig& config, const std::string& key) {
  for (const auto& [name, value] : config)
    if (name == key && std::holds_alternative<int64_t>(value)) return std::get<int64_t>(value);
  throw UserError("Llama layout: its config has no integer " + key);
}

void set_int(LayoutConfig& config, const std::string& key, int64_t value) {
  for (auto& [name, v] : config)
    if (name == key) v = value;
}

// Token ids drawn without a random generator: an export during training must not move it.
torch::Tensor probe_tokens(int64_t vocab, int64_t length) {
  return (torch::arange(2 * length, torch::kInt64) * 7919 + 13).remainder(vocab).view({2, length});
}

// The plugin's own logits, in evaluation mode (no dropout), as float32 on the CPU.
torch::Tensor plugin_logits(sdk::Model& model, const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  const auto device = model.parameters().front().device();
  auto logits = model.forward(tokens.to(device)).logits.to(torch::kCPU, torch::kFloat32);
  model.train(training);
  return logits;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

std::string describe(const HeadLayoutLoss& l) {
  return std::to_string(l.heads) + "/" + std::to_string(l.kv_heads) + " loss " + fixed(l.loss, 3);
}

}  // namespace

void verify_llama_export(sdk::Model& model, const sdk::HuggingFaceLayout& layout,
                         const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::string& plugin_name) {
  const int64_t length = std::min<int64_t>(16, config_int(layout.config, "max_position_embeddings"));
  const auto tokens = probe_tokens(config_int(layout.config, "vocab_size"), length);
  const auto reference = sdk::llama_reference_logits({tensors.begin(), tensors.end()}, layout.config, tokens);
  const auto ours = plugin_logits(model, tokens);
  const double scale = std::max(1.0, reference.abs().max().item<double>());
  const double difference = ours.sizes() == reference.sizes() ? (ours - reference).abs().max().item<double>() : scale;
  // float32 differs only in the order of operations; half-precision weights round on the way.
  const bool exact = model.parameters().front().scalar_type() == torch::kFloat32;
  if (difference > (exact ? 1e-3 : 5e-2) * scale)
    throw UserError("plugin " + plugin_name + ": the exported " + layout.architecture +
                    " would compute other logits than the plugin (largest difference " + fixed(difference, 4) +
                    ", logits up to " + fixed(scale, 2) + ", on a probe batch): the model's blocks are not the "
                    "composition its weight_interop() declares. Declare a native export (native_export_note) or "
                    "a layout that matches; nothing was written");
}

std::vector<HeadLayoutLoss> head_layout_losses(sdk::Model& model, const sdk::HuggingFaceLayout& layout,
                                               const torch::Tensor& tokens) {
  const int64_t dim = config_int(layout.config, "hidden_size"), heads = config_int(layout.config, "num_attention_heads"),
                kv_heads = config_int(layout.config, "num_key_value_heads");
  std::vector<HeadLayoutLoss> layouts{{heads, kv_heads, 0}};
  for (int64_t h = 2; h <= dim; ++h) {  // same q/k/v shapes: dim = h·head_dim, kv·head_dim unchanged
    if (h == heads || dim % h != 0 || (dim / h) % 2 != 0 || (kv_heads * h) % heads != 0) continue;
    const int64_t kv = kv_heads * h / heads;
    if (kv >= 1 && h % kv == 0) layouts.push_back({h, kv, 0});
  }
  const auto inputs = tokens.slice(1, 0, -1).to(torch::kCPU), targets = tokens.slice(1, 1).to(torch::kCPU);
  for (auto& candidate : layouts) {
    auto read_as = layout;  // the same tensors, their rotary rows taken as this layout's heads
    set_int(read_as.config, "num_attention_heads", candidate.heads);
    set_int(read_as.config, "num_key_value_heads", candidate.kv_heads);
    set_int(read_as.config, "head_dim", dim / candidate.heads);
    for (auto& t : read_as.tensors) t.rope_heads = t.rope_heads * candidate.heads / heads;  // q: h, k: kv'
    const auto hf = hugging_face_tensors(model, read_as, "");
    const auto logits = sdk::llama_reference_logits({hf.begin(), hf.end()}, read_as.config, inputs);
    candidate.loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape(-1))
                         .item<double>();
  }
  return layouts;
}

std::string check_head_layout(sdk::Model& model, const sdk::HuggingFaceLayout& layout, const torch::Tensor& tokens,
                              const std::string& source) {
  const auto losses = head_layout_losses(model, layout, tokens);
  const auto& loaded = losses.front();
  auto sorted = losses;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.loss < b.loss; });
  const auto& best = sorted[0];
  // A layout the weights were trained with stands out; untrained weights favour none.
  const bool clear = sorted.size() == 1 || best.loss < sorted[1].loss - std::max(0.1, 0.03 * sorted[1].loss);
  std::string all;
  for (const auto& l : losses) all += (all.empty() ? "" : ", ") + describe(l);
  if (clear && best.heads != loaded.heads)
    throw UserError(source + ": its weights fit " + std::to_string(best.heads) + " query / " +
                    std::to_string(best.kv_heads) + " KV heads far better than the configured " +
                    std::to_string(loaded.heads) + " / " + std::to_string(loaded.kv_heads) +
                    " (probe loss on the training data, heads/KV heads: " + all +
                    "); set the model's head counts (model.n_heads, model.n_kv_heads) to the layout it was trained with");
  if (clear) return "";
  return source + ": the probe cannot tell which head layout the weights were trained with (" + all +
         "; the weights may be untrained); the configured " + std::to_string(loaded.heads) + " / " +
         std::to_string(loaded.kv_heads) + " is used: check it against the model's own config";
}

}  // namespace xlhost::core
