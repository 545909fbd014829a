// Figures of a run's samples for its record: diversity, repetition, EOS rate and length, and
// their perplexity under a reference model (how fluent another model finds them).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/run/run_results.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

GenerationQuality generation_quality(const GenerationReport& report);

// exp(mean negative log-likelihood per token) of each continuation after its prompt, both as
// text, so that the reference may use another tokenizer; empty continuations are left out.
// NaN when nothing is left.
double reference_perplexity(sdk::Model& reference, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                            const std::vector<std::string>& continuations, int64_t max_length, const torch::Device& device);

}  // namespace xlhost::core
