// Checkpoints: a directory per step with model.safetensors, optimizer.pt, rng.pt,
// state.json, the resolved config.json and manifest.json (checkpoint_directory.hpp).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

// Writes <checkpoints_dir>/step_N and points <checkpoints_dir>/latest at it, keeping the
// newest `keep`. Each checkpoint is written into a temporary directory (every write
// checked, free space checked first), gets its manifest last, and is renamed into place:
// a crash or a full disk leaves the previous checkpoint and `latest` as they were.
class CheckpointWriter {
 public:
  CheckpointWriter(std::string checkpoints_dir, int64_t keep);
  // Returns the checkpoint directory written; UserError (naming the cause) when it could not be.
  std::string write(sdk::Model& model, torch::optim::Optimizer& optimizer, const CheckpointState& state,
                    const std::string& config_json);

 private:
  static void write_files(const std::filesystem::path& dir, sdk::Model& model, torch::optim::Optimizer& optimizer,
                          const CheckpointState& state, const std::string& config_json);
  static void commit(const std::filesystem::path& tmp, const std::filesystem::path& final_dir);
  void retain(int64_t newest);

  std::string dir_;
  int64_t keep_;
  std::set<int64_t> written_;  // steps this writer wrote: removed only after every earlier run's
};

// Every parameter and buffer by registered name: what model.safetensors holds.
std::vector<std::pair<std::string, torch::Tensor>> state_tensors(sdk::Model& model);

// Copies every parameter and buffer from `tensors` (converting the dtype). A tied copy
// ({copy, original}, Model::weight_interop) must equal its original and is dropped. Every
// missing, unexpected or mis-shaped tensor is listed in one UserError that names `source`.
void assign_weights(sdk::Model& model, std::map<std::string, torch::Tensor> tensors, const std::string& source,
                    const std::vector<std::pair<std::string, std::string>>& tied_copies = {});
// assign_weights from a safetensors file of the model's own names.
void load_model_weights(sdk::Model& model, const std::string& safetensors_path);
void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& checkpoint_dir);
void restore_rng_state(const std::string& checkpoint_dir);

}  // namespace xlhost::core
