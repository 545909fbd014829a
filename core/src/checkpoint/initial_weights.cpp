#include "xlhost/core/checkpoint/initial_weights.hpp"

#include <filesystem>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

void load_initial_weights(sdk::Model& model, const WeightsOrigin& origin, const std::string& plugin_name) {
  const auto interop = model.weight_interop();
  std::map<std::string, torch::Tensor> tensors;
  switch (origin.format) {
    case WeightsFormat::kXlhostCheckpoint:
    case WeightsFormat::kSafetensors:
      tensors = load_safetensors(origin.weights_file);
      break;
    case WeightsFormat::kHuggingFace:
      if (interop.hugging_face.architecture.empty())
        throw UserError(origin.path + ": a Hugging Face folder, but there is no Hugging Face mapping for plugin " +
                        plugin_name);
      tensors = read_hugging_face_folder(std::filesystem::path(origin.weights_file).parent_path().string(),
                                         interop.hugging_face);
      break;
    case WeightsFormat::kTorchStateDict:
      tensors = load_torch_state_dict(origin.weights_file);
      break;
  }
  assign_weights(model, std::move(tensors), origin.weights_file, interop.tied_copies);
}

namespace {

// The tokenizer file as a comparable identity: "byte", or its checksum.
std::string tokenizer_identity(const std::string& tokenizer) {
  return tokenizer == "byte" ? "byte" : checksum_file(tokenizer);
}

}  // namespace

std::string tokenizer_mismatch(const WeightsOrigin& origin, const std::string& tokenizer) {
  const std::filesystem::path dir = std::filesystem::path(origin.weights_file).parent_path();
  std::string theirs, described;
  if (origin.format == WeightsFormat::kXlhostCheckpoint) {
    const auto config = parse_json(read_checkpoint_config(dir.string()), (dir / "config.json").string());
    if (!config.HasMember("data") || !config["data"].IsObject() || !config["data"].HasMember("tokenizer") ||
        !config["data"]["tokenizer"].IsString())
      return "";
    described = config["data"]["tokenizer"].GetString();
    theirs = described == "byte" || std::filesystem::exists(described) ? tokenizer_identity(described) : "";
  } else if (std::filesystem::exists(dir / "xlhost_source.json")) {  // an xlhost export: its tokenizer beside it
    const bool has_file = std::filesystem::exists(dir / "tokenizer.json");
    described = has_file ? (dir / "tokenizer.json").string() : "byte";
    theirs = tokenizer_identity(described);
  }
  if (theirs.empty() || theirs == tokenizer_identity(tokenizer)) return "";
  return "the initial weights (" + origin.path + ") were trained with tokenizer " + described + ", this run uses " +
         tokenizer + ": the same ids stand for other text";
}

}  // namespace xlhost::core
