#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/train/trainer.hpp"

namespace xlhost::host {

// Non-empty lines of `path`, at most `limit` (0 = all).
std::vector<std::string> read_prompts(const std::string& path, int64_t limit);

// The config's generate section as the generator's options. EOS: the tokenizer's, or in
// chat mode <|im_end|>, which closes an assistant turn.
core::GenerateOptions generate_options(const core::GenerateSectionOptions& generate, const core::Tokenizer& tokenizer,
                                       bool chat);

// Generates a continuation of every prompt, prints prompt → completion, then the EOS
// rate and mean number of new tokens. chat: each prompt is a user turn in ChatML followed
// by the assistant's header; otherwise BOS + prompt.
core::GenerationReport print_samples(sdk::Model& model, const core::Tokenizer& tokenizer,
                                     const std::vector<std::string>& prompts, bool chat,
                                     const core::GenerateOptions& options, const torch::Device& device, std::ostream& out);

// After training: completions of the config's first generate.samples prompts, printed and
// kept in samples.txt, and their figures for the record (scored by generate.reference_run's
// model when one is named). samples == 0 when the config asks for none.
core::GenerationQuality write_samples(const core::TrainSummary& summary, const core::Options& options);

}  // namespace xlhost::host
