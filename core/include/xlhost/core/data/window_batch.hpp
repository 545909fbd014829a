#pragma once

#include <torch/torch.h>

#include <vector>

#include "xlhost/core/data/token_data.hpp"

namespace xlhost::core {

// Targets that are not predicted (chat data: everything but the assistant's tokens).
constexpr int64_t kIgnoredTarget = -1;

struct WindowBatch {
  torch::Tensor inputs;   // [B, seq_len] int64
  torch::Tensor targets;  // [B, seq_len] int64: the next token, or kIgnoredTarget
  WindowBatch to(const torch::Device& device) const { return {inputs.to(device), targets.to(device)}; }
};

// The windows of `tokens` starting at `starts` (seq_len + 1 tokens each), on the CPU.
WindowBatch window_batch(const TokenFile& tokens, const std::vector<int64_t>& starts, int64_t seq_len);

}  // namespace xlhost::core
