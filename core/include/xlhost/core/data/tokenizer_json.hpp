// Hugging Face's tokenizer files: tokenizer.json (the model) and, beside it,
// tokenizer_config.json (which added tokens are bos/eos/pad, the chat template).
#pragma once

#include <memory>
#include <string>

#include "xlhost/core/data/bpe_tokenizer.hpp"

namespace xlhost::core {

// Reads a byte-level BPE tokenizer.json. Everything that would change ids and is not
// implemented is refused by a UserError naming the field and its value.
std::unique_ptr<BpeTokenizer> load_tokenizer_json(const std::string& path);

// Writes tokenizer.json and tokenizer_config.json (ChatML chat template) into `directory`,
// in the form `tokenizers` and `transformers` load.
void write_tokenizer_files(const BpeDefinition& definition, const std::string& directory);

// The ChatML template written into tokenizer_config.json, as transformers' Jinja.
extern const char* const kChatMlTemplate;

}  // namespace xlhost::core
