// Knowledge-memory building blocks shared by the memory plugins (MODELS.md §3, §5): a
// bank of token-id rows embedded with the model's own token embedding, product-key
// selection with its (gradient-free) balance statistics, and the two fusions of
// selected memories into the residual stream.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "xlhost/sdk/model.hpp"

namespace xlhost::sdk {

// Rows of token ids [rows, length]: entry i tokenised, truncated or right-padded with
// pad_id; rows past the entries are all pad. Throws std::invalid_argument when there are
// no entries. Returns the number of entries that were truncated in `truncated`.
torch::Tensor tokenize_memory_rows(const std::vector<std::string>& entries, const DataContext& context,
                                   int64_t rows, int64_t length, bool add_special_tokens, int64_t* truncated = nullptr);

// Fills `bank` (int64 [N, Lk]) from context.knowledge_entries and reports through
// context.log what was loaded and how many rows stay padding. No entries: `bank` keeps
// its initial content and the log says so.
void init_memory_bank(torch::Tensor& bank, const DataContext& context, bool add_special_tokens,
                      const std::string& plugin_name);

// The bank rows a read selects, each averaged over its Lk tokens once, however often it is
// read: `embedded` [U, D] holds the U distinct rows' mean embeddings, `index` (the read's
// shape) which of them each read is.
struct MemoryRows {
  torch::Tensor embedded, index;
  torch::Tensor per_read() const;  // [..., D]: mean over Lk of embedding(bank[indices])
};
MemoryRows embed_memory_rows(const torch::Tensor& bank, const torch::Tensor& indices,
                             const torch::Tensor& embedding_weight);

// Product-key search (MODELS.md §5.2): the query's halves score √N sub-keys each, the
// top k of each half combine into k² candidate rows of the √N × √N grid, and the best k of
// those are returned as {scores, row indices}, both [..., k]. query [..., Kd];
// keys1, keys2 [√N, Kd/2].
std::pair<torch::Tensor, torch::Tensor> product_key_top_k(const torch::Tensor& query, const torch::Tensor& keys1,
                                                          const torch::Tensor& keys2, int64_t k);

// Product-key top-k gate over √N × √N keys. keys: [2, √N, Kd/2], init N(0, 1).
class ProductKeyGateImpl : public torch::nn::Module {
 public:
  ProductKeyGateImpl(int64_t dim, int64_t knowledge_num, int64_t knowledge_dim, double dropout);
  // x [B, T, D] → indices [B, T, k] (int64 rows of the bank) and softmax scores [B, T, k].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, int64_t k);
  torch::nn::Linear gate_proj{nullptr};
  torch::Tensor keys;

 private:
  double dropout_;
};
TORCH_MODULE(ProductKeyGate);

// Selection statistics of one batch's picks (no gradient: computed from indices).
struct SelectionStats {
  double balance_loss = 0;  // 0.5·KL(uniform ‖ usage) + 0.5·Gini(usage)  (MODELS.md §5.2)
  double entropy = 0;       // of the usage distribution, in nats
  double coverage = 0;      // fraction of rows picked at least once
};
SelectionStats selection_stats(const torch::Tensor& indices, int64_t rows);

// Remembers the last step each bank row was selected, for "fraction of the bank used in
// the last `window` steps".
class MemoryUsageWindow {
 public:
  MemoryUsageWindow(int64_t rows, int64_t window);
  void record(const torch::Tensor& indices);  // one training forward
  double recent_coverage() const;

 private:
  torch::Tensor last_used_;  // int64 [rows], -1 = never
  int64_t step_ = 0, window_;
};

// Cross-attention fusion of the 1.4.8 experiment (MODELS.md §5.4): queries are the gate
// query q [B,T,D]; keys/values are [q ; memories of every position]; 8 heads, attention
// dropout 0.1, then LayerNorm(q + dropout_0.15(attn)). `causal` masks the keys of later
// positions (the faithful setting is unmasked and sees the future). memories.index is
// [B,T,S]; `weights` [B,T,S] (undefined: 1) scale each read memory (score_weighted).
class CrossAttentionFusionImpl : public torch::nn::Module {
 public:
  CrossAttentionFusionImpl(int64_t dim, int64_t heads, double attention_dropout, double output_dropout);
  torch::Tensor forward(const torch::Tensor& q, const MemoryRows& memories, const torch::Tensor& weights, bool causal);
  torch::nn::MultiheadAttention attention{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  double output_dropout_;
};
TORCH_MODULE(CrossAttentionFusion);

// Gated-MLP fusion of 1.4.10 (MODELS.md §5.5): dropout(down(silu(gate(z)) ⊙ up(z))),
// z = [q ; memory], bias-free.
class GatedFusionImpl : public torch::nn::Module {
 public:
  GatedFusionImpl(int64_t dim, int64_t memory_width, double dropout);
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& memory);
  torch::nn::Linear gate{nullptr}, up{nullptr}, down{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(GatedFusion);

// Appends layer `layer`'s read to result.memory_reads when the model's probes are on.
void record_memory_read(const Model& model, ForwardResult& result, int64_t layer, const torch::Tensor& rows,
                        const torch::Tensor& scores, const torch::Tensor& query, const torch::Tensor& bank);

// Model::ablate_memory for a model whose memory is `bank` (int64 token-id rows): kOff sets
// `off` (the plugin's memory path then adds nothing), kShuffle permutes the rows, kRandom
// fills them with random ids below vocab_size; both seeded, on the bank's device.
void ablate_memory_bank(torch::Tensor& bank, MemoryAblation how, uint64_t seed, int64_t vocab_size, bool& off);

// MiniMind's initialiser for the memory variants (MODELS.md §1.7): every Linear
// xavier-uniform with zero bias, the tied embedding/output matrix xavier-uniform too (it
// is the output Linear there), norms left at 1.
void init_memory_variant_weights(torch::nn::Module& model, torch::Tensor& tied_embedding);

// The memory models have no Hugging Face form (no Llama layer holds a knowledge memory):
// `xlhost export` writes their own tensor names, and MiniMind's tied output.weight is accepted.
WeightInterop memory_model_interop(const std::string& plugin_name);

}  // namespace xlhost::sdk
