// Models in the folders Python tools load. `export_model` writes a Hugging Face folder
// (config.json, model.safetensors, generation_config.json, the tokenizer files) when the
// plugin declares a layout (sdk/weight_interop.hpp), or the model's own tensor names and
// xlhost config when it declares a native export; `read_hugging_face_folder` reads such a
// folder back under the model's names.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/sdk/plugin.hpp"

namespace xlhost::core {

struct ExportSpec {
  std::string plugin_name, plugin_version;
  std::string config_json;  // the run's resolved xlhost config
  std::string tokenizer;    // data.tokenizer: "byte" or a tokenizer.json path
  int64_t bos_id = 1, eos_id = 2, pad_id = 0;
  std::string run_dir, run_id, checkpoint;  // where the weights come from, for xlhost_source.json
  int64_t step = -1;
};

// The spec of a model trained with `config` (its tokenizer made from it); the source
// fields (run, checkpoint, step) are the caller's.
ExportSpec export_spec(const RunConfig& config, const Tokenizer& tokenizer, const sdk::PluginDescriptor& plugin);

// UserError "no Hugging Face mapping for plugin X" unless the model declares a form
// export_model can write.
void require_exportable(const sdk::Model& model, const std::string& plugin_name);

struct ExportResult {
  bool hugging_face = false;
  std::string note;  // what the user should know (native export, no tokenizer files)
};

// Writes out_dir through a temporary folder renamed into place; out_dir must not exist
// unless `replace`. UserError "no Hugging Face mapping for plugin X" when the plugin
// declares neither form. A Llama layout is first checked against the SDK's reference
// Llama (verify_llama_export): an export transformers would compute differently is refused.
ExportResult export_model(sdk::Model& model, const ExportSpec& spec, const std::string& out_dir, bool replace = false);

// The tensors of a Hugging Face folder under the model's names, rotary rows permuted back;
// tensors the layout does not name keep their Hugging Face names (assign_weights reports
// them). UserError when config.json describes another shape than the layout.
std::map<std::string, torch::Tensor> read_hugging_face_folder(const std::string& dir,
                                                             const sdk::HuggingFaceLayout& layout);

}  // namespace xlhost::core
