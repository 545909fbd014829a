#include "xlhost/core/checkpoint/initial_weights.hpp"

#include <filesystem>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"
#include "xlhost/core/util/error.hpp"

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

}  // namespace xlhost::core
