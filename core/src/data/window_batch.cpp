#include "xlhost/core/data/window_batch.hpp"

namespace xlhost::core {

torch::Tensor window_batch(const TokenFile& tokens, const std::vector<int64_t>& starts, int64_t seq_len) {
  auto batch = torch::empty({static_cast<int64_t>(starts.size()), seq_len + 1}, torch::kInt64);
  auto w = batch.accessor<int64_t, 2>();
  for (size_t i = 0; i < starts.size(); ++i)
    for (int64_t t = 0; t <= seq_len; ++t) w[i][t] = tokens[static_cast<size_t>(starts[i] + t)];
  return batch;
}

}  // namespace xlhost::core
