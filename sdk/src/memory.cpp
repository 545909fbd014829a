#include "xlhost/sdk/memory.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <stdexcept>

#include "memory_kernels.hpp"
#include "xlhost/sdk/attention.hpp"
#include "xlhost/sdk/dropout.hpp"
#include "xlhost/sdk/fused_ops.hpp"
#include "xlhost/sdk/linear.hpp"

namespace xlhost::sdk {

namespace F = torch::nn::functional;

torch::Tensor tokenize_memory_rows(const std::vector<std::string>& entries, const DataContext& context,
                                   int64_t rows, int64_t length, bool add_special_tokens, int64_t* truncated) {
  if (entries.empty()) throw std::invalid_argument("no knowledge entries to tokenise");
  auto bank = torch::full({rows, length}, context.pad_id, torch::kInt64);
  auto b = bank.accessor<int64_t, 2>();
  int64_t cut = 0;
  const int64_t n = std::min<int64_t>(rows, static_cast<int64_t>(entries.size()));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> ids = context.encode(entries[static_cast<size_t>(i)]);
    if (add_special_tokens) {
      ids.insert(ids.begin(), context.bos_id);
      ids.push_back(context.eos_id);
    }
    if (static_cast<int64_t>(ids.size()) > length) ++cut;
    for (int64_t j = 0; j < length && j < static_cast<int64_t>(ids.size()); ++j) b[i][j] = ids[static_cast<size_t>(j)];
  }
  if (truncated) *truncated = cut;
  return bank;
}

void init_memory_bank(torch::Tensor& bank, const DataContext& context, bool add_special_tokens,
                      const std::string& plugin_name) {
  auto say = [&](const std::string& line) {
    if (context.log) context.log(plugin_name + ": " + line);
  };
  const int64_t rows = bank.size(0), length = bank.size(1);
  if (context.knowledge_entries.empty()) {
    say("no knowledge file (data.knowledge_path): the memory bank keeps its random initialisation");
    return;
  }
  int64_t truncated = 0;
  auto filled = tokenize_memory_rows(context.knowledge_entries, context, rows, length, add_special_tokens, &truncated);
  torch::NoGradGuard no_grad;
  bank.copy_(filled);
  const int64_t used = std::min<int64_t>(rows, static_cast<int64_t>(context.knowledge_entries.size()));
  std::string line = "memory bank initialised from " + context.knowledge_path + ": " + std::to_string(used) + " of " +
                     std::to_string(rows) + " rows, " + std::to_string(truncated) + " entries truncated to " +
                     std::to_string(length) + " tokens";
  if (used < rows) line += "; the other " + std::to_string(rows - used) + " rows are padding";
  if (static_cast<int64_t>(context.knowledge_entries.size()) > rows)
    line += "; " + std::to_string(context.knowledge_entries.size() - rows) + " entries did not fit and were dropped";
  say(line);
}

MemoryRows embed_memory_rows(const torch::Tensor& bank, const torch::Tensor& indices,
                             const torch::Tensor& embedding_weight) {
  // The quickstart memory model's 8,192 reads a layer touch at most its 1,024 rows; averaged
  // per read, embedding_bag's backward (a sort of every token read) was the largest cost of
  // its step after the matmuls.
  auto [distinct, inverse] = cpu_distinct_rows_apply(indices)
                                 ? cpu_distinct_rows(indices, bank.size(0))
                                 : at::_unique(indices.reshape({-1}), /*sorted=*/false, /*return_inverse=*/true);
  // embedding_bag averages without materialising the [U, Lk, D] gather (Lk times less memory).
  auto tokens = bank.index_select(0, distinct);
  auto embedded = cpu_bag_mean_applies(tokens, embedding_weight)
                      ? cpu_bag_mean(tokens, embedding_weight)
                      : F::embedding_bag(tokens, embedding_weight, F::EmbeddingBagFuncOptions().mode(torch::kMean));
  return {embedded, inverse.view(indices.sizes())};
}

torch::Tensor MemoryRows::per_read() const {
  auto shape = index.sizes().vec();
  shape.push_back(embedded.size(1));
  return embedded.index_select(0, index.reshape({-1})).view(shape);
}

ProductKeyGateImpl::ProductKeyGateImpl(int64_t dim, int64_t knowledge_num, int64_t knowledge_dim, double dropout)
    : dropout_(dropout) {
  const auto num_keys = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(knowledge_num))));
  if (num_keys * num_keys != knowledge_num)
    throw std::invalid_argument("knowledge_num " + std::to_string(knowledge_num) +
                                " must be a perfect square (product keys)");
  if (knowledge_dim % 2 != 0) throw std::invalid_argument("knowledge_dim must be even");
  gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(dim, knowledge_dim).bias(false)));
  keys = register_parameter("keys", torch::randn({2, num_keys, knowledge_dim / 2}));
}

std::pair<torch::Tensor, torch::Tensor> product_key_top_k(const torch::Tensor& query, const torch::Tensor& keys1,
                                                          const torch::Tensor& keys2, int64_t k) {
  const int64_t half = keys1.size(1), num_keys = keys1.size(0);
  k = std::min(k, num_keys);
  auto s1 = project(query.slice(-1, 0, half), keys1);  // [..., √N]
  auto s2 = project(query.slice(-1, half, 2 * half), keys2);
  auto rows1 = s1.reshape({-1, num_keys}), rows2 = s2.reshape({-1, num_keys});
  if (cpu_product_keys_apply(rows1, rows2)) {
    auto [scores, rows] = cpu_product_key_top_k(rows1, rows2, k);
    auto shape = s1.sizes().vec();
    shape.back() = k;
    return {scores.view(shape), rows.view(shape)};
  }
  auto [top1, idx1] = s1.topk(k, -1);
  auto [top2, idx2] = s2.topk(k, -1);
  auto combined = (top1.unsqueeze(-1) + top2.unsqueeze(-2)).flatten(-2);  // [..., k²]
  auto combined_idx = (idx1.unsqueeze(-1) * num_keys + idx2.unsqueeze(-2)).flatten(-2);
  auto [scores, pick] = combined.topk(k, -1);
  return {scores, combined_idx.gather(-1, pick)};
}

std::pair<torch::Tensor, torch::Tensor> ProductKeyGateImpl::forward(const torch::Tensor& x, int64_t k) {
  auto [scores, indices] = product_key_top_k(project(x, gate_proj->weight), keys[0], keys[1], k);
  scores = scores.softmax(-1);
  scores = apply_dropout(scores, dropout_, is_training());
  return {indices, scores};
}

SelectionStats selection_stats(const torch::Tensor& indices, int64_t rows) {
  torch::NoGradGuard no_grad;
  auto counts = torch::bincount(indices.reshape({-1}).to(torch::kCPU), {}, rows).to(torch::kFloat64);
  const double total = std::max(1.0, counts.sum().item<double>());
  auto p = counts / total;
  SelectionStats s;
  // KL(u ‖ p) with u uniform, as torch's kl_div(log(p + 1e-10), u, 'sum').
  const double u = 1.0 / static_cast<double>(rows);
  const double kl = (u * (std::log(u) - (p + 1e-10).log())).sum().item<double>();
  auto sorted = std::get<0>(p.sort());
  auto i = torch::arange(1, rows + 1, torch::kFloat64);
  const double gini = 2.0 * (i * sorted).sum().item<double>() / (rows * std::max(1e-12, sorted.sum().item<double>())) -
                      (rows + 1.0) / rows;
  s.balance_loss = 0.5 * kl + 0.5 * gini;
  auto used = p.masked_select(p > 0);
  s.entropy = -(used * used.log()).sum().item<double>();
  s.coverage = static_cast<double>(used.numel()) / static_cast<double>(rows);
  return s;
}

MemoryUsageWindow::MemoryUsageWindow(int64_t rows, int64_t window)
    : last_used_(torch::full({rows}, -1, torch::kInt64)), window_(window) {}

void MemoryUsageWindow::record(const torch::Tensor& indices) {
  last_used_.index_fill_(0, indices.reshape({-1}).to(torch::kCPU), step_);
  ++step_;
}

double MemoryUsageWindow::recent_coverage() const {
  const int64_t since = step_ - window_;
  return (last_used_ >= std::max<int64_t>(0, since)).sum().item<double>() / static_cast<double>(last_used_.numel());
}

CrossAttentionFusionImpl::CrossAttentionFusionImpl(int64_t dim, int64_t heads, double attention_dropout,
                                                   double output_dropout)
    : output_dropout_(output_dropout) {
  attention = register_module("attention", torch::nn::MultiheadAttention(
                                               torch::nn::MultiheadAttentionOptions(dim, heads).dropout(attention_dropout)));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
}

torch::Tensor CrossAttentionFusionImpl::forward(const torch::Tensor& q, const MemoryRows& memories,
                                                const torch::Tensor& weights, bool causal) {
  const int64_t B = q.size(0), T = q.size(1), S = memories.index.size(2), D = q.size(2);
  // Key j < T is position j's query; key T + t'·S + s is memory s of position t'. Causal:
  // position t sees keys of positions ≤ t only.
  const Visibility seen = causal ? Visibility{{0, T, 0, 1}, {T, T * S, 0, S}} : all_keys(T + T * S);
  // MultiheadAttention's parameters and initialisation, computed by SDPA: the C++
  // frontend's MultiheadAttention adds attn_mask to the scores, so a boolean mask there
  // would add 0/1 instead of hiding keys.
  const auto& options = attention->options;
  const int64_t H = options.num_heads();
  auto w = attention->in_proj_weight.chunk(3), b = attention->in_proj_bias.chunk(3);
  auto heads = [&](const torch::Tensor& x) { return x.view({B, -1, H, D / H}).transpose(1, 2); };
  // Keys and values [B, T + T·S, D]: q's, then the memories'. W·(s·m) + b = s·(W·m) + b:
  // each distinct row is projected once, not once per read (8 times fewer rows at the
  // quickstart memory model's shape).
  auto keys_values = [&](int64_t i) {
    return heads(append_rows(project(q, w[i]), project(memories.embedded, w[i]), memories.index.reshape({B, T * S}),
                             weights.defined() ? weights.reshape({B, T * S}) : weights, b[i]));
  };
  // x·wᵀ + b with b in the product's dtype, as F::linear adds it under autocast: a float32 bias
  // made the query float32, and attention then took 1.4.8's bfloat16 fusion as float32.
  auto affine = [](const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
    auto y = project(x, weight);
    return y + bias.to(y.scalar_type());
  };
  auto out = sdk::attention(heads(affine(q, w[0], b[0])), keys_values(1), keys_values(2), seen, options.dropout(),
                            is_training());
  const auto& out_proj = attention->out_proj;
  out = affine(out.transpose(1, 2).reshape({B, T, D}), out_proj->weight, out_proj->bias);
  out = apply_dropout(out, output_dropout_, is_training());
  return norm(q + out);
}

GatedFusionImpl::GatedFusionImpl(int64_t dim, int64_t memory_width, double dropout) : dropout_(dropout) {
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  gate = register_module("gate", linear(dim + memory_width, dim));
  up = register_module("up", linear(dim + memory_width, dim));
  down = register_module("down", linear(dim, dim));
}

torch::Tensor GatedFusionImpl::forward(const torch::Tensor& q, const torch::Tensor& memory) {
  auto z = torch::cat({q, memory}, -1);
  auto out = project(F::silu(project(z, gate->weight)) * project(z, up->weight), down->weight);
  return apply_dropout(out, dropout_, is_training());
}

void init_memory_variant_weights(torch::nn::Module& model, torch::Tensor& tied_embedding) {
  torch::NoGradGuard no_grad;
  for (auto& module : model.modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(linear->weight);
      if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
    }
  }
  torch::nn::init::xavier_uniform_(tied_embedding);
}

void record_memory_read(const Model& model, ForwardResult& result, int64_t layer, const torch::Tensor& rows,
                        const torch::Tensor& scores, const torch::Tensor& query, const torch::Tensor& bank) {
  if (!model.memory_probes()) return;
  result.memory_reads.push_back({layer, rows.detach(), scores.detach(), query.detach(), bank});
}

void ablate_memory_bank(torch::Tensor& bank, MemoryAblation how, uint64_t seed, int64_t vocab_size, bool& off) {
  torch::NoGradGuard no_grad;
  off = how == MemoryAblation::kOff;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);  // the training RNG stays untouched
  if (how == MemoryAblation::kShuffle) {
    const auto order = torch::randperm(bank.size(0), generator, torch::kInt64).to(bank.device());
    bank.copy_(bank.index_select(0, order));
  } else if (how == MemoryAblation::kRandom) {
    bank.copy_(torch::randint(vocab_size, bank.sizes(), generator, torch::kInt64).to(bank.device()));
  }
}

WeightInterop memory_model_interop(const std::string& plugin_name) {
  WeightInterop interop;
  interop.native_export_note = plugin_name + " has no Hugging Face form: its knowledge memory is no Llama layer. "
                               "model.safetensors holds xlhost's tensor names (those of the research code's "
                               "state dict) and config.json the xlhost config; load them with xlhost or that code";
  interop.tied_copies = {{"output.weight", "tok_embeddings.weight"}};
  return interop;
}

}  // namespace xlhost::sdk
