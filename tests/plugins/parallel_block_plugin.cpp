// A scaffolded variant as a new user writes one: model_original's tensor names and Llama
// layout, but a parallel block (attention and feed-forward both read the block's input, as
// in GPT-J). Its export must be refused: transformers would compute the sequential block.
#include <xlhost/sdk/layers.hpp>
#include <xlhost/sdk/plugin.hpp>
#include <xlhost/sdk/weight_interop.hpp>

namespace {

using namespace xlhost::sdk;

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelConfig& c)
      : attention_norm(register_module("attention_norm", RMSNorm(c.get_int("dim"), c.get_float("norm_eps")))),
        attention(register_module("attention", CausalSelfAttention(c.get_int("dim"), c.get_int("n_heads"),
                                                                   c.get_int("n_kv_heads"), 0.0))),
        ffn_norm(register_module("ffn_norm", RMSNorm(c.get_int("dim"), c.get_float("norm_eps")))),
        feed_forward(register_module("feed_forward", SwiGLU(c.get_int("dim"), 4 * c.get_int("dim"), 0.0))) {}
  torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding& rope) {
    return x + attention(attention_norm(x), rope) + feed_forward(ffn_norm(x));
  }
  RMSNorm attention_norm;
  CausalSelfAttention attention;
  RMSNorm ffn_norm;
  SwiGLU feed_forward;
};
TORCH_MODULE(Block);

class ParallelBlock : public Model {
 public:
  explicit ParallelBlock(const ModelConfig& c) : config_(c), rope_(c.get_int("dim") / c.get_int("n_heads"), c.get_float("rope_theta")) {
    tok_embeddings = register_module("tok_embeddings", TiedEmbedding(c.get_int("vocab_size"), c.get_int("dim")));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.get_int("n_layers"); ++i) layers->push_back(Block(c));
    norm = register_module("norm", RMSNorm(c.get_int("dim"), c.get_float("norm_eps")));
  }
  ForwardResult forward(const torch::Tensor& tokens, DecodeCache*) override {
    auto h = tok_embeddings->embed(tokens);
    for (const auto& layer : *layers) h = layer->as<BlockImpl>()->forward(h, rope_);
    return {tok_embeddings->logits(norm(h)), {}, {}, {}};
  }
  WeightInterop weight_interop() const override {
    WeightInterop interop;
    interop.hugging_face = llama_layout(config_, 4 * config_.get_int("dim"), rope_.max_positions());
    return interop;
  }
  TiedEmbedding tok_embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  ModelConfig config_;
  RotaryEmbedding rope_;
};

PluginDescriptor describe() {
  PluginDescriptor d;
  d.name = "parallel_block_plugin";
  d.version = "0.0.1";
  d.description = "model_original's names and Llama layout over a parallel block (an export that must be refused)";
  d.schema = decoder_schema();
  return d;
}

Model* create(const ModelConfig& c) { return new ParallelBlock(c); }

}  // namespace

XLHOST_PLUGIN(describe, create)
