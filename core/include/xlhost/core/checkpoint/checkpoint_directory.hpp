// Finding and reading checkpoints without LibTorch: which directory holds the newest one,
// its state.json and its config.json. Writing and loading tensors is checkpoint.hpp's.
#pragma once

#include <cstdint>
#include <string>

namespace xlhost::core {

struct CheckpointState {
  int64_t step = 0;           // optimizer steps completed
  int64_t micro_batches = 0;  // training micro-batches consumed (the data position)
  int64_t tokens = 0;         // training tokens consumed
  std::string plugin_name, plugin_version, plugin_path;
};

// `path` is a checkpoint directory or a run directory (then its latest checkpoint).
std::string resolve_checkpoint(const std::string& path);

CheckpointState read_checkpoint_state(const std::string& checkpoint_dir);
std::string read_checkpoint_config(const std::string& checkpoint_dir);

}  // namespace xlhost::core
