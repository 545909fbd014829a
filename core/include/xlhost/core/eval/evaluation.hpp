// Language-model loss, held-out evaluation and fact recall.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "xlhost/core/data/token_data.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/run/run_results.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

// Mean cross-entropy of logits [B, T, V] against targets [B, T], ignoring targets equal
// to kIgnoredTarget (data/window_batch.hpp). Targets must already be the inputs shifted by one.
torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& targets);

// Rows of `logits` ([T, V], one forward pass over a sequence) that predict the tokens at
// positions [first, first + count): rows [first − 1, first + count − 1). Position i
// predicts token i + 1; MODELS.md bug 2 sliced [T − count, T) instead.
torch::Tensor logits_predicting(const torch::Tensor& logits, int64_t first, int64_t count);

// Mean cross-entropy of `continuation` given `prompt` (prompt must be non-empty).
double continuation_loss(sdk::Model& model, const std::vector<int64_t>& prompt,
                         const std::vector<int64_t>& continuation, const torch::Device& device);

// Held-out loss over the first `max_batches` batches of `tokens` in file order.
EvalResult evaluate_loss(sdk::Model& model, const TokenFile& tokens, int64_t seq_len, int64_t batch_size,
                         int64_t max_batches, const torch::Device& device);

// Share of facts whose greedy completion of "prompt" begins with exactly "answer"; with
// `chat`, whose reply to "question" (a ChatML user turn) begins with prompt + answer.
// facts_path: JSON lines {"prompt", "answer", "question", "in_train"} (xlhost data synth
// writes facts.jsonl). max_facts 0 = all. Malformed lines are errors naming file and line.
FactRecall fact_recall(sdk::Model& model, const Tokenizer& tokenizer, const std::string& facts_path,
                       int64_t max_facts, const torch::Device& device, bool chat = false);

}  // namespace xlhost::core
