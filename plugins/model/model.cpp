// model / model_no_feed: a transformer whose layers read from one shared, text-
// initialised knowledge table (MODELS.md §3, §4). Each layer pools its attention output
// into a query, retrieves the best-matching table row (product keys, then cosine
// re-ranking of 16 candidates) and cross-attends to that row's token embeddings.
// retrieval_pooling=sequence_mean reproduces the group's code, whose query averages over
// the whole sequence (every position sees the future); causal_prefix_mean retrieves per
// position from the prefix only. Built with XLHOST_MODEL_NO_FEED it has no feed-forward.
#include <xlhost/sdk/attention.hpp>
#include <xlhost/sdk/layers.hpp>
#include <xlhost/sdk/linear.hpp>
#include <xlhost/sdk/memory.hpp>
#include <xlhost/sdk/plugin.hpp>

namespace {

using namespace xlhost::sdk;
namespace F = torch::nn::functional;

#ifdef XLHOST_MODEL_NO_FEED
constexpr bool kFeedForward = false;
constexpr const char* kName = "model_no_feed";
#else
constexpr bool kFeedForward = true;
constexpr const char* kName = "model";
#endif

// The shared table and its product keys. Registry names follow the group's checkpoints:
// knowledge_dataset.knowledge_dataset (token rows) and knowledge_dataset.keys.
class KnowledgeDatasetImpl : public torch::nn::Module {
 public:
  KnowledgeDatasetImpl(const ModelConfig& c, int64_t pad_id)
      : topk_(c.get_int("product_key_topk")), score_weighted_(c.get_string("selection") == "score_weighted") {
    const auto num_keys = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(c.get_int("knowledge_num")))));
    if (num_keys * num_keys != c.get_int("knowledge_num"))
      throw std::invalid_argument("knowledge_num must be a perfect square (product keys)");
    const int64_t kd = c.get_int("knowledge_dim");
    to_queries = register_module("to_queries", torch::nn::Linear(torch::nn::LinearOptions(c.get_int("dim"), kd).bias(false)));
    keys = register_parameter("keys", torch::empty({num_keys, 2, kd / 2}));
    table = register_buffer("knowledge_dataset",
                            torch::full({c.get_int("knowledge_num"), c.get_int("knowledge_length")}, pad_id, torch::kInt64));
  }

  // pooled [..., D] → the best entry's tokens [..., Lk]. Product-key top-k,
  // then the candidate whose mean token embedding is most cosine-similar to the pooled
  // query. Neither step is differentiable: with selection=faithful, to_queries and keys get
  // no gradient (as in the group's code); score_weighted scales the memory by the chosen
  // candidate's softmax weight among the k, the path by which they learn.
  struct Found {
    torch::Tensor tokens;       // [..., Lk]: the chosen row's token ids
    torch::Tensor scale;        // [..., 1]: what its memory is scaled by (score_weighted: weight; else undefined)
    torch::Tensor row, weight;  // [..., 1]: the chosen row, and its softmax weight among the k
    torch::Tensor query;        // the pooled query it was found with
  };
  Found search(const torch::Tensor& pooled, const torch::Tensor& embedding) {
    // keys is [√N, 2, Kd/2], the layout of the group's checkpoints
    auto [scores, candidates] = product_key_top_k(to_queries(pooled), keys.select(1, 0), keys.select(1, 1), topk_);  // [..., k]
    auto candidate_emb = embed_memory_rows(table, candidates, embedding).per_read();  // [..., k, D]
    auto similarity = F::cosine_similarity(pooled.unsqueeze(-2), candidate_emb,
                                           F::CosineSimilarityFuncOptions().dim(-1));
    const auto chosen = similarity.argmax(-1, /*keepdim=*/true);
    auto best = candidates.gather(-1, chosen).squeeze(-1);
    auto shape = best.sizes().vec();
    shape.push_back(table.size(1));
    auto tokens = table.index_select(0, best.reshape({-1})).view(shape);
    auto weight = scores.softmax(-1).gather(-1, chosen);  // [..., 1]
    return {tokens, score_weighted_ ? weight : torch::Tensor(), best.unsqueeze(-1), weight, pooled};
  }

  torch::nn::Linear to_queries{nullptr};
  torch::Tensor keys, table;

 private:
  int64_t topk_;
  bool score_weighted_;
};
TORCH_MODULE(KnowledgeDataset);

// Multi-head attention from each position to its retrieved row's token embeddings
// (no mask among the Lk memory tokens), bias-free projections.
class MemoryCrossAttentionImpl : public torch::nn::Module {
 public:
  MemoryCrossAttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
    auto linear = [&] { return torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)); };
    to_q = register_module("to_q", linear());
    to_k = register_module("to_k", linear());
    to_v = register_module("to_v", linear());
    to_out = register_module("to_out", linear());
  }
  // x [B,T,D]; tokens [B,T,Lk] (one row per position) or [B,1,Lk] (one row for the whole
  // sequence, broadcast), embedded with `embedding` and scaled by scale [B,T or 1,1] (undefined:
  // 1) → [B,T,D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& tokens, const torch::Tensor& scale,
                        const torch::Tensor& embedding) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2), Tm = tokens.size(1), Lk = tokens.size(2);
    const int64_t d = D / heads_;
    // The keys and values of the memory's tokens, W·(s·e) = s·(W·e): where the rows hold more
    // tokens than the vocabulary has entries (a row per position) each projection runs once over
    // the embedding table and is gathered — over the B·T·Lk tokens it was two thirds of
    // causal_prefix_mean's step — and otherwise over the tokens' embeddings.
    auto keys_values = [&](torch::nn::Linear& to) {
      auto kv = tokens.numel() > embedding.size(0) ? F::embedding(tokens, project(embedding, to->weight))
                                                   : project(F::embedding(tokens, embedding), to->weight);
      return scale.defined() ? kv * scale.unsqueeze(-1).to(kv.scalar_type()) : kv;  // [B,Tm,Lk,D]
    };
    // One attention call: a sequence's T queries over its row's Lk keys, or each position's one
    // query over its own row's. (Through matmul, the one row was broadcast to [B, T, H, Lk, d]
    // and its gradient summed back, and a row per position copied for the batched products: a
    // third and a quarter of the step.)
    const int64_t batch = Tm == 1 ? B : B * T, queries = Tm == 1 ? T : 1;
    auto heads = [&](const torch::Tensor& t, int64_t n) { return t.reshape({batch, n, heads_, d}).transpose(1, 2); };
    auto out = attention(heads(project(x, to_q->weight), queries), heads(keys_values(to_k), Lk),
                         heads(keys_values(to_v), Lk), all_keys(Lk), 0.0, is_training());
    return project(out.transpose(1, 2).reshape({B, T, D}), to_out->weight);
  }
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(MemoryCrossAttention);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelConfig& c) {
    const int64_t dim = c.get_int("dim");
    attention_norm = register_module("attention_norm", RMSNorm(dim, c.get_float("norm_eps")));
    attention = register_module("attention", CausalSelfAttention(dim, c.get_int("n_heads"), c.get_int("n_kv_heads"),
                                                                 c.get_float("dropout")));
    cross_attention = register_module("cross_attention", MemoryCrossAttention(dim, c.get_int("cross_attn_heads")));
    if (kFeedForward) {
      ffn_norm = register_module("ffn_norm", RMSNorm(dim, c.get_float("norm_eps")));
      feed_forward = register_module(
          "feed_forward", SwiGLU(dim, swiglu_hidden_dim(dim, 0, c.get_int("multiple_of")), c.get_float("dropout")));
    }
  }

  // memory_off (an ablation): the retrieval runs, its cross-attention adds nothing.
  std::pair<torch::Tensor, KnowledgeDatasetImpl::Found> forward(const torch::Tensor& x, RotaryEmbedding& rope,
                                                              KnowledgeDataset& knowledge, const torch::Tensor& embedding,
                                                              bool causal_pooling, bool memory_off) {
    const int64_t T = x.size(1);
    auto a = attention(attention_norm(x), rope);
    torch::Tensor pooled;
    if (causal_pooling) {
      auto counts = torch::arange(1, T + 1, a.options()).view({1, T, 1});
      pooled = a.cumsum(1) / counts;  // position t averages positions 0..t
    } else {
      pooled = a.mean(1, /*keepdim=*/true);  // [B,1,D]: the whole sequence, future included
    }
    auto found = knowledge->search(pooled, embedding);  // tokens [B,T or 1,Lk]
    auto h = memory_off ? x : x + cross_attention(a, found.tokens, found.scale, embedding);  // the raw attention output is not added (group's code)
    return {kFeedForward ? h + feed_forward(ffn_norm(h)) : h, found};
  }

  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
  CausalSelfAttention attention{nullptr};
  MemoryCrossAttention cross_attention{nullptr};
  SwiGLU feed_forward{nullptr};
};
TORCH_MODULE(Block);

class KnowledgeModel : public Model {
 public:
  explicit KnowledgeModel(const ModelConfig& c)
      : causal_pooling_(c.get_string("retrieval_pooling") == "causal_prefix_mean"),
        dropout_(c.get_float("dropout")),
        vocab_size_(c.get_int("vocab_size")),
        dim_(c.get_int("dim")),
        knowledge_length_(c.get_int("knowledge_length")),
        rope_(c.get_int("dim") / c.get_int("n_heads"), c.get_float("rope_theta")) {
    const int64_t dim = c.get_int("dim");
    tok_embeddings = register_module("tok_embeddings", TiedEmbedding(c.get_int("vocab_size"), dim));
    knowledge_dataset = register_module("knowledge_dataset", KnowledgeDataset(c, /*pad_id=*/0));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.get_int("n_layers"); ++i) layers->push_back(Block(c));
    norm = register_module("norm", RMSNorm(dim, c.get_float("norm_eps")));
    init_memory_variant_weights(*this, tok_embeddings->weight);
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(knowledge_dataset->keys, 0.0, 0.02);
  }

  void init_from_data(const DataContext& context) override {
    // DatabaseProcessor tokenises without special tokens; unused rows hold the pad id.
    knowledge_dataset->table.fill_(context.pad_id);
    init_memory_bank(knowledge_dataset->table, context, /*add_special_tokens=*/false, kName);
  }

  ForwardResult forward(const torch::Tensor& tokens, DecodeCache*) override {
    auto h = tok_embeddings->embed(tokens);
    h = apply_dropout(h, dropout_, is_training());
    std::vector<KnowledgeDatasetImpl::Found> reads;
    for (const auto& layer : *layers) {
      auto [out, found] = layer->as<BlockImpl>()->forward(h, rope_, knowledge_dataset, tok_embeddings->weight,
                                                          causal_pooling_, memory_off());
      h = out, reads.push_back(found);
    }
    ForwardResult result{tok_embeddings->logits(norm(h)), {}, {}, {}};
    for (size_t i = 0; i < reads.size(); ++i)
      record_memory_read(*this, result, static_cast<int64_t>(i), reads[i].row, reads[i].weight, reads[i].query,
                         knowledge_dataset->table);
    return result;
  }

  std::string causality_warning() const override {
    return causal_pooling_ ? "" : "retrieval_pooling=sequence_mean: every position's memory query averages the whole "
                                  "sequence, later tokens included (faithful to the group's code); set "
                                  "model.retrieval_pooling=causal_prefix_mean for a causal model";
  }

  // 6·N and the self-attention's 12·L·D·T (model_original's count), plus the knowledge
  // cross-attention's difference from 6·N: its key and value projections run on the Lk
  // tokens of the rows read — one row per position with causal_prefix_mean, one per sequence
  // with sequence_mean, so Lk·Tm/T vectors per token instead of one (2 matrices × 6·D² each)
  // — and each query scores and mixes Lk keys (12·Lk·D).
  double flops_per_token(int64_t seq_len) override {
    const double L = static_cast<double>(layers->size()), D = static_cast<double>(dim_), T = static_cast<double>(seq_len);
    const double Lk = static_cast<double>(knowledge_length_), rows_per_token = causal_pooling_ ? 1.0 : 1.0 / T;
    const double cross = 12.0 * D * D * (Lk * rows_per_token - 1) + 12.0 * Lk * D;
    return 6.0 * static_cast<double>(parameter_count()) + 12.0 * L * D * T + L * cross;
  }

  WeightInterop weight_interop() const override { return memory_model_interop(kName); }

  std::vector<MemoryAblation> memory_ablations() const override {
    return {MemoryAblation::kOff, MemoryAblation::kShuffle, MemoryAblation::kRandom};
  }
  void ablate_memory(MemoryAblation how, uint64_t seed) override {
    ablate_memory_bank(knowledge_dataset->table, how, seed, vocab_size_, memory_off_);
  }

  TiedEmbedding tok_embeddings{nullptr};
  KnowledgeDataset knowledge_dataset{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  bool causal_pooling_;
  double dropout_;
  int64_t vocab_size_, dim_, knowledge_length_;
  RotaryEmbedding rope_;
};

PluginDescriptor describe() {
  PluginDescriptor d;
  d.name = kName;
  d.version = "1.0.0";
  d.description = kFeedForward ? "transformer + shared text-initialised knowledge table read by cross-attention"
                               : "model without the feed-forward sub-layer: knowledge cross-attention is the only MLP";
  d.causal = false;
  d.causality_note = "retrieval_pooling=sequence_mean (default, faithful) pools over the whole sequence; "
                     "causal_prefix_mean is causal";
  d.schema = decoder_schema();
  d.schema.insert(d.schema.end(), {
      int_key("multiple_of", 64, "SwiGLU width rounding", 1, 4096),
      int_key("knowledge_num", 1048576, "knowledge table rows N (a perfect square)", 4, 1LL << 32),
      int_key("knowledge_length", 16, "tokens per row Lk (the 1.4.1 run used 32)", 1, 4096),
      int_key("knowledge_dim", 128, "product-key query width", 2, 65536),
      int_key("product_key_topk", 16, "candidates from the product keys", 1, 4096),
      int_key("cross_attn_heads", 8, "heads of the memory cross-attention", 1, 1024),
      string_key("retrieval_pooling", "sequence_mean",
                 "sequence_mean (faithful, sees later tokens) or causal_prefix_mean (per position, prefix only)",
                 {"sequence_mean", "causal_prefix_mean"}),
      string_key("selection", "faithful",
                 "faithful (the group's code: the retrieval is not differentiable, so knowledge_dataset.keys and "
                 "to_queries get no gradient) or score_weighted (the memory scaled by the chosen candidate's "
                 "product-key weight: they learn)",
                 {"faithful", "score_weighted"}),
  });
  return d;
}

Model* create(const ModelConfig& config) { return new KnowledgeModel(config); }

}  // namespace

XLHOST_PLUGIN(describe, create)
