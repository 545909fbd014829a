// Checkpoints: a directory per step with model.safetensors, optimizer.pt, rng.pt,
// state.json and the resolved config.json. Written into a temporary directory, fsynced
// and renamed, so a crash leaves either the previous checkpoint or the new one.
#pragma once

#include <torch/torch.h>

#include <string>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

// Writes <checkpoints_dir>/step_N and points <checkpoints_dir>/latest at it. Returns the
// checkpoint directory written. Keeps the newest `keep` checkpoints.
std::string write_checkpoint(const std::string& checkpoints_dir, sdk::Model& model, torch::optim::Optimizer& optimizer,
                             const CheckpointState& state, const std::string& config_json, int64_t keep);

// Every parameter and buffer by registered name: what model.safetensors holds.
std::vector<std::pair<std::string, torch::Tensor>> state_tensors(sdk::Model& model);

// Copies every parameter and buffer from the file; a missing, extra or mis-shaped tensor
// is an error that lists them.
void load_model_weights(sdk::Model& model, const std::string& safetensors_path);
void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& checkpoint_dir);
void restore_rng_state(const std::string& checkpoint_dir);

}  // namespace xlhost::core
