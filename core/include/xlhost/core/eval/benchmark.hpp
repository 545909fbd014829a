// Benchmark scoring as lm-evaluation-harness does it, so that a figure here is the figure
// lm-eval reports for the same model and task: the summed log-likelihood of each choice
// as a continuation of the context; acc = the best choice is the gold one, acc_norm = the
// same after dividing by the choice's length in characters (lm-eval's len(str)),
// acc_bytes = in UTF-8 bytes; and loglikelihood_rolling for texts (word and byte
// perplexity, bits per byte) in disjoint windows that each see one token of context.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "xlhost/core/data/task_file.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

struct LoglikelihoodRequest {
  std::vector<int64_t> context, continuation;  // context non-empty
};

struct Loglikelihood {
  double logprob = 0;   // summed over the continuation's tokens
  bool greedy = false;  // every continuation token is the model's argmax
};

// lm-eval's _encode_pair: the context's trailing spaces move to the continuation, the
// whole text is encoded and split after the context's own encoding; an empty context
// becomes `prefix_id` (as lm-eval uses BOS, or EOS without one). No BOS otherwise, as in
// lm-eval's default (add_bos_token=False).
LoglikelihoodRequest encode_pair(const Tokenizer& tokenizer, std::string context, std::string continuation,
                                 int64_t prefix_id);

// log_softmax of the model's logits over `ids` ([T] → [T, V] float32 on the CPU): row i is
// the distribution of token i + 1.
torch::Tensor next_token_logprobs(sdk::Model& model, const std::vector<int64_t>& ids, const torch::Device& device);

// Each request's log-likelihood, its input cut from the left to `max_length` tokens as
// lm-eval does; requests of equal length go through the model together, `batch_size` at a
// time (no padding: a model that is not strictly causal scores exactly what it would alone).
std::vector<Loglikelihood> loglikelihoods(sdk::Model& model, const std::vector<LoglikelihoodRequest>& requests,
                                          int64_t max_length, int64_t batch_size, const torch::Device& device,
                                          const std::function<void(int64_t done)>& progress = {});

struct ChoiceItemScore {
  std::vector<Loglikelihood> choices;
  int64_t predicted = 0, predicted_norm = 0;
  bool correct = false, correct_norm = false, correct_bytes = false;
};

struct Accuracy {
  int64_t items = 0;
  double acc = 0, acc_norm = 0, acc_bytes = 0;
  double acc_stderr = 0;  // sample standard error of the mean, as lm-eval reports it
};

struct MultipleChoiceScore {
  Accuracy all;
  std::map<std::string, Accuracy> groups;  // by ChoiceItem::group, when items have one
  std::vector<ChoiceItemScore> items;
};

struct BenchmarkOptions {
  int64_t num_fewshot = 0;
  uint64_t fewshot_seed = 1234;
  int64_t limit = 0;  // score the first `limit` items; 0 = all
  int64_t max_length = 0;
  int64_t batch_size = 16;
};

MultipleChoiceScore score_multiple_choice(sdk::Model& model, const Tokenizer& tokenizer, const TaskFile& task,
                                          const BenchmarkOptions& options, const torch::Device& device,
                                          const std::function<void(int64_t done, int64_t total)>& progress = {});

struct RollingScore {
  int64_t documents = 0, tokens = 0, words = 0, bytes = 0;
  double loglikelihood = 0;
  double word_perplexity = 0, byte_perplexity = 0, bits_per_byte = 0;
};

RollingScore score_rolling(sdk::Model& model, const Tokenizer& tokenizer, const TaskFile& task,
                           const BenchmarkOptions& options, const torch::Device& device);

// The contexts and gold answers of the task's items, what contamination checks look for.
std::vector<std::string> item_texts(const TaskFile& task, int64_t limit);

}  // namespace xlhost::core
