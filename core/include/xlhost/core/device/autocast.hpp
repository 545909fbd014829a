// bfloat16 autocast: matmuls and linear layers in bfloat16, weights, optimizer state, softmax
// and losses in float32 (ATen's autocast lists). Training, evaluation, generation and the
// completions API compute with the dtype the run was configured with.
#pragma once

#include <torch/torch.h>

#include <string>

namespace xlhost::core {

// Whether a run's train.dtype ("float32", "bfloat16", "auto") means bfloat16 autocast on
// `device`: auto picks it on CUDA and on CPUs with AMX-BF16 matrix units.
bool uses_bf16_autocast(const std::string& dtype, const torch::Device& device);

// What to tell a user whose bfloat16 autocast runs on a CPU where ATen has no fast bfloat16
// product (sdk::onednn_runs_bfloat16); empty where there is nothing to say.
std::string bf16_speed_warning(bool autocast, const torch::Device& device);

// Autocast on for this thread while alive (ATen's autocast state is thread-local).
class AutocastScope {
 public:
  AutocastScope(bool enabled, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType type_;
};

}  // namespace xlhost::core
