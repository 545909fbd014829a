#include "xlhost/core/data/window_batch.hpp"

namespace xlhost::core {

WindowBatch window_batch(const TokenFile& tokens, const std::vector<int64_t>& starts, int64_t seq_len) {
  const auto rows = static_cast<int64_t>(starts.size());
  WindowBatch batch{torch::empty({rows, seq_len}, torch::kInt64), torch::empty({rows, seq_len}, torch::kInt64)};
  auto x = batch.inputs.accessor<int64_t, 2>();
  auto y = batch.targets.accessor<int64_t, 2>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t t = 0; t < seq_len; ++t) {
      const auto at = static_cast<size_t>(starts[i] + t);
      x[i][t] = tokens[at];
      y[i][t] = tokens.in_loss(at + 1) ? tokens[at + 1] : kIgnoredTarget;
    }
  return batch;
}

}  // namespace xlhost::core
