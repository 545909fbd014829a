// Finding, verifying and reading checkpoints without LibTorch. A run's checkpoints are
// <run>/checkpoints/step_N/ directories and a `latest` file naming one of them. Each holds
// a manifest.json with the size and checksum of every other file, written last: a
// checkpoint without a valid manifest is incomplete or corrupt and is never loaded.
// Writing and loading tensors is checkpoint.hpp's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace xlhost::core {

// One checkpoint folder, step_N/, and the one place that names its files (as RunDirectory
// does for a run folder).
class CheckpointFolder {
 public:
  explicit CheckpointFolder(std::filesystem::path root) : root_(std::move(root)) {}
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path weights() const { return root_ / "model.safetensors"; }  // every parameter and buffer
  std::filesystem::path optimizer() const { return root_ / "optimizer.pt"; }     // LibTorch's archive of AdamW
  std::filesystem::path rng() const { return root_ / "rng.pt"; }                 // the CPU generator
  std::filesystem::path cuda_rng() const { return root_ / "cuda_rng.pt"; }       // every GPU's generator, when any
  std::filesystem::path state() const { return root_ / "state.json"; }           // CheckpointState
  std::filesystem::path config() const { return root_ / "config.json"; }         // the run's resolved config
  std::filesystem::path manifest() const { return root_ / "manifest.json"; }     // written last: size and xxh3 of the rest
  // md5 of the weights, as records keep it; "" when the folder has none.
  std::string weights_md5() const;

 private:
  std::filesystem::path root_;
};

struct CheckpointState {
  int64_t step = 0;           // optimizer steps completed
  int64_t micro_batches = 0;  // training micro-batches consumed (the data position)
  int64_t tokens = 0;         // training tokens consumed
  // Windows in one data micro-batch of all ranks together (batch_size x world size); 0 in
  // checkpoints written before data-parallel runs (then batch_size). A resume on another
  // number of ranks converts micro_batches through it.
  int64_t windows_per_micro_batch = 0;
  std::string plugin_name, plugin_version, plugin_path;
  // The run that wrote it (record.json's experiment.run_uid); "" in checkpoints written
  // before runs had one. A resume refuses a checkpoint of another run.
  std::string run_uid;
};

// "step_00000042" for 42; the step of such a name, or nothing for any other name.
std::string checkpoint_name(int64_t step);
std::optional<int64_t> checkpoint_step(const std::string& name);

// The step_N directories of a checkpoints folder, highest step first.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& checkpoints_dir);

// Writes `dir`/manifest.json: every other file of `dir` with its size and checksum.
void write_manifest(const std::filesystem::path& dir);
// "" when the manifest is there and every file in it has its size and checksum; otherwise
// what is wrong. Checkpoints written before manifests existed pass with `legacy` set.
std::string verify_checkpoint(const std::filesystem::path& dir, bool* legacy = nullptr);

// The checkpoint `path` names, verified. `path` is a checkpoint directory, or a run
// directory: then its `latest`, or when that one fails verification the newest valid other
// one, with a warning on `warnings` naming the failure. UserError when there is none.
std::string resolve_checkpoint(const std::string& path, std::ostream* warnings = nullptr);

// What `latest` of a run names, unverified (cheap, for listings); "" when nothing.
std::string latest_checkpoint(const std::string& run_dir);

// state.json and config.json of a checkpoint; UserError naming the file and field when
// one is missing or of the wrong type.
CheckpointState read_checkpoint_state(const std::string& checkpoint_dir);
std::string read_checkpoint_config(const std::string& checkpoint_dir);

}  // namespace xlhost::core
