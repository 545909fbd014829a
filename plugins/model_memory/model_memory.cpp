// model_memory: a token-id memory bank read through product-key selection and fused into
// every layer (MODELS.md §5). fusion=cross_attention is experiment 1.4.8 (seeds/003);
// fusion=gated_mlp is 1.4.10 (Gumbel choice among candidates, similarity/diversity losses).
// The bank is a buffer: fixed with freeze_memory, else rewritten by the EMA rule of §5.6.
#include <xlhost/sdk/layers.hpp>
#include <xlhost/sdk/memory.hpp>
#include <xlhost/sdk/plugin.hpp>

namespace {

using namespace xlhost::sdk;
namespace F = torch::nn::functional;

struct LayerOutput {
  torch::Tensor out, selected, query;  // selected [B,T,S] rows, query [B,T,D] (for the EMA rule)
  torch::Tensor read_scores;           // [B,T,S]: the weight of each selected row in the read
  torch::Tensor sim_loss, div_loss;    // gated_mlp only
  SelectionStats stats;
};

class MemoryBlockImpl : public torch::nn::Module {
 public:
  explicit MemoryBlockImpl(const ModelConfig& c)
      : gated_(c.get_string("fusion") == "gated_mlp"),
        causal_mask_(c.get_string("fusion_mask") == "causal"),
        score_weighted_(c.get_string("selection") == "score_weighted"),
        selected_(gated_ ? c.get_int("num_candidates") : c.get_int("num_selected")),
        tau_(c.get_float("gumbel_temperature")) {
    const int64_t dim = c.get_int("dim");
    attention_norm = register_module("attention_norm", RMSNorm(dim, c.get_float("norm_eps")));
    attention = register_module("attention", CausalSelfAttention(dim, c.get_int("n_heads"), c.get_int("n_kv_heads"),
                                                                 c.get_float("dropout")));
    memory_norm = register_module("memory_norm", RMSNorm(dim, c.get_float("norm_eps")));
    gate = register_module("gate", ProductKeyGate(dim, c.get_int("knowledge_num"), c.get_int("knowledge_dim"),
                                                  c.get_float("dropout")));
    if (gated_)
      gated_fusion = register_module("fusion", GatedFusion(dim, dim, c.get_float("dropout")));
    else
      cross_fusion = register_module("fusion", CrossAttentionFusion(dim, c.get_int("fusion_heads"),
                                                                    c.get_float("fusion_attention_dropout"),
                                                                    c.get_float("fusion_dropout")));
  }

  // memory_off (an ablation): the selection runs, its memories add nothing.
  LayerOutput forward(const torch::Tensor& x, RotaryEmbedding& rope, const torch::Tensor& bank,
                      const torch::Tensor& embedding, bool memory_off) {
    LayerOutput r;
    auto a = attention(attention_norm(x), rope);
    auto h = x + a;
    auto q = memory_norm(a);  // the gate queries with the attention output, not the residual
    auto [indices, scores] = gate(q, selected_);
    if (is_training()) r.stats = selection_stats(indices, bank.size(0));  // O(N): not per generated token
    auto rows = embed_memory_rows(bank, indices, embedding);
    // The top-k indices carry no gradient; weighting the picked memories by their gate
    // scores (as product-key memory layers do) is the one path by which the gate learns.
    auto weights = score_weighted_ ? scores.to(rows.embedded.scalar_type()) : torch::Tensor();
    r.query = q.detach();
    if (!gated_) {
      r.out = memory_off ? h : h + cross_fusion(q, rows, weights, causal_mask_);
      r.selected = indices, r.read_scores = scores;
      return r;
    }
    // Each candidate's memory is m = s·e, e its row's mean token embedding and s its gate score
    // (1 unweighted), so the cosine similarity, the normalised Gram matrix and the mix are the
    // rows' products scaled per candidate: cos(x, m) = ⟨x̂, e⟩·s / max(s·|e|, ε) with
    // x̂ = x / max(|x|, ε), and the Gram matrix likewise. One gather of the rows serves all three;
    // composed over the [B, T, C, D] memories (as the 1.4.10 code writes it) they were about ten
    // passes each way over 17 MB a layer at 16 x 128.
    const int64_t B = q.size(0), T = q.size(1), C = indices.size(-1), D = q.size(-1);
    auto e = rows.per_read().view({B * T, C, D});
    auto s = weights.defined() ? weights : torch::ones({B, T, C}, rows.embedded.options());
    auto norms = rows.embedded.norm(2, -1).index_select(0, rows.index.reshape({-1})).view({B, T, C}) * s;  // |m|
    auto unit = [&](double eps) { return s / norms.clamp_min(eps); };  // m / max(|m|, ε) = unit·e
    auto q_unit = q / q.norm(2, -1, /*keepdim=*/true).clamp_min(1e-8);
    auto sim = torch::bmm(e, q_unit.view({B * T, D, 1})).view({B, T, C}) * unit(1e-8);  // F::cosine_similarity's ε
    auto logits = sim;
    if (is_training()) {  // Gumbel noise only in training (the 1.4.10 code also adds it at eval)
      auto u = torch::rand_like(sim);
      logits = sim - torch::log(-torch::log(u + 1e-20) + 1e-20);
    }
    auto y = (logits / tau_).softmax(-1);
    auto hard = F::one_hot(y.argmax(-1), y.size(-1)).to(y.scalar_type());
    auto w = hard - y.detach() + y;  // straight-through: forward picks one, backward sees the softmax
    r.sim_loss = -(sim * w).sum(-1).mean();
    auto n = unit(1e-12).view({B * T, C, 1});  // F::normalize's ε
    auto gram = n * torch::bmm(e, e.transpose(1, 2)) * n.transpose(1, 2);  // [B·T, C, C]
    auto off_diagonal = 1 - torch::eye(C, gram.options());
    r.div_loss = (gram * off_diagonal).sum({-1, -2}).mean() / static_cast<double>(C * (C - 1));
    auto mixed = torch::bmm((s * w).view({B * T, 1, C}), e).view({B, T, D});  // Σ_c w_c·m_c
    r.out = memory_off ? h : h + gated_fusion(q, mixed);
    const auto chosen = y.argmax(-1, /*keepdim=*/true);
    r.selected = indices.gather(-1, chosen), r.read_scores = y.gather(-1, chosen);
    return r;
  }

  RMSNorm attention_norm{nullptr}, memory_norm{nullptr};
  CausalSelfAttention attention{nullptr};
  ProductKeyGate gate{nullptr};
  CrossAttentionFusion cross_fusion{nullptr};
  GatedFusion gated_fusion{nullptr};

 private:
  bool gated_, causal_mask_, score_weighted_;
  int64_t selected_;
  double tau_;
};
TORCH_MODULE(MemoryBlock);

class ModelMemory : public Model {
 public:
  explicit ModelMemory(const ModelConfig& c)
      : config_(c),
        rope_(c.get_int("dim") / c.get_int("n_heads"), c.get_float("rope_theta")),
        usage_(c.get_int("knowledge_num"), c.get_int("usage_window")) {
    const int64_t dim = c.get_int("dim"), rows = c.get_int("knowledge_num");
    tok_embeddings = register_module("tok_embeddings", TiedEmbedding(c.get_int("vocab_size"), dim));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.get_int("n_layers"); ++i) layers->push_back(MemoryBlock(c));
    norm = register_module("norm", RMSNorm(dim, c.get_float("norm_eps")));
    memory_bank = register_buffer(
        "memory_bank", torch::randint(0, c.get_int("vocab_size"), {rows, c.get_int("knowledge_length")}, torch::kInt64));
    frozen_rows_ = static_cast<int64_t>(static_cast<double>(rows) * c.get_float("freeze_ratio"));
    init_memory_variant_weights(*this, tok_embeddings->weight);
  }

  void init_from_data(const DataContext& context) override {
    init_memory_bank(memory_bank, context, /*add_special_tokens=*/true, "model_memory");
  }

  ForwardResult forward(const torch::Tensor& tokens, DecodeCache*) override {
    auto x = tok_embeddings->embed(tokens);
    x = apply_dropout(x, config_.get_float("dropout"), is_training());
    std::vector<LayerOutput> outs;
    for (const auto& layer : *layers) {
      outs.push_back(layer->as<MemoryBlockImpl>()->forward(x, rope_, memory_bank, tok_embeddings->weight, memory_off()));
      x = outs.back().out;
    }
    ForwardResult result{tok_embeddings->logits(norm(x)), {}, {}, {}};
    for (size_t i = 0; i < outs.size(); ++i)
      record_memory_read(*this, result, static_cast<int64_t>(i), outs[i].selected, outs[i].read_scores, outs[i].query,
                         memory_bank);
    double balance = 0, entropy = 0, coverage = 0;
    for (const auto& o : outs) balance += o.stats.balance_loss, entropy += o.stats.entropy, coverage += o.stats.coverage;
    const double n = static_cast<double>(outs.size());
    if (config_.get_string("fusion") == "gated_mlp") {
      torch::Tensor sim = outs[0].sim_loss, div = outs[0].div_loss;
      for (size_t i = 1; i < outs.size(); ++i) sim = sim + outs[i].sim_loss, div = div + outs[i].div_loss;
      sim = sim / n, div = div / n;
      result.aux_loss = config_.get_float("similarity_loss_coef") * sim + config_.get_float("diversity_loss_coef") * div;
      result.diagnostics.emplace_back("memory_similarity_loss", sim.item<double>());
      result.diagnostics.emplace_back("memory_diversity_loss", div.item<double>());
    } else {
      // Computed from integer indices, so it carries no gradient: it shifts the reported
      // loss by a constant and changes no update (as in the 1.4.8 code).
      result.aux_loss = torch::tensor(config_.get_float("balance_loss_coef") * balance / n,
                                      result.logits.options().dtype(torch::kFloat32));
    }
    if (is_training()) {
      result.diagnostics.emplace_back("memory_balance_loss", balance / n);
      result.diagnostics.emplace_back("memory_selection_entropy", entropy / n);
      result.diagnostics.emplace_back("memory_coverage_batch", coverage / n);
      for (const auto& o : outs) usage_.record(o.selected);
      result.diagnostics.emplace_back("memory_coverage_recent", usage_.recent_coverage());
      last_selected_.clear(), last_queries_.clear();
      for (auto& o : outs) last_selected_.push_back(o.selected.detach()), last_queries_.push_back(o.query);
    }
    return result;
  }

  // §5.6: every ema_update_freq steps, move each selected row towards the mean query that
  // picked it (in embedding space) and re-discretise it through the tied output head.
  void on_optimizer_step(int64_t step) override {
    if (config_.get_bool("freeze_memory") || last_selected_.empty() || step % config_.get_int("ema_update_freq") != 0)
      return;
    torch::NoGradGuard no_grad;
    const int64_t D = tok_embeddings->weight.size(1);
    std::vector<torch::Tensor> rows, queries;
    for (size_t i = 0; i < last_selected_.size(); ++i) {
      const int64_t S = last_selected_[i].size(-1);
      rows.push_back(last_selected_[i].reshape({-1}));
      queries.push_back(last_queries_[i].unsqueeze(2).expand({-1, -1, S, -1}).reshape({-1, D}));
    }
    auto all_rows = torch::cat(rows), all_queries = torch::cat(queries).to(torch::kFloat32);
    auto [unique_rows, inverse] = torch::_unique(all_rows, /*sorted=*/true, /*return_inverse=*/true);
    auto sums = torch::zeros({unique_rows.size(0), D}, all_queries.options()).index_add_(0, inverse, all_queries);
    auto counts = torch::zeros({unique_rows.size(0)}, all_queries.options())
                      .index_add_(0, inverse, torch::ones_like(inverse, all_queries.options()));
    auto mean_query = sums / counts.unsqueeze(1);
    auto keep = unique_rows >= frozen_rows_;  // rows below freeze_ratio·N never change
    unique_rows = unique_rows.masked_select(keep);
    mean_query = mean_query.index_select(0, keep.nonzero().squeeze(1));
    const double decay = config_.get_float("ema_decay");
    const auto& W = tok_embeddings->weight;
    for (int64_t start = 0; start < unique_rows.size(0); start += 4096) {
      auto r = unique_rows.slice(0, start, start + 4096);
      auto old = F::embedding(memory_bank.index_select(0, r), W).to(torch::kFloat32);  // [R, Lk, D]
      auto updated = decay * old + (1 - decay) * mean_query.slice(0, start, start + 4096).unsqueeze(1);
      memory_bank.index_copy_(0, r, F::linear(updated, W.to(torch::kFloat32)).argmax(-1));
    }
  }

  std::string causality_warning() const override {
    if (config_.get_string("fusion") == "cross_attention" && config_.get_string("fusion_mask") == "none")
      return "fusion_mask=none: the cross-attention fusion lets position t read the memories and queries of later "
             "positions (faithful to 1.4.8); set model.fusion_mask=causal for a causal model";
    return "";
  }

  // 6·N and the self-attention's 12·L·D·T (model_original's count), plus what 6·N misses in
  // the cross-attention fusion: its key and value projections run on each token's S
  // memories besides the token itself (2 matrices × S vectors × 6·D²), and every query
  // scores and mixes T·(1+S) keys (12·T·(1+S)·D; the causal mask saves no arithmetic in
  // SDPA). The gated MLP's parameters each act once per token: 6·N counts them.
  double flops_per_token(int64_t seq_len) override {
    const double L = static_cast<double>(config_.get_int("n_layers")), D = static_cast<double>(config_.get_int("dim"));
    const double T = static_cast<double>(seq_len), S = static_cast<double>(config_.get_int("num_selected"));
    const bool gated = config_.get_string("fusion") == "gated_mlp";
    const double fusion = gated ? 0.0 : 12.0 * S * D * D + 12.0 * T * (1 + S) * D;
    return 6.0 * static_cast<double>(parameter_count()) + 12.0 * L * D * T + L * fusion;
  }

  WeightInterop weight_interop() const override { return memory_model_interop("model_memory"); }

  std::vector<MemoryAblation> memory_ablations() const override {
    return {MemoryAblation::kOff, MemoryAblation::kShuffle, MemoryAblation::kRandom};
  }
  void ablate_memory(MemoryAblation how, uint64_t seed) override {
    ablate_memory_bank(memory_bank, how, seed, config_.get_int("vocab_size"), memory_off_);
  }

  TiedEmbedding tok_embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::Tensor memory_bank;

 private:
  ModelConfig config_;
  RotaryEmbedding rope_;
  MemoryUsageWindow usage_;
  int64_t frozen_rows_;
  std::vector<torch::Tensor> last_selected_, last_queries_;
};

PluginDescriptor describe() {
  PluginDescriptor d;
  d.name = "model_memory";
  d.version = "1.0.0";
  d.description = "token-id memory bank + product-key gate; cross-attention fusion (1.4.8) or gated MLP (1.4.10)";
  d.causal = false;
  d.causality_note = "fusion=cross_attention with fusion_mask=none (the 1.4.8 default) attends to later positions' "
                     "memories; fusion_mask=causal or fusion=gated_mlp is causal";
  d.schema = decoder_schema();
  d.schema.insert(d.schema.end(), {
      int_key("knowledge_num", 1048576, "memory bank rows N (a perfect square)", 4, 1LL << 32),
      int_key("knowledge_length", 8, "tokens per memory row Lk", 1, 4096),
      int_key("knowledge_dim", 128, "product-key query width (two halves)", 2, 65536),
      string_key("fusion", "cross_attention", "cross_attention (1.4.8) or gated_mlp (1.4.10)",
                 {"cross_attention", "gated_mlp"}),
      string_key("fusion_mask", "none", "cross_attention only: none (faithful, sees later positions) or causal",
                 {"none", "causal"}).only_when("fusion", {"cross_attention"}),
      string_key("selection", "faithful",
                 "faithful (1.4.8/1.4.10: the gate's scores are unused, so gate.keys and gate_proj get no gradient) or "
                 "score_weighted (memories scaled by their gate scores: every gate parameter learns)",
                 {"faithful", "score_weighted"}),
      int_key("fusion_heads", 8, "cross-attention fusion heads", 1, 1024).only_when("fusion", {"cross_attention"}),
      float_key("fusion_attention_dropout", 0.1, "cross_attention: dropout of the fusion's attention weights (1.4.8)",
                0.0, 1.0).only_when("fusion", {"cross_attention"}),
      float_key("fusion_dropout", 0.15, "cross_attention: dropout of the fusion's output (1.4.8)", 0.0, 1.0).only_when("fusion", {"cross_attention"}),
      int_key("num_selected", 16, "memories per token for cross_attention (1.4.8 preset 16)", 1, 1024).only_when("fusion", {"cross_attention"}),
      int_key("num_candidates", 16, "gated_mlp: candidates per token before the Gumbel choice", 1, 1024).only_when("fusion", {"gated_mlp"}),
      float_key("gumbel_temperature", 1.0, "gated_mlp: Gumbel-softmax temperature", 1e-6, 100.0).only_when("fusion", {"gated_mlp"}),
      float_key("balance_loss_coef", 0.1, "weight of the (gradient-free) balance loss, cross_attention", 0.0, 100.0).only_when("fusion", {"cross_attention"}),
      float_key("similarity_loss_coef", 0.1, "gated_mlp: weight of the similarity loss", 0.0, 100.0).only_when("fusion", {"gated_mlp"}),
      float_key("diversity_loss_coef", 0.05, "gated_mlp: weight of the diversity loss", 0.0, 100.0).only_when("fusion", {"gated_mlp"}),
      bool_key("freeze_memory", true, "keep the bank fixed; false = EMA update of selected rows (§5.6)"),
      float_key("freeze_ratio", 0.2, "first rows (this fraction) never updated by the EMA rule", 0.0, 1.0).only_when("freeze_memory", {"false"}),
      float_key("ema_decay", 0.9, "EMA decay of the bank update", 0.0, 1.0).only_when("freeze_memory", {"false"}),
      int_key("ema_update_freq", 5, "optimizer steps between EMA updates", 1, 1 << 30).only_when("freeze_memory", {"false"}),
      int_key("usage_window", 100, "training forwards counted by the memory_coverage_recent diagnostic", 1, 1 << 30),
  });
  return d;
}

Model* create(const ModelConfig& config) { return new ModelMemory(config); }

}  // namespace

XLHOST_PLUGIN(describe, create)
