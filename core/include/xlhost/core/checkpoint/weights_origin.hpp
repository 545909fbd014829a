// Where a run's initial weights come from (`xlhost run --init-from`): what the path is,
// the file that holds the tensors, its checksum, and the xlhost run that made it when one
// did — the lineage that record.json keeps and `xlhost exp show` follows. No LibTorch:
// reading the tensors is initial_weights.hpp's.
#pragma once

#include <cstdint>
#include <string>

namespace xlhost::core {

// A Hugging Face folder's weights: one file, or an index naming its shards.
inline constexpr const char* kHuggingFaceWeights = "model.safetensors";
inline constexpr const char* kHuggingFaceWeightsIndex = "model.safetensors.index.json";

enum class WeightsFormat {
  kXlhostCheckpoint,  // a run directory (its newest valid checkpoint) or a checkpoint directory
  kHuggingFace,       // a folder with config.json and model.safetensors (or a sharded index)
  kTorchStateDict,    // a .pth/.pt/.bin written by torch.save (MiniMind's checkpoints)
  kSafetensors,       // a .safetensors file of the model's own tensor names
};
const char* format_name(WeightsFormat format);

struct WeightsOrigin {
  std::string path;  // as given
  WeightsFormat format = WeightsFormat::kXlhostCheckpoint;
  std::string weights_file;  // the file read (a sharded Hugging Face folder: its index)
  std::string checksum;      // XXH3-128 of weights_file
  // When an xlhost run made the weights (a checkpoint, or an `xlhost export` of one):
  std::string run_dir, run_id;
  int64_t step = -1;
};

// UserError naming the path and the forms accepted when it is none of them.
WeightsOrigin locate_weights(const std::string& path);

// "run 0.0.2 step 300 (xlhost checkpoint out/0.0.2/checkpoints/step_00000300, xxh3 1a2b3c4d…)"
std::string describe_origin(const WeightsOrigin& origin);

}  // namespace xlhost::core
