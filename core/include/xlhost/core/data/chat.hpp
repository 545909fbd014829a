// Conversations for supervised fine-tuning: MiniMind's SFT lines
// {"conversations": [{"role": "user"|"assistant"|"system", "content": ...}, ...]},
// rendered with the ChatML template, and the loss mask that keeps assistant tokens only.
#pragma once

#include <rapidjson/fwd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/core/data/tokenizer.hpp"

namespace xlhost::core {

// Text to train on and the byte ranges [begin, end) whose tokens are in the loss
// (none: every token).
struct TrainingDocument {
  std::string text;
  std::vector<std::pair<size_t, size_t>> loss_spans;
};
inline size_t text_bytes(const TrainingDocument& doc) { return doc.text.size(); }  // for read_json_object_blocks

struct ChatMessage {
  std::string role, content;
};

// "<|im_start|>role\ncontent<|im_end|>\n" per message, then "<|im_start|>assistant\n" when
// add_generation_prompt. loss_spans: each assistant content with its closing <|im_end|>.
TrainingDocument render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// The messages of one line; "" or what is wrong with it (for read_json_objects).
std::string read_conversation(const rapidjson::Value& line, std::vector<ChatMessage>& messages);

// UserError unless `tokenizer` has the ChatML special tokens (and, for a tokenizer.json,
// tokenizer_config.json names no chat template of another form).
void require_chatml(const Tokenizer& tokenizer);

// The ids of doc.text, and per id whether it is in the loss: a token is when its first
// byte lies in a loss span.
void tokenize_document(const TrainingDocument& doc, const Tokenizer& tokenizer, std::vector<int64_t>& ids,
                       std::vector<uint8_t>& in_loss);

}  // namespace xlhost::core
