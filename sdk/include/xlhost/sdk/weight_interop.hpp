// How a model's weights meet the Python ecosystem: what `xlhost export` writes and what
// `xlhost run --init-from` reads besides xlhost checkpoints. A plugin declares it by
// overriding Model::weight_interop(); the host does the file work.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/sdk/config_schema.hpp"

namespace xlhost::sdk {

// One tensor of a Hugging Face checkpoint and the model parameter it is.
struct HuggingFaceTensor {
  std::string hf_name;  // "model.layers.0.self_attn.q_proj.weight"
  std::string name;     // the model's registered name: "layers.0.attention.wq.weight"
  // > 0: the rows are that many heads whose rotary pairs are adjacent (MiniMind's
  // (x0,x1),(x2,x3)…); Hugging Face's rotate-half code pairs x_i with x_{i+d/2}, so the
  // rows are permuted on export and back on import.
  int64_t rope_heads = 0;
};

struct HuggingFaceLayout {
  std::string architecture;  // "LlamaForCausalLM"; empty: the model has no Hugging Face form
  // config.json entries besides `architectures`, the token ids and the dtype, which the host adds.
  std::vector<std::pair<std::string, Value>> config;
  std::vector<HuggingFaceTensor> tensors;  // every model tensor exactly once
  // {head, embedding} Hugging Face names when the output head is the embedding
  // (tie_word_embeddings): a folder that stores the head anyway must store the same matrix.
  std::pair<std::string, std::string> tied_head;
};

struct WeightInterop {
  HuggingFaceLayout hugging_face;
  // Without a Hugging Face form, non-empty lets `xlhost export` write the model's own
  // tensor names and config: what a reader needs to know (e.g. the code that loads them).
  std::string native_export_note;
  // Names under which a PyTorch state dict of the original code carries a tied copy of a
  // tensor, {copy, tensor}: MiniMind saves output.weight beside tok_embeddings.weight.
  std::vector<std::pair<std::string, std::string>> tied_copies;
};

// The Llama layout of a decoder built from the SDK's layers with MiniMind's module names
// (tok_embeddings, layers.N.{attention_norm, attention.{wq,wk,wv,wo}, ffn_norm,
// feed_forward.{w1,w2,w3}}, norm) and the decoder_schema() keys in `config`.
HuggingFaceLayout llama_layout(const ModelConfig& config, int64_t ffn_hidden_dim, int64_t max_positions);

}  // namespace xlhost::sdk
