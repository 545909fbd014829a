#include "xlhost/sdk/weight_interop.hpp"

namespace xlhost::sdk {

HuggingFaceLayout llama_layout(const ModelConfig& c, int64_t ffn_hidden_dim, int64_t max_positions) {
  const int64_t dim = c.get_int("dim"), heads = c.get_int("n_heads"), kv_heads = c.get_int("n_kv_heads");
  HuggingFaceLayout layout;
  layout.architecture = "LlamaForCausalLM";
  layout.tied_head = {"lm_head.weight", "model.embed_tokens.weight"};
  const double rope_theta = c.get_float("rope_theta");
  layout.config = {
      {"model_type", std::string("llama")},
      {"hidden_size", dim},
      {"intermediate_size", ffn_hidden_dim},
      {"num_hidden_layers", c.get_int("n_layers")},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads},
      {"head_dim", dim / heads},
      {"vocab_size", c.get_int("vocab_size")},
      {"rms_norm_eps", c.get_float("norm_eps")},
      {"rope_theta", rope_theta},
      {"max_position_embeddings", max_positions},
      {"hidden_act", std::string("silu")},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"attention_dropout", c.get_float("dropout")},
      {"tie_word_embeddings", true},
  };
  auto& t = layout.tensors;
  t.push_back({"model.embed_tokens.weight", "tok_embeddings.weight"});
  for (int64_t i = 0; i < c.get_int("n_layers"); ++i) {
    const std::string hf = "model.layers." + std::to_string(i) + ".", ours = "layers." + std::to_string(i) + ".";
    t.push_back({hf + "self_attn.q_proj.weight", ours + "attention.wq.weight", heads});
    t.push_back({hf + "self_attn.k_proj.weight", ours + "attention.wk.weight", kv_heads});
    t.push_back({hf + "self_attn.v_proj.weight", ours + "attention.wv.weight"});
    t.push_back({hf + "self_attn.o_proj.weight", ours + "attention.wo.weight"});
    t.push_back({hf + "mlp.gate_proj.weight", ours + "feed_forward.w1.weight"});
    t.push_back({hf + "mlp.up_proj.weight", ours + "feed_forward.w3.weight"});
    t.push_back({hf + "mlp.down_proj.weight", ours + "feed_forward.w2.weight"});
    t.push_back({hf + "input_layernorm.weight", ours + "attention_norm.weight"});
    t.push_back({hf + "post_attention_layernorm.weight", ours + "ffn_norm.weight"});
  }
  t.push_back({"model.norm.weight", "norm.weight"});
  return layout;
}

}  // namespace xlhost::sdk
