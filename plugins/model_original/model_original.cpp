// model_original: the MiniMind baseline decoder (MODELS.md §2). Pre-norm blocks of
// GQA self-attention and a SwiGLU feed-forward, RoPE, tied embedding/output head,
// PyTorch default initialisation. Supports a KV cache for generation.
#include <xlhost/sdk/layers.hpp>
#include <xlhost/sdk/plugin.hpp>

namespace {

using namespace xlhost::sdk;

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& c)
      : attention_norm(c.get_int("dim"), c.get_float("norm_eps")),
        attention(c.get_int("dim"), c.get_int("n_heads"), c.get_int("n_kv_heads"), c.get_float("dropout")),
        ffn_norm(c.get_int("dim"), c.get_float("norm_eps")),
        feed_forward(c.get_int("dim"),
                     swiglu_hidden_dim(c.get_int("dim"), c.get_int("hidden_dim"), c.get_int("multiple_of")),
                     c.get_float("dropout")) {
    register_module("attention_norm", attention_norm);
    register_module("attention", attention);
    register_module("ffn_norm", ffn_norm);
    register_module("feed_forward", feed_forward);
  }

  torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding& rope, KVCache* cache, size_t layer) {
    auto h = x + attention(attention_norm(x), rope, cache, layer);
    return h + feed_forward(ffn_norm(h));
  }

  RMSNorm attention_norm;
  CausalSelfAttention attention;
  RMSNorm ffn_norm;
  SwiGLU feed_forward;
};
TORCH_MODULE(Block);

class ModelOriginal : public Model {
 public:
  explicit ModelOriginal(const ModelConfig& c)
      : config_(c),
        dim_(c.get_int("dim")),
        n_layers_(c.get_int("n_layers")),
        dropout_(c.get_float("dropout")),
        rope_(c.get_int("dim") / c.get_int("n_heads"), c.get_float("rope_theta")) {
    tok_embeddings = register_module("tok_embeddings", TiedEmbedding(c.get_int("vocab_size"), dim_));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < n_layers_; ++i) layers->push_back(Block(c));
    norm = register_module("norm", RMSNorm(dim_, c.get_float("norm_eps")));
  }

  ForwardResult forward(const torch::Tensor& tokens, DecodeCache* cache) override {
    auto* kv = static_cast<KVCache*>(cache);
    auto h = tok_embeddings->embed(tokens);
    h = apply_dropout(h, dropout_, is_training());
    for (size_t i = 0; i < layers->size(); ++i) h = layers[i]->as<BlockImpl>()->forward(h, rope_, kv, i);
    if (kv) kv->length += tokens.size(1);
    return {tok_embeddings->logits(norm(h)), {}, {}, {}};
  }

  std::unique_ptr<DecodeCache> new_cache() override { return std::make_unique<KVCache>(layers->size()); }

  // 6·N for the matmuls plus 12·L·D·T for attention scores and values (PaLM appendix B).
  double flops_per_token(int64_t seq_len) override {
    return 6.0 * parameter_count() + 12.0 * n_layers_ * dim_ * seq_len;
  }

  // MiniMind's own names, so its state dicts load as they are; the Llama form for transformers.
  WeightInterop weight_interop() const override {
    WeightInterop interop;
    const int64_t hidden = swiglu_hidden_dim(dim_, config_.get_int("hidden_dim"), config_.get_int("multiple_of"));
    interop.hugging_face = llama_layout(config_, hidden, rope_.max_positions());
    interop.tied_copies = {{"output.weight", "tok_embeddings.weight"}};
    return interop;
  }

  TiedEmbedding tok_embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  ModelConfig config_;
  int64_t dim_, n_layers_;
  double dropout_;
  RotaryEmbedding rope_;
};

PluginDescriptor describe() {
  PluginDescriptor d;
  d.name = "model_original";
  d.version = "1.0.0";
  d.description = "MiniMind baseline decoder: RMSNorm, RoPE, GQA attention, SwiGLU, tied embeddings";
  // Defaults reproduce the 25.83M-parameter baseline of experiment 1.4.0 (n_heads 32,
  // n_kv_heads 8). The research fork's LMConfig file default is n_heads 16 (26.88M).
  d.schema = decoder_schema();
  d.schema.insert(d.schema.end(), {
      int_key("hidden_dim", 0, "SwiGLU width; 0 = 4·dim·2/3 rounded up to multiple_of", 0, 1 << 20),
      int_key("multiple_of", 64, "SwiGLU width rounding", 1, 4096),
  });
  return d;
}

Model* create(const ModelConfig& config) { return new ModelOriginal(config); }

}  // namespace

XLHOST_PLUGIN(describe, create)
