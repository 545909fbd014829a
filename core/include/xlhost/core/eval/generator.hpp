// Sampling from a model: temperature, top-p, repetition penalty, EOS stop, and a length
// limit that counts new tokens only (MODELS.md bug 1 compared the whole length).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

// A prompt as the model is given it: BOS then the prompt's tokens, or with `chat` the prompt
// as a ChatML user turn followed by the assistant's header.
std::vector<int64_t> prompt_ids(const Tokenizer& tokenizer, const std::string& prompt, bool chat);

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.75;  // 0 = greedy
  double top_p = 0.9;
  double repetition_penalty = 1.0;
  uint64_t seed = 0;
  int64_t eos_id = 2;
  bool use_cache = true;  // used when the model offers one
};

struct Generation {
  std::vector<int64_t> tokens;  // new tokens only, the EOS included when hit
  bool hit_eos = false;
};

// Called after each new token with the logits that chose it ([V], float, on the CPU) and
// the new tokens so far (this one last); returning false ends the generation after it.
using TokenObserver = std::function<bool(const torch::Tensor& logits, const std::vector<int64_t>& new_tokens)>;

// Samples one continuation of `prompt` (non-empty).
Generation generate(sdk::Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& options,
                    const torch::Device& device, const TokenObserver& on_token = {});

// Picks the next token from one row of logits [V]; `seen` are the ids already in the
// sequence (for the repetition penalty). Exposed for tests.
int64_t sample_next(torch::Tensor logits, const std::vector<int64_t>& seen, const GenerateOptions& options,
                    at::Generator& rng);

struct GenerationReport {
  double eos_rate = 0;       // share of prompts that ended with EOS
  double mean_new_tokens = 0;
  std::vector<Generation> generations;
};

GenerationReport generate_all(sdk::Model& model, const std::vector<std::vector<int64_t>>& prompts,
                              const GenerateOptions& options, const torch::Device& device);

}  // namespace xlhost::core
