#include "xlhost/core/data/chat.hpp"

#include <rapidjson/document.h>

#include "xlhost/core/data/bpe_tokenizer.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

TrainingDocument render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  TrainingDocument doc;
  for (const auto& m : messages) {
    doc.text += "<|im_start|>" + m.role + "\n";
    const size_t begin = doc.text.size();
    doc.text += m.content + "<|im_end|>";
    if (m.role == "assistant") doc.loss_spans.emplace_back(begin, doc.text.size());
    doc.text += "\n";
  }
  if (add_generation_prompt) doc.text += "<|im_start|>assistant\n";
  return doc;
}

std::string read_conversation(const rapidjson::Value& line, std::vector<ChatMessage>& messages) {
  auto conversation = line.FindMember("conversations");
  if (conversation == line.MemberEnd() || !conversation->value.IsArray())
    return "expected an array field \"conversations\"";
  messages.clear();
  bool assistant = false;
  for (const auto& m : conversation->value.GetArray()) {
    if (!m.IsObject() || !m.HasMember("role") || !m["role"].IsString() || !m.HasMember("content") ||
        !m["content"].IsString())
      return "expected every message to be {\"role\": ..., \"content\": ...} with string values";
    ChatMessage message{{m["role"].GetString(), m["role"].GetStringLength()},
                        {m["content"].GetString(), m["content"].GetStringLength()}};
    if (message.role != "user" && message.role != "assistant" && message.role != "system")
      return "role \"" + message.role + "\" (expected user, assistant or system)";
    assistant |= message.role == "assistant";
    messages.push_back(std::move(message));
  }
  if (!assistant) return "a conversation without an assistant message has nothing to learn";
  return "";
}

void require_chatml(const Tokenizer& tokenizer) {
  if (tokenizer.special_id("<|im_start|>") < 0 || tokenizer.special_id("<|im_end|>") < 0)
    throw UserError(
        "data.format = \"chat\" needs a tokenizer with the special tokens <|im_start|> and <|im_end|> (the byte "
        "tokenizer has none; train one with `xlhost tokenizer train --special \"<|endoftext|>,<|im_start|>,<|im_end|>\"`)");
  if (const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer); bpe && !bpe->definition().chatml)
    throw UserError("data.format = \"chat\": the tokenizer's tokenizer_config.json names a chat template that is not "
                    "ChatML (<|im_start|>role\\ncontent<|im_end|>), the only form xlhost renders");
}

void tokenize_document(const TrainingDocument& doc, const Tokenizer& tokenizer, std::vector<int64_t>& ids,
                       std::vector<uint8_t>& in_loss) {
  ids = tokenizer.encode(doc.text);
  in_loss.assign(ids.size(), doc.loss_spans.empty() ? 1 : 0);
  if (doc.loss_spans.empty()) return;
  size_t offset = 0, span = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    while (span < doc.loss_spans.size() && doc.loss_spans[span].second <= offset) ++span;
    in_loss[i] = span < doc.loss_spans.size() && offset >= doc.loss_spans[span].first;
    offset += tokenizer.token_bytes(ids[i]).size();
  }
  if (offset != doc.text.size())
    throw UserError("the tokenizer's ids cover " + std::to_string(offset) + " of " + std::to_string(doc.text.size()) +
                    " bytes of a conversation (bytes missing from its vocabulary?), so the loss mask cannot be placed");
}

}  // namespace xlhost::core
