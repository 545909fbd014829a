#pragma once

#include <torch/torch.h>

#include <vector>

#include "xlhost/core/data/token_data.hpp"

namespace xlhost::core {

// [B, seq_len + 1] int64 on the CPU: the windows of `tokens` starting at `starts`.
// Inputs are [:, :-1], targets [:, 1:].
torch::Tensor window_batch(const TokenFile& tokens, const std::vector<int64_t>& starts, int64_t seq_len);

}  // namespace xlhost::core
